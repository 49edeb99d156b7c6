import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { cpuTensor, type DType } from "../../src/util/tensor.ts";
import { getGpu, type Gpu } from "../../src/gpu/mod.ts";
import { type CpuTensor } from "../../src/util/tensor.ts";
import {
  coalesceReduction,
  prepareReduce,
  REDUCE_OPS,
  type RowStrategy,
} from "../../src/kernels/reduce.ts";
import { type ReduceOp, reduceShape } from "../../src/kernels/reduce_shape.ts";
import { reduceRef } from "../../src/kernels/reduce_ref.ts";
import { assertClose, randomFloats, rng } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

async function runReduce(
  gpu: Gpu,
  op: ReduceOp,
  x: CpuTensor,
  axes: number[],
  keepdims: boolean,
  strategy?: RowStrategy,
): Promise<CpuTensor> {
  const rank = x.shape.length;
  const norm = axes.map((a) => (a < 0 ? a + rank : a));
  const [y] = await runKernel(
    gpu,
    [x],
    [reduceShape(x.shape, norm, keepdims)],
    (scope, [xt], [out]) => prepareReduce(gpu, scope, op, xt, out, axes, keepdims, { strategy }),
  );
  return y;
}

/** Inputs that keep every op well-conditioned: positive for logSum, near 1 for prod. */
function inputFor(op: ReduceOp, shape: number[], seed: number, dtype: DType = "float32") {
  const n = shape.reduce((a, b) => a * b, 1);
  if (dtype === "int32" || dtype === "int64") {
    const r = rng(seed);
    const lo = op === "prod" ? -2 : -50;
    const span = op === "prod" ? 5 : 100;
    return cpuTensor(dtype, shape, Array.from({ length: n }, () => lo + Math.floor(r() * span)));
  }
  if (dtype === "bool") {
    const r = rng(seed);
    return cpuTensor(dtype, shape, Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)));
  }
  const [lo, hi] = op === "logSum" ? [0.1, 1] : op === "prod" ? [0.9, 1.1] : [-3, 3];
  return cpuTensor(dtype, shape, randomFloats(n, seed, lo, hi));
}

function tolerance(op: ReduceOp, count: number): { rtol: number; atol: number } {
  // float32 accumulation over `count` terms vs the float64 reference.
  const rtol = 2e-6 * Math.sqrt(count) + 1e-6;
  return { rtol, atol: op === "sum" || op === "mean" ? rtol * Math.sqrt(count) : 1e-6 };
}

Deno.test("reduce: coalescing merges neighbouring dims and drops size-1 dims", () => {
  assertEquals(coalesceReduction([2, 3, 4, 5], [2, 3]), {
    kept: { shape: [6], strides: [20] },
    reduced: { shape: [20], strides: [1] },
  });
  assertEquals(coalesceReduction([2, 1, 3, 4], [0, 3]), {
    kept: { shape: [3], strides: [4] },
    reduced: { shape: [2, 4], strides: [12, 1] },
  });
  assertEquals(coalesceReduction([5], []), {
    kept: { shape: [5], strides: [1] },
    reduced: { shape: [1], strides: [0] },
  });
});

Deno.test("reduce: every op, both strategies, odd reduced extents, trailing axis", async () => {
  const gpu = await getGpu();
  let seed = 1;
  for (const op of REDUCE_OPS) {
    for (const n of [1, 7, 13, 257, 1000]) {
      const x = inputFor(op, [3, n], seed++);
      const want = reduceRef(op, x, [1], true);
      for (const strategy of ["thread", "group"] as const) {
        const got = await runReduce(gpu, op, x, [1], true, strategy);
        assertEquals(got.shape, [3, 1]);
        assertClose(got.data, want.data, {
          ...tolerance(op, n),
          label: `${op} n=${n} ${strategy}`,
        });
      }
    }
  }
});

Deno.test("reduce: leading, middle, multiple and all axes, keepdims on and off", async () => {
  const gpu = await getGpu();
  const cases: [number[], number[]][] = [
    [[13, 7], [0]],
    [[5, 13, 7], [1]],
    [[5, 13, 7], [0, 2]],
    [[4, 3, 5, 7], [-1, 1]],
    [[2, 3, 257], [0, 1, 2]],
    [[1, 6, 1, 9], [0, 2]],
    [[3, 1, 4], [1]],
    [[2, 3, 4, 5, 6], [0, 2, 4]],
  ];
  let seed = 100;
  for (const op of ["sum", "mean", "max", "min", "l2", "logSumExp"] as const) {
    for (const [shape, axes] of cases) {
      const x = inputFor(op, shape, seed++);
      for (const keepdims of [true, false]) {
        const want = reduceRef(op, x, axes, keepdims);
        for (const strategy of ["thread", "group"] as const) {
          const got = await runReduce(gpu, op, x, axes, keepdims, strategy);
          const label = `${op} ${JSON.stringify(shape)} axes ${axes} keep ${keepdims} ${strategy}`;
          assertEquals(got.shape, want.shape, label);
          const count = x.data.length / want.data.length;
          assertClose(got.data, want.data, { ...tolerance(op, count), label });
        }
      }
    }
  }
});

Deno.test("reduce: empty reduced set gives identities; empty axes is a no-op", async () => {
  const gpu = await getGpu();
  const empty = cpuTensor("float32", [2, 0, 3]);
  const expected: Partial<Record<ReduceOp, number>> = {
    sum: 0,
    prod: 1,
    max: -Infinity,
    min: Infinity,
    l1: 0,
    l2: 0,
    sumSquare: 0,
    logSum: -Infinity,
    logSumExp: -Infinity,
  };
  for (const [op, value] of Object.entries(expected) as [ReduceOp, number][]) {
    const got = await runReduce(gpu, op, empty, [1], true);
    assertEquals(got.shape, [2, 1, 3]);
    assertEquals(Array.from(got.data), new Array(6).fill(value), op);
    assertEquals(Array.from(reduceRef(op, empty, [1]).data), new Array(6).fill(value), op);
  }
  // Non-reduced axis of size zero: empty output, nothing dispatched.
  assertEquals((await runReduce(gpu, "sum", empty, [2], true)).shape, [2, 0, 1]);
  const x = inputFor("sumSquare", [3, 5], 7);
  for (const op of ["sum", "sumSquare", "l2", "max"] as const) {
    const got = await runReduce(gpu, op, x, [], true);
    assertClose(got.data, reduceRef(op, x, []).data, { label: `noop ${op}` });
  }
});

Deno.test("reduce: integer and bool inputs", async () => {
  const gpu = await getGpu();
  let seed = 300;
  for (const dtype of ["int32", "int64"] as const) {
    for (const op of ["sum", "mean", "max", "min", "prod", "l1", "sumSquare", "l2"] as const) {
      for (const shape of [[4, 7], [3, 257]]) {
        const x = inputFor(op, shape, seed++, dtype);
        for (const strategy of ["thread", "group"] as const) {
          const got = await runReduce(gpu, op, x, [1], false, strategy);
          const want = reduceRef(op, x, [1], false);
          assertEquals(got.dtype, dtype);
          if (op === "prod") continue; // overflows differently (i32 wrap vs float64)
          if (op === "l2") assertClose(got.data, want.data, { atol: 1, rtol: 0, label: op });
          else assertEquals(Array.from(got.data), Array.from(want.data), `${dtype} ${op}`);
        }
      }
    }
  }
  for (const op of ["max", "min"] as const) {
    const x = inputFor(op, [5, 13], seed++, "bool");
    for (const strategy of ["thread", "group"] as const) {
      const got = await runReduce(gpu, op, x, [1], true, strategy);
      assertEquals(Array.from(got.data), Array.from(reduceRef(op, x, [1]).data), `bool ${op}`);
    }
  }
});

Deno.test("reduce: float16 results are rounded to half precision", async () => {
  const gpu = await getGpu();
  const x = cpuTensor("float16", [4, 33], randomFloats(132, 9, -2, 2));
  const got = await runReduce(gpu, "mean", x, [1], true);
  const want = reduceRef("mean", x, [1]);
  assertClose(got.data, want.data, { rtol: 1e-3, atol: 1e-4 });
  assertHalfValues(got, "float16 mean");
});

Deno.test("reduce: many outputs split over two workgroup dimensions", async () => {
  const gpu = await getGpu();
  const rows = gpu.limits.maxComputeWorkgroupsPerDimension + 3;
  const x = inputFor("sum", [rows, 2], 11);
  const got = await runReduce(gpu, "sum", x, [1], false, "group");
  assertClose(got.data, reduceRef("sum", x, [1], false).data, { atol: 1e-6 });
});
