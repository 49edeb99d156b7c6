/** Indexing kernels (TopK, GatherND, ScatterND, ScatterElements, Trilu, EyeLike, CumSum, Hardmax,
 * OneHot, Einsum) against their CPU references: random data at odd sizes, outputs pre-filled with
 * garbage so a skipped element fails, and the scatter family's out-of-range reporting. */
import "../gpu_teardown.ts";
import { deepStrictEqual, throws } from "node:assert/strict";
import { getGpu } from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor, type DType, sizeOf } from "../../src/util/tensor.ts";
import { prepareEye, prepareTrilu } from "../../src/kernels/band.ts";
import { eyeRef, triluRef } from "../../src/kernels/band_ref.ts";
import { prepareEinsum } from "../../src/kernels/einsum.ts";
import { einsumRef } from "../../src/kernels/einsum_ref.ts";
import { planEinsum } from "../../src/kernels/einsum_shape.ts";
import { prepareOneHot } from "../../src/kernels/onehot.ts";
import { oneHotRef } from "../../src/kernels/onehot_ref.ts";
import { prepareCumSum, prepareHardmax } from "../../src/kernels/scan.ts";
import { cumsumRef, hardmaxRef } from "../../src/kernels/scan_ref.ts";
import {
  prepareGatherND,
  prepareScatterElements,
  prepareScatterND,
} from "../../src/kernels/scatter.ts";
import { gatherNDRef, scatterElementsRef, scatterNDRef } from "../../src/kernels/scatter_ref.ts";
import { SCATTER_REDUCTIONS } from "../../src/kernels/scatter_shape.ts";
import { prepareTopK } from "../../src/kernels/topk.ts";
import { topKRef } from "../../src/kernels/topk_ref.ts";
import { rng } from "../helpers.ts";
import {
  assertHalfValues,
  assertSameTensor,
  assertTensorClose,
  randomInts,
  randomTensor,
  runKernelWithStatus,
} from "./harness.ts";

/** Random integers with many repeats (ties) in [-range, range). */
function tiedTensor(
  dtype: DType,
  shape: readonly number[],
  seed: number,
  range: number,
): CpuTensor {
  return cpuTensor(dtype, shape, randomInts(sizeOf(shape), seed, -range, range));
}

Deno.test("topK: every axis, largest/smallest, ties by lower index, float and int", async () => {
  const gpu = await getGpu();
  const cases: number[][] = [[7], [5, 13], [3, 9, 5], [2, 3, 1, 11], [1, 300]];
  let seed = 1;
  for (const shape of cases) {
    for (let axis = 0; axis < shape.length; axis++) {
      for (const dtype of ["float32", "int64", "int32"] as const) {
        // Few distinct values make ties common, so the index tie-break is exercised.
        const x = dtype === "float32" && seed % 2 === 0
          ? randomTensor(dtype, shape, seed)
          : tiedTensor(dtype, shape, seed, 4);
        const n = shape[axis];
        const k = [1, Math.ceil(n / 2), n][seed % 3];
        const largest = seed % 4 !== 1;
        seed++;
        const [values, indices] = topKRef(x, axis, k, largest);
        const { outputs } = await runKernelWithStatus(
          gpu,
          [x],
          [values, indices],
          (s, [xi], [v, i]) => prepareTopK(gpu, s, xi, v, i, axis, k, largest),
        );
        const label = `topK ${shape} axis ${axis} k ${k} ${dtype} largest ${largest}`;
        assertSameTensor(outputs[0], values, `${label} values`);
        assertSameTensor(outputs[1], indices, `${label} indices`);
      }
    }
  }
});

Deno.test("topK: NaN sorts above +inf, -0 ties with +0 by index", async () => {
  const gpu = await getGpu();
  const x = cpuTensor("float32", [7], [1, NaN, -0, Infinity, 0, -Infinity, NaN]);
  for (const largest of [true, false]) {
    const [values, indices] = topKRef(x, 0, 7, largest);
    const { outputs } = await runKernelWithStatus(
      gpu,
      [x],
      [values, indices],
      (s, [xi], [v, i]) => prepareTopK(gpu, s, xi, v, i, 0, 7, largest),
    );
    assertSameTensor(outputs[1], indices, `nan order largest ${largest}`);
  }
  deepStrictEqual(Array.from(topKRef(x, 0, 7, true)[1].data), [1, 6, 3, 0, 2, 4, 5]);
});

Deno.test("gatherND: batch_dims 0..2, tuple lengths, negative indices", async () => {
  const gpu = await getGpu();
  const cases: { data: number[]; idx: number[]; b: number }[] = [
    { data: [5, 7], idx: [3, 2], b: 0 },
    { data: [5, 7], idx: [9, 1], b: 0 },
    { data: [3, 5, 7], idx: [2, 3, 2], b: 0 },
    { data: [3, 5, 7], idx: [3, 4, 1], b: 1 },
    { data: [3, 5, 7, 2], idx: [3, 5, 2, 2], b: 2 },
    { data: [2, 3, 5], idx: [2, 3], b: 0 },
    { data: [4, 3], idx: [4, 1], b: 1 },
  ];
  let seed = 10;
  for (const { data: dshape, idx, b } of cases) {
    const depth = idx[idx.length - 1];
    const tuples = sizeOf(idx) / depth;
    const values: number[] = [];
    const r = rng(seed);
    for (let u = 0; u < tuples; u++) {
      for (let j = 0; j < depth; j++) {
        const dim = dshape[b + j];
        values.push(Math.floor(r() * 2 * dim) - dim);
      }
    }
    for (const idxType of ["int64", "int32"] as const) {
      const indices = cpuTensor(idxType, idx, values);
      const data = randomTensor(seed % 2 ? "float32" : "int64", dshape, seed);
      seed++;
      const expected = gatherNDRef(data, indices, b);
      const { outputs: [got], status } = await runKernelWithStatus(
        gpu,
        [data, indices],
        [expected],
        (s, [d, i], [o], st) => prepareGatherND(gpu, s, d, i, o, b, st),
      );
      assertSameTensor(got, expected, `gatherND ${dshape} idx ${idx} b ${b}`);
      deepStrictEqual(status, [0, 0]);
    }
  }
});

Deno.test("scatterND: every reduction, slices and elements, duplicates under reductions", async () => {
  const gpu = await getGpu();
  const cases: { data: number[]; idx: number[] }[] = [
    { data: [9], idx: [5, 1] },
    { data: [5, 7], idx: [3, 1] },
    { data: [5, 7], idx: [11, 2] },
    { data: [3, 5, 7], idx: [2, 2, 2] },
    { data: [4, 3, 5], idx: [1, 3] },
  ];
  let seed = 30;
  for (const { data: dshape, idx } of cases) {
    for (const reduction of SCATTER_REDUCTIONS) {
      const depth = idx[idx.length - 1];
      const tuples = sizeOf(idx) / depth;
      // "none" needs distinct tuples (ONNX): draw a permutation of addressable positions.
      const space = sizeOf(dshape.slice(0, depth));
      const r = rng(seed);
      const picks = reduction === "none"
        ? [...Array(space).keys()].sort(() => r() - 0.5).slice(0, tuples)
        : Array.from({ length: tuples }, () => Math.floor(r() * space));
      if (picks.length < tuples) continue;
      const values: number[] = [];
      for (const p of picks) {
        let rest = p;
        const tuple = new Array<number>(depth);
        for (let j = depth - 1; j >= 0; j--) {
          tuple[j] = rest % dshape[j];
          rest = Math.floor(rest / dshape[j]);
          if (r() < 0.3) tuple[j] -= dshape[j]; // negative form of the same index
        }
        values.push(...tuple);
      }
      const indices = cpuTensor("int64", idx, values);
      const dtype = (["float32", "int32", "float16"] as const)[seed % 3];
      const data = randomTensor(dtype, dshape, seed);
      const updates = randomTensor(dtype, [...idx.slice(0, -1), ...dshape.slice(depth)], seed + 1);
      seed++;
      const expected = scatterNDRef(data, indices, updates, reduction);
      const { outputs: [got], status } = await runKernelWithStatus(
        gpu,
        [data, indices, updates],
        [expected],
        (s, [d, i, u], [o], st) => prepareScatterND(gpu, s, d, i, u, o, reduction, st),
      );
      const label = `scatterND ${dshape} idx ${idx} ${reduction} ${dtype}`;
      if (dtype !== "int32" && reduction !== "none") {
        assertTensorClose(got, expected, { label, rtol: 1e-6 });
        if (dtype === "float16") assertHalfValues(got, label);
      } else assertSameTensor(got, expected, label);
      deepStrictEqual(status, [0, 0]);
    }
  }
});

Deno.test("scatterElements: every axis and reduction, smaller indices, duplicates", async () => {
  const gpu = await getGpu();
  const cases: { data: number[]; idx: number[] }[] = [
    { data: [7], idx: [5] },
    { data: [3, 5], idx: [3, 4] },
    { data: [4, 3, 5], idx: [2, 3, 3] },
    { data: [2, 3, 4, 5], idx: [2, 2, 3, 5] },
  ];
  let seed = 60;
  for (const { data: dshape, idx } of cases) {
    for (let axis = 0; axis < dshape.length; axis++) {
      for (const reduction of SCATTER_REDUCTIONS) {
        const dim = dshape[axis];
        // int32, not int64: the GPU runs int64 as i32, so mul would wrap only there.
        const dtype = seed % 2 ? "float32" : "int32";
        const data = randomTensor(dtype, dshape, seed);
        const updates = randomTensor(dtype, idx, seed + 1);
        const indices = cpuTensor("int32", idx, randomInts(sizeOf(idx), seed + 2, -dim, dim));
        seed++;
        const expected = scatterElementsRef(data, indices, updates, axis, reduction);
        const { outputs: [got], status } = await runKernelWithStatus(
          gpu,
          [data, indices, updates],
          [expected],
          (s, [d, i, u], [o], st) =>
            prepareScatterElements(gpu, s, d, i, u, o, axis, reduction, st),
        );
        const label = `scatterElements ${dshape} idx ${idx} axis ${axis} ${reduction}`;
        assertSameTensor(got, expected, label);
        deepStrictEqual(status, [0, 0]);
      }
    }
  }
});

Deno.test("scatter family: out-of-range GPU indices are skipped (0 for gatherND) and reported", async () => {
  const gpu = await getGpu();
  const data = cpuTensor("float32", [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  // GatherND: tuple 1 is out of range: its slice reads 0 and the status holds the index.
  const idx = cpuTensor("int64", [3, 1], [3, 9, -4]);
  throws(() => gatherNDRef(data, idx, 0), /index 9 is outside \[-4, 4\)/);
  const g = await runKernelWithStatus(
    gpu,
    [data, idx],
    [{ shape: [3, 2], dtype: "float32" }],
    (s, [d, i], [o], st) => prepareGatherND(gpu, s, d, i, o, 0, st),
  );
  deepStrictEqual(Array.from(g.outputs[0].data), [7, 8, 0, 0, 1, 2]);
  deepStrictEqual(g.status, [1, 9]);
  // ScatterND: the bad update is skipped, the others land.
  const upd = cpuTensor("float32", [3, 2], [10, 11, 12, 13, 14, 15]);
  const sidx = cpuTensor("int32", [3, 1], [-1, -5, 1]);
  const sn = await runKernelWithStatus(
    gpu,
    [data, sidx, upd],
    [{ shape: [4, 2], dtype: "float32" }],
    (s, [d, i, u], [o], st) => prepareScatterND(gpu, s, d, i, u, o, "add", st),
  );
  deepStrictEqual(Array.from(sn.outputs[0].data), [1, 2, 17, 19, 5, 6, 17, 19]);
  deepStrictEqual(sn.status, [1, -5]);
  // ScatterElements along axis 1.
  const eidx = cpuTensor("int64", [4, 1], [0, 2, -1, -3]);
  const eupd = cpuTensor("float32", [4, 1], [-1, -2, -3, -4]);
  const se = await runKernelWithStatus(
    gpu,
    [data, eidx, eupd],
    [{ shape: [4, 2], dtype: "float32" }],
    (s, [d, i, u], [o], st) => prepareScatterElements(gpu, s, d, i, u, o, 1, "none", st),
  );
  deepStrictEqual(Array.from(se.outputs[0].data), [-1, 2, 3, 4, 5, -3, 7, 8]);
  deepStrictEqual(se.status[0], 1);
});

Deno.test("trilu and eye: every k across the band, batched, any dtype", async () => {
  const gpu = await getGpu();
  let seed = 90;
  for (const shape of [[5, 7], [7, 5], [3, 4, 6], [2, 1, 9], [1, 1]]) {
    const [rows, cols] = shape.slice(-2);
    for (const k of [-rows - 2, -2, -1, 0, 1, 3, cols + 1]) {
      for (const upper of [true, false]) {
        const dtype = (["float32", "int64", "bool"] as const)[seed % 3];
        const x = randomTensor(dtype, shape, seed++);
        const expected = triluRef(x, k, upper);
        const { outputs: [got] } = await runKernelWithStatus(
          gpu,
          [x],
          [expected],
          (s, [xi], [o]) => prepareTrilu(gpu, s, xi, o, k, upper),
        );
        assertSameTensor(got, expected, `trilu ${shape} k ${k} upper ${upper}`);
      }
      if (shape.length === 2) {
        for (const dtype of ["float32", "int32", "bool"] as const) {
          const expected = eyeRef(dtype, rows, cols, k);
          const { outputs: [got] } = await runKernelWithStatus(
            gpu,
            [],
            [expected],
            (s, _, [o]) => prepareEye(gpu, s, o, k),
          );
          assertSameTensor(got, expected, `eye ${shape} k ${k} ${dtype}`);
        }
      }
    }
  }
});

Deno.test("cumsum: every axis, exclusive and reverse, float and int", async () => {
  const gpu = await getGpu();
  let seed = 120;
  for (const shape of [[9], [5, 7], [3, 1, 11], [2, 3, 5, 3]]) {
    for (let axis = 0; axis < shape.length; axis++) {
      for (const exclusive of [false, true]) {
        for (const reverse of [false, true]) {
          const dtype = (["float32", "int32", "int64", "float16"] as const)[seed % 4];
          const x = randomTensor(dtype, shape, seed++);
          const expected = cumsumRef(x, axis, exclusive, reverse);
          const { outputs: [got] } = await runKernelWithStatus(
            gpu,
            [x],
            [expected],
            (s, [xi], [o]) => prepareCumSum(gpu, s, xi, o, axis, exclusive, reverse),
          );
          const label = `cumsum ${shape} axis ${axis} excl ${exclusive} rev ${reverse}`;
          assertSameTensor(got, expected, label);
        }
      }
    }
  }
});

Deno.test("hardmax: every axis, ties pick the first maximum", async () => {
  const gpu = await getGpu();
  let seed = 150;
  for (const shape of [[9], [5, 7], [3, 1, 11], [2, 3, 5, 3]]) {
    for (let axis = 0; axis < shape.length; axis++) {
      const x = seed % 2
        ? randomTensor("float32", shape, seed)
        : tiedTensor("float32", shape, seed, 2);
      seed++;
      const expected = hardmaxRef(x, axis);
      const { outputs: [got] } = await runKernelWithStatus(
        gpu,
        [x],
        [expected],
        (s, [xi], [o]) => prepareHardmax(gpu, s, xi, o, axis),
      );
      assertSameTensor(got, expected, `hardmax ${shape} axis ${axis}`);
    }
  }
});

Deno.test("oneHot: every axis, negative and out-of-range indices, float indices", async () => {
  const gpu = await getGpu();
  let seed = 180;
  for (const shape of [[7], [3, 5], [2, 3, 4]]) {
    for (let axis = 0; axis <= shape.length; axis++) {
      const depth = [5, 1, 11][seed % 3];
      const itype = (["int64", "int32", "float32"] as const)[seed % 3];
      const indices = cpuTensor(
        itype,
        shape,
        randomInts(sizeOf(shape), seed, -depth - 2, depth + 2).map((v) =>
          itype === "float32" ? v + 0.5 * Math.sign(v) : v
        ),
      );
      const vtype = (["float32", "int64"] as const)[seed % 2];
      const values = cpuTensor(vtype, [2], [-3, 7]);
      seed++;
      const expected = oneHotRef(indices, depth, values, axis);
      const { outputs: [got] } = await runKernelWithStatus(
        gpu,
        [indices, values],
        [expected],
        (s, [i, v], [o]) => prepareOneHot(gpu, s, i, v, o, depth, axis),
      );
      assertSameTensor(got, expected, `oneHot ${shape} axis ${axis} depth ${depth} ${itype}`);
    }
  }
});

Deno.test("einsum: matmul, batch, transpose, traces, diagonals, ellipsis, implicit output", async () => {
  const gpu = await getGpu();
  const cases: [string, number[][]][] = [
    ["ij,jk->ik", [[3, 5], [5, 7]]],
    ["ij,jk", [[3, 5], [5, 7]]],
    ["bij,bjk->bik", [[2, 3, 5], [2, 5, 3]]],
    ["ij->ji", [[5, 3]]],
    ["ii->i", [[5, 5]]],
    ["ii", [[7, 7]]],
    ["ii->", [[7, 7]]],
    ["bii->bi", [[3, 5, 5]]],
    ["i,i", [[9], [9]]],
    ["i,j->ij", [[3], [5]]],
    ["...ij,...jk->...ik", [[2, 3, 3, 5], [3, 5, 2]]],
    ["...ij->...ji", [[2, 3, 5]]],
    ["b...,b->...", [[3, 2, 5], [3]]],
    ["bhqd,bhkd->bhqk", [[1, 3, 5, 7], [1, 3, 4, 7]]],
    ["ij,jk,kl->il", [[3, 2], [2, 5], [5, 3]]],
    ["ij->", [[5, 3]]],
    ["iij->ji", [[3, 3, 5]]],
    [" i j , j k -> i k ", [[2, 3], [3, 2]]],
    ["ab,b->a", [[4, 1], [7]]],
  ];
  let seed = 210;
  for (const [equation, shapes] of cases) {
    for (const dtype of ["float32", "int32", "float16"] as const) {
      const ops = shapes.map((s) =>
        dtype === "int32" ? tiedTensor(dtype, s, seed++, 5) : randomTensor(dtype, s, seed++)
      );
      const expected = einsumRef(equation, ops);
      const { outputs: [got] } = await runKernelWithStatus(
        gpu,
        ops,
        [expected],
        (s, ins, [o]) => prepareEinsum(gpu, s, equation, ins, o),
      );
      const label = `einsum '${equation}' ${dtype}`;
      if (dtype !== "int32") {
        // float16: the f32 sums may differ in the last bit, which can flip the rounding to half.
        const rtol = dtype === "float16" ? 2e-3 : 1e-5;
        assertTensorClose(got, expected, { label, rtol, atol: 1e-6 });
        if (dtype === "float16") assertHalfValues(got, label);
      } else assertSameTensor(got, expected, label);
    }
  }
  // Shapes and semantics the reference itself must get right.
  deepStrictEqual(planEinsum("ij,jk", [[2, 3], [3, 4]]).outShape, [2, 4]);
  deepStrictEqual(planEinsum("ba", [[2, 3]]).outShape, [3, 2]);
  deepStrictEqual(planEinsum("...i,...i", [[2, 1, 4], [3, 4]]).outShape, [2, 3]);
  const m = cpuTensor("float32", [2, 2], [1, 2, 3, 4]);
  deepStrictEqual(Array.from(einsumRef("ii", [m]).data), [5]);
  deepStrictEqual(Array.from(einsumRef("ij->ji", [m]).data), [1, 3, 2, 4]);
  deepStrictEqual(Array.from(einsumRef("ij,jk", [m, m]).data), [7, 10, 15, 22]);
  throws(() => planEinsum("ij,jk", [[2, 3], [4, 5]]), /label 'j' is 3/);
  throws(() => planEinsum("ij", [[2, 3, 4]]), /2 labels for input 0 of rank 3/);
  throws(() => planEinsum("ij->ii", [[2, 2]]), /repeated output label/);
  throws(() => planEinsum("i,j", [[2]]), /2 operand terms for 1 inputs/);
});
