/** `deno run -A tasks/bench_models.ts [--dir DIR] [--only vit_b16,rn50,text,aux] [--batches 1,8]
 * [--json FILE]`: the full-size encoders made by `export.py --full DIR` (default
 * $FULL_MODELS_DIR) through the encoder API, one run per batch size: max error against the
 * float64 reference (rows cycled from the fixture's batch), seconds per image, the plan's peak
 * GPU memory estimate (known before running) and the measured peak (pooled buffers + weights).
 * Runs take minutes on a software adapter: run it alone. */
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { downloadTensor, EngineError, getGpu, releaseTensor } from "../src/gpu/mod.ts";
import { describeBatchPlan, loadEncoder } from "../src/models/mod.ts";
import {
  encoderCases,
  errorStats,
  pickRefRows,
  pickRows,
  preprocessingFor,
} from "../tests/models/fixture.ts";
import { runCli } from "./_cli.ts";

const MODELS: Record<string, string> = {
  vit_b16: "clip_vit_b16",
  rn50: "clip_rn50",
  text: "clip_text_b",
  aux: "aux_resnet50",
};

interface Row {
  model: string;
  batch: number;
  chunks: number;
  loadSeconds: number;
  planSeconds: number;
  runSeconds: number;
  secondsPerImage: number;
  estimatedPeakMiB: number;
  measuredPeakMiB: number;
  maxError: number;
  maxRef: number;
  relError: number;
}

const mib = (b: number) => b / 2 ** 20;

await runCli(async () => {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      dir: { type: "string", default: Deno.env.get("FULL_MODELS_DIR") },
      only: { type: "string", default: Object.keys(MODELS).join(",") },
      batches: { type: "string", default: "1,8" },
      json: { type: "string" },
      verbose: { type: "boolean", short: "v", default: false },
    },
    strict: true,
  });
  if (!values.dir) throw new EngineError("--dir (or FULL_MODELS_DIR): folder of export.py --full");
  const batches = values.batches.split(",").map(Number);
  const gpu = await getGpu();
  console.log(`adapter: ${gpu.describe()}`);
  const rows: Row[] = [];
  for (const key of values.only.split(",")) {
    const name = MODELS[key];
    if (!name) throw new EngineError(`--only: unknown model '${key}'`);
    const dir = join(values.dir, name);
    if (!existsSync(join(dir, "manifest.json"))) throw new EngineError(`${dir}: no manifest.json`);
    const c = encoderCases(dir)[0];
    let t0 = performance.now();
    const encoder = await loadEncoder(c.path, preprocessingFor(c), {
      log: values.verbose ? (s) => console.log(`  ${s}`) : undefined,
    });
    const loadSeconds = (performance.now() - t0) / 1000;
    const dim = c.outputShape[1];
    for (const batch of batches) {
      const picked = Array.from({ length: batch }, (_, i) => i % c.input.shape[0]);
      const x = pickRows(c.input, picked);
      t0 = performance.now();
      const plan = await encoder.planBatch(batch, { outputs: true });
      const planSeconds = (performance.now() - t0) / 1000;
      console.log(`${name}: ${describeBatchPlan(plan)}`);
      gpu.pool.resetPeak();
      t0 = performance.now();
      const f = await encoder.encode(x);
      await gpu.sync(name);
      const runSeconds = (performance.now() - t0) / 1000;
      const measured = gpu.pool.peakBytes + plan.planMemory.weights + plan.planMemory.constants +
        plan.planMemory.scratch;
      const y = await downloadTensor(gpu, f);
      releaseTensor(gpu, f);
      const s = errorStats(y.data, pickRefRows(c.reference, dim, picked));
      const row: Row = {
        model: name,
        batch,
        chunks: plan.chunks.length,
        loadSeconds,
        planSeconds,
        runSeconds,
        secondsPerImage: runSeconds / batch,
        estimatedPeakMiB: mib(plan.peakBytes),
        measuredPeakMiB: mib(measured),
        maxError: s.maxErr,
        maxRef: s.maxRef,
        relError: s.maxErr / s.maxRef,
      };
      rows.push(row);
      console.log(
        `${name} batch ${batch}: ${row.secondsPerImage.toFixed(2)} s/image (run ` +
          `${runSeconds.toFixed(1)} s, plan ${planSeconds.toFixed(1)} s, load ` +
          `${loadSeconds.toFixed(1)} s); peak GPU memory est. ${row.estimatedPeakMiB.toFixed(0)} ` +
          `MiB, measured ${row.measuredPeakMiB.toFixed(0)} MiB; max|y - ref| ` +
          `${s.maxErr.toExponential(2)} = ${row.relError.toExponential(2)} x max|ref| ` +
          `(${s.maxRef.toFixed(3)})`,
      );
    }
    encoder.dispose();
  }
  if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(rows, null, 1) + "\n");
  return 0;
});
