import "../gpu_teardown.ts";
import { deepStrictEqual, throws } from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { getGpu } from "../../src/gpu/mod.ts";
import { prepareGather, prepareGatherElements } from "../../src/kernels/gather.ts";
import { gatherElementsRef, gatherRef } from "../../src/kernels/gather_ref.ts";
import { gatherShape } from "../../src/kernels/gather_shape.ts";
import { assertSameTensor, randomInts, randomTensor, runKernel } from "./harness.ts";

Deno.test("gather: every axis, negative and 2-D indices, int32/int64 indices", async () => {
  const gpu = await getGpu();
  const cases: [number[], number[]][] = [
    [[7], [3]],
    [[5, 4], [2, 3]],
    [[3, 13, 2], [4]],
    [[2, 3, 4, 5], [1]],
    [[1, 257], [7, 2]],
    [[4, 3, 2, 3, 2], []], // scalar index: the axis disappears
  ];
  let seed = 1;
  for (const [shape, idxShape] of cases) {
    for (let axis = 0; axis < shape.length; axis++) {
      const dim = shape[axis];
      for (const idxType of ["int64", "int32"] as const) {
        const n = idxShape.reduce((a, b) => a * b, 1);
        const indices = cpuTensor(idxType, idxShape, randomInts(n, seed, -dim, dim));
        const data = randomTensor(seed % 2 ? "float32" : "int64", shape, seed);
        seed++;
        const expected = gatherRef(data, indices, axis);
        const [got] = await runKernel(
          gpu,
          [data, indices],
          [expected.shape],
          (s, [d, i], [o]) => prepareGather(gpu, s, d, i, o, axis),
        );
        assertSameTensor(got, expected, `gather ${shape} axis ${axis} idx ${idxShape}`);
      }
    }
  }
});

Deno.test("gather: embedding rows and batch rows by permutation (bool data too)", async () => {
  const gpu = await getGpu();
  const table = randomTensor("float32", [50, 768], 3);
  const ids = cpuTensor("int64", [2, 77], randomInts(154, 4, 0, 50));
  const expected = gatherRef(table, ids, 0);
  deepStrictEqual(expected.shape, [2, 77, 768]);
  const [got] = await runKernel(
    gpu,
    [table, ids],
    [expected.shape],
    (s, [d, i], [o]) => prepareGather(gpu, s, d, i, o, 0),
  );
  assertSameTensor(got, expected, "embedding");
  const flags = randomTensor("bool", [9, 3], 5);
  const perm = cpuTensor("int32", [9], [3, 1, 4, 0, 8, 5, 2, 7, 6]);
  const [rows] = await runKernel(
    gpu,
    [flags, perm],
    [[9, 3]],
    (s, [d, i], [o]) => prepareGather(gpu, s, d, i, o, 0),
  );
  assertSameTensor(rows, gatherRef(flags, perm, 0), "bool rows");
});

Deno.test("gather: out-of-range indices are clamped on the GPU, rejected on the CPU", async () => {
  const gpu = await getGpu();
  const data = cpuTensor("float32", [4], [10, 11, 12, 13]);
  const indices = cpuTensor("int32", [4], [7, -9, -1, 2]);
  throws(() => gatherRef(data, indices, 0), /index 7 out of range/);
  const [got] = await runKernel(
    gpu,
    [data, indices],
    [[4]],
    (s, [d, i], [o]) => prepareGather(gpu, s, d, i, o, 0),
  );
  deepStrictEqual(Array.from(got.data), [13, 10, 13, 12]);
  deepStrictEqual(gatherShape([2, 3, 4], [5, 6], 1), [2, 5, 6, 4]);
});

Deno.test("gatherElements: every axis, ranks 1..4, negative indices", async () => {
  const gpu = await getGpu();
  const cases: [number[], number[]][] = [
    [[7], [5]],
    [[3, 4], [2, 4]],
    [[3, 5, 2], [3, 7, 2]],
    [[2, 3, 4, 5], [2, 3, 4, 5]],
  ];
  let seed = 40;
  for (const [shape, idxShape] of cases) {
    for (let axis = 0; axis < shape.length; axis++) {
      // Off the axis, the indices' extent may not exceed data's.
      const iShape = idxShape.map((n, d) => (d === axis ? n : Math.min(n, shape[d])));
      const n = iShape.reduce((a, b) => a * b, 1);
      const indices = cpuTensor("int64", iShape, randomInts(n, seed, -shape[axis], shape[axis]));
      const data = randomTensor("float32", shape, seed++);
      const expected = gatherElementsRef(data, indices, axis);
      const [got] = await runKernel(
        gpu,
        [data, indices],
        [expected.shape],
        (s, [d, i], [o]) => prepareGatherElements(gpu, s, d, i, o, axis),
      );
      assertSameTensor(got, expected, `gatherElements ${shape} axis ${axis}`);
    }
  }
});
