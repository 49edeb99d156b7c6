/** `deno task inspect FILE`: what a model file is (format, key layout, architecture of each tower
 * with its hyper-parameters, stored dtypes, parameter count, embedding and input size), read from
 * the file's index and shapes alone: no weights are loaded. */
import { parseArgs } from "node:util";
import { EngineError } from "../src/gpu/mod.ts";
import { summarizeModelFile } from "../src/models/model_file.ts";
import { runCli } from "./_cli.ts";

const HELP = `usage: deno task inspect FILE [--json]

  FILE     a checkpoint (OpenAI .pt, torch.save .pt/.pth.tar, .safetensors) or an .onnx model
  --json   print the summary as JSON`;

await runCli(() => {
  let args;
  try {
    args = parseArgs({
      args: Deno.args,
      options: {
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new EngineError(`${(e as Error).message}\n${HELP}`);
  }
  if (args.values.help) {
    console.log(HELP);
    return 0;
  }
  if (args.positionals.length !== 1) {
    throw new EngineError(`expected one FILE, got ${args.positionals.length}\n${HELP}`);
  }
  const summary = summarizeModelFile(args.positionals[0]);
  if (args.values.json) console.log(JSON.stringify(summary, null, 1));
  else console.log(summary.lines.join("\n"));
  return 0;
});
