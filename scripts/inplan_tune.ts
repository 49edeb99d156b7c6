/** Compares isolated and in-plan kernel tuning on one model (docs/tuning.md):
 *
 *   deno run -A scripts/inplan_tune.ts MODEL.onnx INPUT=1,3,224,224 [--precision f16]
 *       [--budget-s S] [--keep-within F] [--rounds N] [--json FILE]
 *
 * Measures every MatMul/Gemm/Conv problem of the plan alone (the default tuning), then tries
 * each problem's candidates inside the whole plan (src/onnx/tune.ts `tuneInPlan`), and prints
 * both choices with the whole-plan times. Nothing is saved to results/variant-cache.json. */
import { parseArgs } from "node:util";
import { getGpu } from "../src/gpu/mod.ts";
import { VariantCache } from "../src/kernels/variants.ts";
import { loadModel, OPS } from "../src/onnx/mod.ts";
import { inPlanTarget, tuneInPlan } from "../src/onnx/tune.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    precision: { type: "string", default: "f32" },
    "budget-s": { type: "string" },
    "keep-within": { type: "string" },
    rounds: { type: "string" },
    json: { type: "string" },
  },
  allowPositionals: true,
});
const [file, ...inputs] = positionals;
if (!file || inputs.length === 0) {
  console.error("usage: scripts/inplan_tune.ts MODEL.onnx NAME=D0,D1,... [--precision f16]");
  Deno.exit(2);
}
const shapes = Object.fromEntries(inputs.map((s) => {
  const [name, dims] = s.split("=");
  return [name, dims.split(",").map(Number)];
}));
const precision = values.precision === "f16" ? "f16" : "f32";
const gpu = await getGpu();
const cache = new VariantCache();
const model = await loadModel(file, gpu, { precision, variantCache: cache });
console.log(`adapter: ${gpu.describe()}\nmodel: ${file} ${JSON.stringify(shapes)} ${precision}`);
const summary = await tuneInPlan(inPlanTarget(model, shapes, OPS), {
  cache,
  cacheFile: null,
  budgetMs: values["budget-s"] === undefined ? Infinity : Number(values["budget-s"]) * 1000,
  keepWithin: values["keep-within"] === undefined ? undefined : Number(values["keep-within"]),
  planBatches: values.rounds === undefined ? undefined : Number(values.rounds),
  log: (l) => console.log(l),
});
const differ = summary.problems.filter((p) => p.inPlan !== p.isolated);
console.log(
  `\nwhole plan, ms per run: defaults ${summary.defaultPlanMs.toFixed(1)}, isolated choices ` +
    `${summary.isolatedPlanMs.toFixed(1)}, in-plan choices ${summary.inPlanMs.toFixed(1)}; ` +
    `${summary.problems.length} problems tried in place (${summary.deferred} deferred), ` +
    `${differ.length} changed; ${(summary.ms / 1000).toFixed(0)} s`,
);
for (const p of differ) {
  console.log(`  ${p.kernel} ${p.problem}: ${p.isolated} -> ${p.inPlan}`);
}
if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(summary, null, 1) + "\n");
model.dispose();
Deno.exit(0);
