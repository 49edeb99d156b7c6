/** `deno task export FILE [--tower visual|text] --out model.onnx`: writes one tower of a checkpoint
 * (or an ONNX model, re-encoded) as a standard ONNX model, opset 17, dynamic batch axis, that any
 * ONNX runtime runs with the same outputs as this engine. */
import { dirname } from "node:path";
import { EngineError } from "../src/util/errors.ts";
import { writeFileAtomic } from "../src/util/npy.ts";
import { parseTowerName, towerGraph } from "../src/models/model_file.ts";
import { parseTaskArgs, runCli } from "./_cli.ts";

const HELP = `usage: deno task export FILE [--tower visual|text] --out MODEL.onnx

  FILE          a checkpoint (OpenAI .pt, torch.save .pt/.pth.tar, .safetensors) or .onnx
  --tower T     visual or text: which tower of a two-tower CLIP file (not needed otherwise)
  --out FILE    where to write the ONNX model (written atomically)`;

await runCli(() => {
  const args = parseTaskArgs(HELP, {
    tower: { type: "string" },
    out: { type: "string", short: "o" },
  }, 1);
  if (!args) return 0;
  const out = args.values.out;
  if (!out) throw new EngineError(`--out MODEL.onnx is required\n${HELP}`);
  const path = args.positionals[0];
  const tower = parseTowerName("--tower", args.values.tower);
  const graph = towerGraph(path, tower);
  if (!graph.builder) {
    throw new EngineError(`${path} is already an ONNX model; nothing to export`);
  }
  Deno.mkdirSync(dirname(out) || ".", { recursive: true });
  const bytes = graph.builder.encode(`clip-webgpu export of ${path}`);
  writeFileAtomic(out, bytes);
  console.log(
    `wrote ${out} (${(bytes.length / 2 ** 20).toFixed(1)} MiB, opset 17): ${graph.description}`,
  );
  return 0;
});
