/** `deno task inspect FILE`: what a model file is (format, key layout, architecture of each tower
 * with its hyper-parameters, stored dtypes, parameter count, embedding and input size), read from
 * the file's index and shapes alone: no weights are loaded. */
import { summarizeModelFile } from "../src/models/model_file.ts";
import { parseTaskArgs, runCli } from "./_cli.ts";

const HELP = `usage: deno task inspect FILE [--json]

  FILE     a checkpoint (OpenAI .pt, torch.save .pt/.pth.tar, .safetensors) or an .onnx model
  --json   print the summary as JSON`;

await runCli(() => {
  const args = parseTaskArgs(HELP, { json: { type: "boolean", default: false } }, 1);
  if (!args) return 0;
  const summary = summarizeModelFile(args.positionals[0]);
  if (args.values.json) console.log(JSON.stringify(summary, null, 1));
  else console.log(summary.lines.join("\n"));
  return 0;
});
