/** `deno task tune MODEL [--tower T] [--batch N,...] [--precision f16] [--in-plan]`: measures
 * the kernel variants of every MatMul/Gemm/Conv problem of a model's plans, with no time budget,
 * and saves the choices to the variant cache, so that a long extraction that follows starts with
 * every kernel tuned. `deno task run` and `train` only tune within a budget. `--in-plan` then
 * times each problem's candidates inside the whole plan (src/onnx/tune.ts tuneInPlan), keeping a
 * candidate only where the plan runs faster with it, and prints both choices. */
import { EngineError } from "../src/util/errors.ts";
import { getGpu } from "../src/gpu/mod.ts";
import { OPS, setupKernelTuning } from "../src/onnx/mod.ts";
import { inPlanTarget, tuneInPlan } from "../src/onnx/tune.ts";
import { loadTowerModel, parseTowerName } from "../src/models/model_file.ts";
import { parseTaskArgs, runCli } from "./_cli.ts";

const HELP = `usage: deno task tune MODEL [--tower visual|text] [--batch N[,N...]] [options]

  MODEL                 an .onnx file or a checkpoint (see deno task run)
  --tower T             visual or text, for a two-tower CLIP checkpoint
  --batch N,...         batch sizes whose plans to tune (default 1)
  --size PX             image side for inputs declared without one (default 224)
  --precision P         f32 (default) or f16, as the runs that will use the choices
  --variant-cache FILE  where the choices go (default results/variant-cache.json)
  --in-plan             also time each problem's candidates inside the whole plan and keep the
                        one the plan runs fastest with (beyond a 10% margin)
  --verbose             list every measured problem and its choice`;

await runCli(async () => {
  const args = parseTaskArgs(HELP, {
    tower: { type: "string" },
    batch: { type: "string", default: "1" },
    size: { type: "string", default: "224" },
    precision: { type: "string", default: "f32" },
    "variant-cache": { type: "string" },
    verbose: { type: "boolean", short: "v", default: false },
    "in-plan": { type: "boolean", default: false },
  }, 1);
  if (!args) return 0;
  const v = args.values;
  const batches = v.batch.split(",").map((b) => Number(b.trim()));
  if (batches.some((b) => !Number.isInteger(b) || b < 1)) {
    throw new EngineError(`--batch: expected positive integers, got '${v.batch}'`);
  }
  const size = Number(v.size);
  if (!Number.isInteger(size) || size < 1) {
    throw new EngineError(`--size: expected a positive integer, got '${v.size}'`);
  }
  if (v.precision !== "f32" && v.precision !== "f16") {
    throw new EngineError(`--precision: expected f32 or f16, got '${v.precision}'`);
  }
  const log = (line: string) => {
    if (v.verbose) console.error(line);
  };
  const cacheArg = v["variant-cache"];
  const tuning = setupKernelTuning({ cacheFile: cacheArg === "none" ? null : cacheArg, log });
  if (!tuning) throw new Error("tuning was not set up");
  const path = args.positionals[0];
  const model = await loadTowerModel(path, parseTowerName("--tower", v.tower), {
    gpu: await getGpu(),
    precision: v.precision,
    tuneKernels: { ...tuning, budgetMs: Infinity, progress: (l) => console.error(l) },
  });
  try {
    for (const batch of batches) {
      const shapes = Object.fromEntries(model.inputs.map((d) => {
        const dims = (d.dims ?? []).map((x, i) =>
          typeof x === "number" ? x : i === 0 ? batch : size
        );
        return [d.name, dims];
      }));
      const t0 = performance.now();
      const text = Object.entries(shapes).map(([n, s]) => `${n} [${s.join(",")}]`).join(", ");
      if (v["in-plan"]) {
        const s = await tuneInPlan(inPlanTarget(model, shapes, OPS), {
          ...tuning,
          budgetMs: Infinity,
          progress: (l) => console.error(l),
        });
        const changed = s.problems.filter((p) => p.inPlan !== p.isolated);
        console.log(
          `${text}: whole plan ${s.defaultPlanMs.toFixed(1)} ms with default kernels, ` +
            `${s.isolatedPlanMs.toFixed(1)} ms with the isolated choices, ` +
            `${s.inPlanMs.toFixed(1)} ms with the in-plan ones; ${changed.length} of ` +
            `${s.problems.length} problem(s) changed in ${(s.ms / 1000).toFixed(1)} s`,
        );
        for (const p of changed) {
          console.log(`  ${p.kernel} ${p.problem}: ${p.isolated} -> ${p.inPlan}`);
        }
        continue;
      }
      await model.plan(shapes);
      console.log(
        `tuned the plan for ${text} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    }
  } finally {
    model.dispose();
  }
  return 0;
});
