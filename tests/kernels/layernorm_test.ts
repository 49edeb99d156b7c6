import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { getGpu, type Gpu } from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { type LayerNormOptions, prepareLayerNorm } from "../../src/kernels/layernorm.ts";
import { layerNormRef } from "../../src/kernels/layernorm_ref.ts";
import { type RowStrategy } from "../../src/kernels/reduce.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { assertHalfValues, type OutputSpec, runKernel } from "./harness.ts";

interface LnResult {
  y: CpuTensor;
  mean?: CpuTensor;
  inv?: CpuTensor;
}

async function runLayerNorm(
  gpu: Gpu,
  x: CpuTensor,
  scale: CpuTensor,
  bias: CpuTensor | undefined,
  options: LayerNormOptions & { stats?: boolean },
): Promise<LnResult> {
  const rank = x.shape.length;
  const axis = (options.axis ?? -1) < 0 ? (options.axis ?? -1) + rank : options.axis ?? -1;
  const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
  const stat = { shape: statShape, dtype: "float32" as const };
  const outputs: OutputSpec[] = [x.shape, ...(options.stats ? [stat, stat] : [])];
  const [y, mean, inv] = await runKernel(
    gpu,
    bias ? [x, scale, bias] : [x, scale],
    outputs,
    (scope, [xt, st, bt], [out, mean, invStdDev]) =>
      prepareLayerNorm(gpu, scope, xt, st, bt, out, { ...options, mean, invStdDev }),
  );
  return { y, mean, inv };
}

const STRATEGIES: RowStrategy[] = ["thread", "group"];

Deno.test("layernorm: odd row lengths, with and without bias and statistics", async () => {
  const gpu = await getGpu();
  let seed = 1;
  for (const n of [1, 7, 13, 257, 1000]) {
    const x = cpuTensor("float32", [3, n], randomFloats(3 * n, seed++, -2, 5));
    const scale = cpuTensor("float32", [n], randomFloats(n, seed++, 0.5, 1.5));
    const bias = cpuTensor("float32", [n], randomFloats(n, seed++, -1, 1));
    for (const withBias of [true, false]) {
      const b = withBias ? bias : undefined;
      const want = layerNormRef(x, scale, b, -1, 1e-5);
      for (const strategy of STRATEGIES) {
        const got = await runLayerNorm(gpu, x, scale, b, { strategy, stats: withBias });
        const label = `n=${n} bias=${withBias} ${strategy}`;
        assertClose(got.y.data, want.y.data, { rtol: 1e-4, atol: 1e-4, label });
        if (got.mean && got.inv) {
          assertClose(got.mean.data, want.mean.data, { rtol: 1e-5, atol: 1e-5, label });
          assertClose(got.inv.data, want.invStdDev.data, { rtol: 1e-4, atol: 1e-5, label });
        }
      }
    }
  }
});

Deno.test("layernorm: every axis of a 4-D tensor, epsilon, suffix-broadcast scale", async () => {
  const gpu = await getGpu();
  const shape = [2, 3, 5, 7];
  const x = cpuTensor("float32", shape, randomFloats(210, 77, -3, 3));
  let seed = 200;
  for (const axis of [0, 1, 2, 3, -1, -3]) {
    const a = axis < 0 ? axis + 4 : axis;
    const norm = shape.slice(a);
    const count = norm.reduce((p, d) => p * d, 1);
    const scale = cpuTensor("float32", norm, randomFloats(count, seed++, 0.5, 2));
    const bias = cpuTensor("float32", norm, randomFloats(count, seed++, -1, 1));
    const want = layerNormRef(x, scale, bias, axis, 0.1);
    for (const strategy of STRATEGIES) {
      const got = await runLayerNorm(gpu, x, scale, bias, {
        axis,
        epsilon: 0.1,
        strategy,
        stats: true,
      });
      const label = `axis ${axis} ${strategy}`;
      assertClose(got.y.data, want.y.data, { rtol: 1e-4, atol: 1e-5, label });
      assertEquals(got.mean?.shape, want.mean.shape);
      assertClose(got.mean!.data, want.mean.data, { rtol: 1e-5, atol: 1e-6, label });
      assertClose(got.inv!.data, want.invStdDev.data, { rtol: 1e-5, atol: 1e-6, label });
    }
  }
  // Scale over the last dim only, normalising the last two.
  const scale = cpuTensor("float32", [7], randomFloats(7, 5, 0.5, 2));
  const want = layerNormRef(x, scale, undefined, 2, 1e-5);
  const got = await runLayerNorm(gpu, x, scale, undefined, { axis: 2 });
  assertClose(got.y.data, want.y.data, { rtol: 1e-4, atol: 1e-5, label: "suffix scale" });
});

Deno.test("layernorm: vec4 rows (float32, widths in 4s) with suffix scale/bias and stats", async () => {
  const gpu = await getGpu();
  // [rows, 3, 8] normalised over the last two dims: n = 24, scale 8 values (wrapping), bias
  // 24 or 8 values; odd row counts. Width 768 is ViT's.
  let seed = 400;
  for (const [rows, mid, last] of [[1, 3, 8], [7, 3, 8], [13, 1, 768], [65, 3, 4]]) {
    const x = cpuTensor(
      "float32",
      [rows, mid, last],
      randomFloats(rows * mid * last, seed++, -2, 5),
    );
    const scale = cpuTensor("float32", [last], randomFloats(last, seed++, 0.5, 2));
    for (const biasShape of [[mid, last], [last], undefined]) {
      const count = biasShape ? biasShape.reduce((p, d) => p * d, 1) : 0;
      const bias = biasShape
        ? cpuTensor("float32", biasShape, randomFloats(count, seed++, -1, 1))
        : undefined;
      const want = layerNormRef(x, scale, bias, 1, 1e-5);
      const got = await runLayerNorm(gpu, x, scale, bias, { axis: 1, stats: true });
      const label = `rows=${rows} ${mid}x${last} bias=${biasShape}`;
      assertClose(got.y.data, want.y.data, { rtol: 1e-4, atol: 1e-5, label });
      assertClose(got.mean!.data, want.mean.data, { rtol: 1e-5, atol: 1e-6, label });
      assertClose(got.inv!.data, want.invStdDev.data, { rtol: 1e-5, atol: 1e-6, label });
    }
  }
});

Deno.test("layernorm: large mean relative to spread stays accurate (two-pass and Welford variance)", async () => {
  const gpu = await getGpu();
  const n = 768;
  const x = cpuTensor("float32", [4, n], randomFloats(4 * n, 3, -1, 1).map((v) => 1000 + v));
  const scale = cpuTensor("float32", [n], new Float32Array(n).fill(1));
  const want = layerNormRef(x, scale, undefined, -1, 1e-5);
  for (const strategy of STRATEGIES) {
    const got = await runLayerNorm(gpu, x, scale, undefined, { strategy });
    assertClose(got.y.data, want.y.data, { rtol: 1e-3, atol: 2e-3, label: strategy });
  }
});

Deno.test("layernorm: float16 input rounds its result", async () => {
  const gpu = await getGpu();
  const x = cpuTensor("float16", [5, 24], randomFloats(120, 12, -2, 2));
  const scale = cpuTensor("float16", [24], randomFloats(24, 13, 0.5, 1.5));
  const got = await runLayerNorm(gpu, x, scale, undefined, {});
  const want = layerNormRef(x, scale, undefined, -1, 1e-5);
  assertClose(got.y.data, want.y.data, { rtol: 2e-3, atol: 2e-3 });
  assertHalfValues(got.y, "float16 layernorm");
});
