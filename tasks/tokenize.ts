/** `deno task tokenize [--bpe FILE] [--context N] [--truncate]`: reads prompts from stdin, one per
 * line, and prints one JSON array of CLIP token ids per line (SOT to EOT, unpadded). */
import { parseArgs } from "node:util";
import { ClipTokenizer } from "../src/data/tokenizer.ts";
import { findBpeFile } from "../src/data/assets.ts";
import { EngineError } from "../src/util/errors.ts";
import { runCli } from "./_cli.ts";

const HELP = `usage: deno task tokenize [--bpe FILE] [--context N] [--truncate] < prompts.txt

  --bpe FILE     CLIP's bpe_simple_vocab_16e6.txt.gz (default: weights/, then ../shared/clip/)
  --context N    context length (default 77)
  --truncate     cut over-long prompts to the context instead of failing`;

await runCli(async () => {
  let args;
  try {
    args = parseArgs({
      args: Deno.args,
      options: {
        bpe: { type: "string" },
        context: { type: "string", default: "77" },
        truncate: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    throw new EngineError(`${(e as Error).message}\n${HELP}`);
  }
  if (args.values.help) {
    console.log(HELP);
    return 0;
  }
  const contextLength = Number(args.values.context);
  if (!Number.isInteger(contextLength) || contextLength < 2) {
    throw new EngineError(`--context: expected an integer >= 2, got '${args.values.context}'`);
  }
  const tok = ClipTokenizer.fromFile(findBpeFile(args.values.bpe));
  const text = await new Response(Deno.stdin.readable).text();
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const out: string[] = [];
  lines.forEach((line, i) => {
    try {
      out.push(
        JSON.stringify(tok.tokenize(line, { contextLength, truncate: args.values.truncate })),
      );
    } catch (e) {
      throw new EngineError(`line ${i + 1}: ${(e as Error).message}`);
    }
  });
  if (out.length) console.log(out.join("\n"));
  return 0;
});
