/** In-plan kernel tuning (src/onnx/tune.ts `tuneInPlan`): starting from the isolated choices,
 * every measured problem's candidates are tried inside the whole plan; the summary records both
 * choices and the plan times, the in-plan choices land in the given cache only (the process-wide
 * cache and the default tuning path are untouched), and a model planned with them computes what
 * an untuned model computes, to float32 rounding. */
import assert from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { getGpu } from "../../src/gpu/mod.ts";
import { VariantCache, variantCache } from "../../src/kernels/variants.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes, OPS } from "../../src/onnx/mod.ts";
import { inPlanTarget, tuneInPlan } from "../../src/onnx/tune.ts";
import { assertClose, randomFloats } from "../helpers.ts";

/** A conv, a Linear and two MatMuls: three kernel problems with several candidates each. */
function model(): Uint8Array {
  const g = new GraphBuilder("inplan", 17);
  const x = g.input("x", "float32", ["batch", 3, 16, 16]);
  const cw = g.constant("cw", cpuTensor("float32", [8, 3, 3, 3], randomFloats(216, 1)));
  const conv = g.op("Conv", [x, cw], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] });
  const flat = g.op("Flatten", [conv], { axis: 1 });
  const w1 = g.constant("w1", cpuTensor("float32", [2048, 64], randomFloats(2048 * 64, 2)));
  const h = g.op("MatMul", [flat, w1]);
  const w2 = g.constant("w2", cpuTensor("float32", [64, 32], randomFloats(64 * 32, 3)));
  g.op("MatMul", [h, w2], {}, "y");
  g.output("y", "float32", ["batch", 32]);
  return g.encode();
}

Deno.test("tuneInPlan times each problem's candidates inside the plan and keeps the best", async () => {
  const gpu = await getGpu();
  const bytes = model();
  const cache = new VariantCache();
  const globalBefore = JSON.stringify(variantCache.toJSON());
  const tuned = await loadModelBytes(bytes, { source: "inplan", gpu, variantCache: cache });
  const plain = await loadModelBytes(bytes, {
    source: "inplan",
    gpu,
    variantCache: new VariantCache(),
  });
  try {
    const lines: string[] = [];
    const summary = await tuneInPlan(inPlanTarget(tuned, { x: [4, 3, 16, 16] }, OPS), {
      cache,
      cacheFile: null,
      targetMs: 5,
      batches: 1,
      planBatches: 2,
      budgetMs: 60_000,
      log: (l) => lines.push(l),
    });
    assert.ok(summary.problems.length >= 2, JSON.stringify(summary));
    assert.equal(summary.deferred, 0);
    for (const p of summary.problems) {
      // The isolated choice's plan time is the starting point; every candidate that ran alone
      // was tried in the plan, and the in-plan choice is one of them.
      assert.ok(p.planMs[p.isolated] > 0);
      const ran = Object.entries(p.isolatedMs).filter(([, ms]) => ms !== undefined);
      for (const [name] of ran) assert.ok(name in p.planMs, `${p.problem}: ${name} not tried`);
      assert.ok(p.inPlan in p.planMs);
      assert.equal(cache.get(gpu, p.kernel, p.problem), p.inPlan);
    }
    assert.ok(summary.isolatedPlanMs > 0 && summary.inPlanMs > 0 && summary.defaultPlanMs > 0);
    console.log(lines.join("\n"));
    assert.equal(lines.filter((l) => l.startsWith("  in-plan ")).length, summary.problems.length);
    assert.equal(JSON.stringify(variantCache.toJSON()), globalBefore, "process cache untouched");

    // The chosen kernels compute what the default ones do.
    const input = { x: cpuTensor("float32", [4, 3, 16, 16], randomFloats(4 * 768, 9)) };
    const y = (await tuned.run(input)).y;
    const want = (await plain.run(input)).y;
    assertClose(y.data as Float32Array, want.data as Float32Array, {
      rtol: 1e-4,
      atol: 1e-5,
      label: "in-plan vs default",
    });
  } finally {
    tuned.dispose();
    plain.dispose();
  }
});

Deno.test("tuneInPlan defers problems once its budget is spent", async () => {
  const gpu = await getGpu();
  const cache = new VariantCache();
  const m = await loadModelBytes(model(), { source: "inplan", gpu, variantCache: cache });
  try {
    const summary = await tuneInPlan(inPlanTarget(m, { x: [1, 3, 16, 16] }, OPS), {
      cache,
      cacheFile: null,
      targetMs: 2,
      batches: 1,
      planBatches: 1,
      budgetMs: 0,
    });
    // Budget 0 (plus its share of the measured kernel time, a few ms here): the phases share
    // it, so problems are left at their isolated or default choices.
    assert.ok(summary.deferred >= 1, JSON.stringify(summary));
    assert.ok(summary.problems.length < 3, JSON.stringify(summary));
  } finally {
    m.dispose();
  }
});
