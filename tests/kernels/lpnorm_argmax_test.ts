import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { getGpu, type Gpu } from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor, type DType, sizeOf } from "../../src/util/tensor.ts";
import { type ArgOptions, prepareArgMax } from "../../src/kernels/argmax.ts";
import { argRef } from "../../src/kernels/argmax_ref.ts";
import { prepareLpNorm } from "../../src/kernels/lpnorm.ts";
import { lpNormRef } from "../../src/kernels/lpnorm_ref.ts";
import { type RowStrategy } from "../../src/kernels/reduce.ts";
import { reduceShape } from "../../src/kernels/reduce_shape.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { randomInts, runKernel } from "./harness.ts";

const STRATEGIES: RowStrategy[] = ["thread", "group"];

async function runLpNorm(
  gpu: Gpu,
  x: CpuTensor,
  axis: number,
  p: 1 | 2,
  strategy: RowStrategy,
): Promise<CpuTensor> {
  const [y] = await runKernel(
    gpu,
    [x],
    [x.shape],
    (scope, [xt], [out]) => prepareLpNorm(gpu, scope, xt, out, axis, p, { strategy }),
  );
  return y;
}

async function runArg(
  gpu: Gpu,
  x: CpuTensor,
  axis: number,
  keepdims: boolean,
  options: ArgOptions,
): Promise<CpuTensor> {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const [indices] = await runKernel(
    gpu,
    [x],
    [{ shape: reduceShape(x.shape, [a], keepdims), dtype: "int64" }],
    (scope, [xt], [out]) => prepareArgMax(gpu, scope, xt, out, axis, options),
  );
  return indices;
}

Deno.test("lpnorm: p=1 and p=2 along every axis, odd extents, both strategies", async () => {
  const gpu = await getGpu();
  let seed = 1;
  const shapes: [number[], number[]][] = [
    [[4, 1], [1]],
    [[4, 7], [0, 1, -1]],
    [[3, 13, 5], [0, 1, 2]],
    [[2, 257], [1]],
    [[3, 1000], [-1]],
  ];
  for (const [shape, axes] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = cpuTensor("float32", shape, randomFloats(n, seed++, -3, 3));
    for (const axis of axes) {
      for (const p of [1, 2] as const) {
        const want = lpNormRef(x, axis, p);
        for (const strategy of STRATEGIES) {
          const got = await runLpNorm(gpu, x, axis, p, strategy);
          const label = `${JSON.stringify(shape)} axis ${axis} p=${p} ${strategy}`;
          assertClose(got.data, want.data, { rtol: 1e-5, atol: 1e-6, label });
        }
      }
    }
  }
});

Deno.test("lpnorm: an all-zero row stays zero (no NaN)", async () => {
  const gpu = await getGpu();
  const x = cpuTensor("float32", [3, 4], [1, 2, 3, 4, 0, 0, 0, 0, -1, 0, 1, 0]);
  for (const p of [1, 2] as const) {
    const want = lpNormRef(x, 1, p);
    assertEquals(Array.from(want.data.slice(4, 8)), [0, 0, 0, 0]);
    for (const strategy of STRATEGIES) {
      const got = await runLpNorm(gpu, x, 1, p, strategy);
      assertClose(got.data, want.data, { rtol: 1e-6, label: `p=${p} ${strategy}` });
    }
  }
});

/** Values with many ties: small integers. */
function tiedInput(dtype: DType, shape: number[], seed: number): CpuTensor {
  return cpuTensor(dtype, shape, randomInts(sizeOf(shape), seed, 0, dtype === "bool" ? 2 : 5));
}

Deno.test("argmax/argmin: ties, select_last_index, axes, keepdims, both strategies", async () => {
  const gpu = await getGpu();
  let seed = 50;
  const cases: [number[], number][] = [
    [[5, 1], 1],
    [[6, 7], 1],
    [[6, 7], 0],
    [[3, 13, 4], 1],
    [[3, 13, 4], -1],
    [[2, 257], 1],
    [[2, 1000], -1],
  ];
  for (const dtype of ["float32", "int32", "int64", "bool"] as const) {
    for (const [shape, axis] of cases) {
      const x = tiedInput(dtype, shape, seed++);
      for (const min of [false, true]) {
        for (const selectLastIndex of [false, true]) {
          const keepdims = !selectLastIndex;
          const want = argRef(x, axis, { min, selectLastIndex, keepdims });
          for (const strategy of STRATEGIES) {
            const got = await runArg(gpu, x, axis, keepdims, { min, selectLastIndex, strategy });
            const label = `${dtype} ${JSON.stringify(shape)} axis ${axis} min ${min} ` +
              `last ${selectLastIndex} ${strategy}`;
            assertEquals(got.shape, want.shape, label);
            assertEquals(Array.from(got.data), Array.from(want.data), label);
          }
        }
      }
    }
  }
});

Deno.test("argmax: random floats (no ties) and the reference's tie rule", async () => {
  const gpu = await getGpu();
  const x = cpuTensor("float32", [9, 31], randomFloats(9 * 31, 4, -10, 10));
  for (const strategy of STRATEGIES) {
    const got = await runArg(gpu, x, 1, true, { strategy });
    assertEquals(Array.from(got.data), Array.from(argRef(x, 1).data));
  }
  const tied = cpuTensor("float32", [1, 5], [1, 3, 2, 3, 0]);
  assertEquals(Array.from(argRef(tied, 1).data), [1]);
  assertEquals(Array.from(argRef(tied, 1, { selectLastIndex: true }).data), [3]);
  assertEquals(Array.from(argRef(tied, 1, { min: true }).data), [4]);
});
