/** Measured kernel variants used by the engine: the bindings (prepareMatmul, prepareConv) consult
 * the cache of measured choices before their heuristics, ignore entries they cannot use, and a
 * model planned with `tuneKernels` measures each distinct MatMul/Gemm/Conv problem once, saves
 * the choices to its cache file, and computes the same results as an untuned model. */
import assert from "node:assert/strict";
import {
  allocTensor,
  type Dispatch,
  getGpu,
  readTensor,
  releaseTensor,
  ResourceScope,
  submitDispatches,
  uploadTensor,
} from "../../src/gpu/mod.ts";
import { cpuTensor } from "../../src/util/tensor.ts";
import {
  cachedMatmulVariant,
  MATMUL_KERNEL,
  matmulProblem,
  matmulProblemKey,
  planMatmul,
  prepareMatmul,
} from "../../src/kernels/matmul.ts";
import {
  cachedConvChannelBlocks,
  chooseChannelBlocks,
  CONV_KERNEL,
  convProblemKey,
  prepareConv,
} from "../../src/kernels/conv.ts";
import { convRef } from "../../src/kernels/conv_ref.ts";
import { VariantCache, variantCache } from "../../src/kernels/variants.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/mod.ts";
import { assertClose, randomFloats } from "../helpers.ts";

function matmulRef64(a: Float32Array, b: Float32Array, m: number, k: number, n: number) {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      for (let j = 0; j < n; j++) out[i * n + j] += av * b[p * n + j];
    }
  }
  return out;
}

Deno.test("prepareMatmul runs the cached measured variant; unusable entries are ignored", async () => {
  const gpu = await getGpu();
  const m = 100, k = 36, n = 104;
  const a = randomFloats(m * k, 1), b = randomFloats(k * n, 2);
  const ta = uploadTensor(gpu, a, [m, k], "float32"), tb = uploadTensor(gpu, b, [k, n], "float32");
  const tc = allocTensor(gpu, [m, n], "float32");
  const problem = matmulProblem([m, k], [k, n]);
  assert.deepEqual(problem, {
    m,
    n,
    k,
    batch: 1,
    halvesAllowed: false,
    constantA: false,
    constantB: false,
  });
  const key = matmulProblemKey(problem);
  const cache = new VariantCache();
  try {
    const fresh = planMatmul(gpu, ta, tb, tc, { variantCache: cache });
    assert.equal(fresh.choice, "default");
    // Pick a cached variant different from the heuristic's, so its use is observable.
    const other = fresh.variant.name === "vec4-4x4" ? "vec4-8x8" : "vec4-4x4";
    cache.set(gpu, MATMUL_KERNEL, key, other);
    const tuned = planMatmul(gpu, ta, tb, tc, { variantCache: cache });
    assert.equal(tuned.choice, "measured");
    assert.equal(tuned.variant.name, other);
    // The options still win over the cache.
    const forced = planMatmul(gpu, ta, tb, tc, { variantCache: cache, variant: fresh.variant });
    assert.equal(forced.choice, "requested");
    assert.equal(forced.variant.name, fresh.variant.name);

    // The cached variant computes the product.
    const scope = new ResourceScope();
    try {
      submitDispatches(gpu, prepareMatmul(gpu, scope, ta, tb, tc, { variantCache: cache }));
      assertClose(await readTensor(gpu, tc), matmulRef64(a, b, m, k, n), {
        rtol: 1e-5,
        atol: 1e-5,
        label: other,
      });
    } finally {
      scope.dispose();
    }

    // Entries a binding cannot use: unknown names, prototype keys, and a half-precision variant
    // for a problem that does not allow rounding its operands.
    for (const bad of ["no-such-variant", "constructor", "texture-f16-16x16"]) {
      cache.set(gpu, MATMUL_KERNEL, key, bad);
      assert.equal(cachedMatmulVariant(gpu, problem, cache), undefined, bad);
      assert.equal(planMatmul(gpu, ta, tb, tc, { variantCache: cache }).choice, "default", bad);
    }
    // ... which the same problem with halves allowed may use.
    const halves = { ...problem, halvesAllowed: true };
    cache.set(gpu, MATMUL_KERNEL, matmulProblemKey(halves), "texture-f16-16x16");
    const h = planMatmul(gpu, ta, tb, tc, { variantCache: cache, precision: "f16" });
    assert.equal(h.choice, "measured");
    assert.equal(h.variant.name, "texture-f16-16x16");

    // Without the option, the process-wide cache is consulted.
    variantCache.set(gpu, MATMUL_KERNEL, key, other);
    assert.equal(planMatmul(gpu, ta, tb, tc).variant.name, other);
  } finally {
    variantCache.clear();
    for (const t of [ta, tb, tc]) releaseTensor(gpu, t);
  }
});

/** Total workgroups of the last dispatch (the convolution; a first one may pack weights). */
function workgroupsOf(dispatches: readonly Dispatch[]): number {
  const w = dispatches[dispatches.length - 1].workgroups;
  return w[0] * w[1] * w[2];
}

Deno.test("prepareConv uses the cached register tile; invalid entries are ignored", async () => {
  const gpu = await getGpu();
  // A 3x2 kernel: the direct kernel's tiles (3-wide rows would take the wide tile by default).
  const xShape = [1, 3, 16, 16], wShape = [32, 3, 3, 2], yShape = [1, 32, 16, 16];
  const attrs = { strides: [1, 1], pads: [1, 0, 1, 1], dilations: [1, 1], group: 1 };
  const x = cpuTensor("float32", xShape, randomFloats(3 * 256, 3));
  const w = cpuTensor("float32", wShape, randomFloats(32 * 18, 4));
  const tx = uploadTensor(gpu, x.data as Float32Array, xShape, "float32");
  const ty = allocTensor(gpu, yShape, "float32");
  const want = convRef(x.data, xShape, w.data, wShape, undefined, attrs).data;
  const cache = new VariantCache();
  const key = convProblemKey(xShape, wShape, attrs);
  const scope = new ResourceScope();
  try {
    assert.equal(chooseChannelBlocks(32), 4);
    const byDefault = workgroupsOf(
      prepareConv(gpu, scope, tx, w, undefined, ty, attrs, { variantCache: cache }),
    );
    // Two blocks of 4 channels per invocation instead of 4: twice the invocations.
    cache.set(gpu, CONV_KERNEL, key, "8ch");
    assert.equal(cachedConvChannelBlocks(gpu, xShape, wShape, attrs, cache), 2);
    const tuned = prepareConv(gpu, scope, tx, w, undefined, ty, attrs, { variantCache: cache });
    assert.equal(workgroupsOf(tuned), 2 * byDefault);
    submitDispatches(gpu, tuned);
    assertClose(await readTensor(gpu, ty), want, { rtol: 1e-4, atol: 1e-5 });
    // A different precision is a different problem.
    assert.equal(cachedConvChannelBlocks(gpu, xShape, wShape, attrs, cache, true), undefined);
    for (const bad of ["6ch", "64ch", "abc", "0ch"]) {
      cache.set(gpu, CONV_KERNEL, key, bad);
      assert.equal(cachedConvChannelBlocks(gpu, xShape, wShape, attrs, cache), undefined, bad);
      const d = prepareConv(gpu, scope, tx, w, undefined, ty, attrs, { variantCache: cache });
      assert.equal(workgroupsOf(d), byDefault, bad);
    }
  } finally {
    scope.dispose();
    releaseTensor(gpu, tx);
    releaseTensor(gpu, ty);
  }
});

/** x [batch, 3, 8, 8] -> Conv 3x3 (8 channels) -> Flatten -> Gemm (+bias) [batch, 40] ->
 * MatMul [40, 24] twice (the same problem) -> Add. Three distinct kernel problems. */
function tinyModel(): Uint8Array {
  const g = new GraphBuilder("tiny-tunable", 17);
  const x = g.input("x", "float32", ["batch", 3, 8, 8]);
  const cw = g.constant("conv_w", cpuTensor("float32", [8, 3, 3, 3], randomFloats(216, 5)));
  const cb = g.constant("conv_b", cpuTensor("float32", [8], randomFloats(8, 6)));
  const conv = g.op("Conv", [x, cw, cb], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] });
  const flat = g.op("Flatten", [conv], { axis: 1 });
  const gw = g.constant("gemm_w", cpuTensor("float32", [40, 512], randomFloats(40 * 512, 7)));
  const gb = g.constant("gemm_b", cpuTensor("float32", [40], randomFloats(40, 8)));
  const gemm = g.op("Gemm", [flat, gw, gb], { transB: 1 });
  const m1 = g.constant("m1", cpuTensor("float32", [40, 24], randomFloats(40 * 24, 9)));
  const m2 = g.constant("m2", cpuTensor("float32", [40, 24], randomFloats(40 * 24, 10)));
  const y1 = g.op("MatMul", [gemm, m1]);
  const y2 = g.op("MatMul", [gemm, m2]);
  g.op("Add", [y1, y2], {}, "y");
  g.output("y", "float32", ["batch", 24]);
  return g.encode();
}

Deno.test("tuneKernels measures each distinct problem of a plan once and saves the choices", async () => {
  const gpu = await getGpu();
  const bytes = tinyModel();
  const dir = Deno.makeTempDirSync();
  const file = `${dir}/nested/variant-cache.json`;
  const cache = new VariantCache();
  const lines: string[] = [];
  const tuned = await loadModelBytes(bytes, {
    source: "tiny",
    gpu,
    variantCache: cache,
    tuneKernels: { cacheFile: file, targetMs: 1, batches: 1, log: (s) => lines.push(s) },
  });
  const plain = await loadModelBytes(bytes, {
    source: "tiny",
    gpu,
    variantCache: new VariantCache(),
  });
  try {
    const input = { x: cpuTensor("float32", [2, 3, 8, 8], randomFloats(2 * 192, 11)) };
    const y = await tuned.run(input);
    const attrs = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 };
    const keys = [
      `${CONV_KERNEL}:${convProblemKey([2, 3, 8, 8], [8, 3, 3, 3], attrs)}`,
      // The weights are constant operands (packed once), a problem of their own.
      `${MATMUL_KERNEL}:${matmulProblemKey({ batch: 1, m: 2, k: 512, n: 40, constantB: true })}`,
      `${MATMUL_KERNEL}:${matmulProblemKey({ batch: 1, m: 2, k: 40, n: 24, constantB: true })}`,
    ];
    const entries = Object.values(cache.toJSON())[0] ?? {};
    assert.deepEqual(Object.keys(entries).sort(), [...keys].sort());
    assert.equal(cache.size, 3);
    assert.ok(lines.some((l) => /measured 3 problem\(s\)/.test(l)), lines.join("\n"));

    // Saved (folder created) and loadable.
    const saved = new VariantCache();
    assert.equal(saved.loadFile(file), true);
    assert.deepEqual(saved.toJSON(), cache.toJSON());

    // A new batch size is a new plan with new problems; the same batch measures nothing.
    lines.length = 0;
    await tuned.run({ x: cpuTensor("float32", [2, 3, 8, 8], randomFloats(2 * 192, 12)) });
    assert.equal(lines.length, 0, "the cached plan tunes nothing");
    await tuned.plan({ x: [3, 3, 8, 8] });
    assert.equal(cache.size, 6);
    await tuned.plan({ x: [4, 3, 8, 8] }, { tuneKernels: false });
    assert.equal(cache.size, 6, "a probe plan without tuning");

    // Same numbers as the untuned model, to float32 rounding.
    const ref = await plain.run(input);
    assertClose(y.y.data as Float32Array, ref.y.data as Float32Array, {
      rtol: 1e-5,
      atol: 1e-5,
      label: "tuned vs default variants",
    });
  } finally {
    tuned.dispose();
    plain.dispose();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a missing or corrupt cache file is ignored, then replaced by a valid one", async () => {
  const gpu = await getGpu();
  const dir = Deno.makeTempDirSync();
  const file = `${dir}/variant-cache.json`;
  try {
    const cache = new VariantCache();
    assert.equal(cache.loadFile(`${dir}/absent.json`), false);
    Deno.writeTextFileSync(file, '{"llvmpipe|x": {"matmul:1x2x3x4": "vec4-4x4"'); // truncated
    assert.equal(cache.loadFile(file), false);
    assert.equal(cache.size, 0);
    Deno.writeTextFileSync(file, "[1, 2, 3]"); // JSON, not a cache
    cache.loadFile(file);
    assert.equal(cache.size, 0);

    const model = await loadModelBytes(tinyModel(), {
      gpu,
      variantCache: cache,
      tuneKernels: { cacheFile: file, targetMs: 1, batches: 1 },
    });
    try {
      await model.plan({ x: [1, 3, 8, 8] });
    } finally {
      model.dispose();
    }
    assert.equal(cache.size, 3);
    const reread = new VariantCache();
    assert.equal(reread.loadFile(file), true);
    assert.equal(reread.size, 3);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a spent budget leaves the rest of a plan's problems at default kernels, unsaved, and says so", async () => {
  const gpu = await getGpu();
  const bytes = tinyModel();
  const cache = new VariantCache();
  const progress: string[] = [];
  const budgeted = await loadModelBytes(bytes, {
    source: "tiny",
    gpu,
    variantCache: cache,
    tuneKernels: {
      cacheFile: null,
      targetMs: 1,
      batches: 1,
      budgetMs: 0,
      progress: (l) => progress.push(l),
    },
  });
  const plain = await loadModelBytes(bytes, {
    source: "tiny",
    gpu,
    variantCache: new VariantCache(),
  });
  try {
    const input = { x: cpuTensor("float32", [2, 3, 8, 8], randomFloats(2 * 192, 13)) };
    const y = await budgeted.run(input);
    assert.equal(cache.size, 0, "nothing measured, nothing saved");
    assert.ok(
      progress.some((l) =>
        /measured 0 problem\(s\) .*; 4 left at default kernels until a later run or `deno task tune`/
          .test(l)
      ),
      progress.join("\n"),
    );
    const ref = await plain.run(input);
    assert.deepEqual(Array.from(y.y.data), Array.from(ref.y.data), "default kernels, same bits");
  } finally {
    budgeted.dispose();
    plain.dispose();
  }
});

Deno.test("a full search (no budget) measures every problem and reports default vs chosen time", async () => {
  const gpu = await getGpu();
  const cache = new VariantCache();
  const lines: string[] = [];
  const model = await loadModelBytes(tinyModel(), {
    source: "tiny",
    gpu,
    variantCache: cache,
    tuneKernels: {
      cacheFile: null,
      targetMs: 1,
      batches: 1,
      budgetMs: Infinity,
      log: (l) => lines.push(l),
    },
  });
  try {
    await model.plan({ x: [2, 3, 8, 8] });
    assert.equal(cache.size, 3);
    const summary = lines.find((l) => l.startsWith("kernel tuning: "));
    assert.match(
      summary ?? "",
      /measured 3 problem\(s\) in [\d.]+ s \(budget none, 0 cached\); measured kernels [\d.]+ ms per run with defaults, [\d.]+ ms as chosen/,
    );
  } finally {
    model.dispose();
  }
});
