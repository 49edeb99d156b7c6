import { deepStrictEqual, throws } from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { getGpu } from "../../src/gpu/mod.ts";
import { prepareGather } from "../../src/kernels/gather.ts";
import { gatherRef } from "../../src/kernels/gather_ref.ts";
import {
  movementTuning,
  prepareConcat,
  prepareExpand,
  prepareSlice,
  prepareSplit,
  simplifyRegion,
} from "../../src/kernels/copy.ts";
import { broadcastShapes } from "../../src/kernels/shape.ts";
import { concatRef, expandRef, sliceRef, splitRef } from "../../src/kernels/copy_ref.ts";
import { resolveSlice } from "../../src/kernels/copy_shape.ts";
import { rng } from "../helpers.ts";
import { assertSameTensor, randomTensor, runKernel } from "./harness.ts";

Deno.test("copy: region simplification merges contiguous axes and drops size-1 axes", () => {
  const r = simplifyRegion({
    shape: [2, 1, 3, 4],
    srcOffset: 5,
    srcStrides: [12, 99, 4, 1],
    dstOffset: 0,
    dstStrides: [12, 12, 4, 1],
  });
  deepStrictEqual(r?.shape, [24]);
  deepStrictEqual(r?.srcStrides, [1]);
  deepStrictEqual(simplifyRegion({ ...r!, shape: [3, 0] }), undefined);
});

Deno.test("resolveSlice: ONNX clamping, negative steps and INT64 sentinels", () => {
  const big = 9223372036854775807; // INT64_MAX as it arrives in a Float64Array
  deepStrictEqual(resolveSlice([10], [2], [big], [0], [1]).shape, [8]);
  deepStrictEqual(resolveSlice([10], [-big], [3], [0], [1]).shape, [3]);
  deepStrictEqual(resolveSlice([10], [-1], [-big], [0], [-1]), {
    starts: [9],
    steps: [-1],
    shape: [10],
  });
  deepStrictEqual(resolveSlice([10], [20], [-20], [0], [-3]), {
    starts: [9],
    steps: [-3],
    shape: [4],
  });
  deepStrictEqual(resolveSlice([10], [1000], [1001], [0], [1]).shape, [0]);
  deepStrictEqual(resolveSlice([10, 4], [5], [2], [0], [1]).shape, [0, 4]);
  throws(() => resolveSlice([3], [0], [3], [0], [0]), /step/);
});

Deno.test("slice: random slices with positive and negative steps at ranks 1..6", async () => {
  const gpu = await getGpu();
  const r = rng(11);
  let nonEmpty = 0;
  for (let trial = 0; trial < 24; trial++) {
    const rank = 1 + (trial % 6);
    const shape = Array.from({ length: rank }, () => 1 + Math.floor(r() * (rank > 3 ? 5 : 13)));
    const dtype = trial % 3 === 0 ? "int64" : "float32";
    const x = randomTensor(dtype, shape, trial);
    const axes = shape.map((_, d) => d).filter(() => r() < 0.7);
    const steps = axes.map(() => (r() < 0.5 ? -1 : 1) * (1 + Math.floor(r() * 3)));
    // Mostly non-empty ranges in absolute coordinates, then written in the forms ONNX allows:
    // counted from the end, or past the bounds (clamped).
    const starts: number[] = [];
    const ends: number[] = [];
    axes.forEach((a, k) => {
      const d = shape[a];
      const u = Math.floor(r() * d), v = Math.floor(r() * (d + 1));
      let [start, end] = steps[k] > 0
        ? [Math.min(u, v), Math.max(u, v) + 1]
        : [Math.max(u, v), Math.min(u, v) - 1];
      if (start < d && r() < 0.3) start -= d; // from the end
      if (r() < 0.2) start = steps[k] > 0 ? -1e19 : 1e19; // clamped: the whole axis
      if (end < 0) end = -d - 1 - Math.floor(r() * 3); // before the first element
      else if (end < d && r() < 0.3) end -= d;
      else if (end >= d && r() < 0.5) end = 2 ** 63;
      starts.push(start);
      ends.push(end);
    });
    const sl = resolveSlice(shape, starts, ends, axes, steps);
    const expected = sliceRef(x, sl);
    const [got] = await runKernel(
      gpu,
      [x],
      [sl.shape],
      (s, [a], [o]) => prepareSlice(gpu, s, a, o, sl.starts, sl.steps),
    );
    assertSameTensor(got, expected, `slice ${shape} axes ${axes} ${starts}:${ends}:${steps}`);
    if (expected.data.length > 1) nonEmpty++;
  }
  if (nonEmpty < 12) throw new Error(`only ${nonEmpty} of 24 random slices were non-trivial`);
});

Deno.test("slice: reversing a whole odd-sized axis", async () => {
  const gpu = await getGpu();
  const x = randomTensor("float32", [3, 257], 4);
  const sl = resolveSlice(x.shape, [-1], [-1e30], [1], [-1]);
  const [got] = await runKernel(
    gpu,
    [x],
    [sl.shape],
    (s, [a], [o]) => prepareSlice(gpu, s, a, o, sl.starts, sl.steps),
  );
  deepStrictEqual(got.data[0], x.data[256]);
  assertSameTensor(got, sliceRef(x, sl), "reverse");
});

Deno.test("concat: any number of inputs, zero-sized ones, every axis, ranks 1..5", async () => {
  const gpu = await getGpu();
  const r = rng(5);
  for (let rank = 1; rank <= 5; rank++) {
    for (let axis = 0; axis < rank; axis++) {
      const base = Array.from({ length: rank }, () => 1 + Math.floor(r() * 5));
      const count = 1 + Math.floor(r() * 4);
      const inputs = Array.from({ length: count }, (_, k) => {
        const shape = [...base];
        shape[axis] = k === 1 ? 0 : 1 + Math.floor(r() * 7);
        return randomTensor(rank % 2 ? "float32" : "int32", shape, rank * 100 + axis * 10 + k);
      });
      const expected = concatRef(inputs, axis);
      const [got] = await runKernel(
        gpu,
        inputs,
        [expected.shape],
        (s, ins, [o]) => prepareConcat(gpu, s, ins, o, axis),
      );
      assertSameTensor(got, expected, `concat rank ${rank} axis ${axis}`);
    }
  }
});

Deno.test("split: even, uneven and zero-size parts", async () => {
  const gpu = await getGpu();
  const cases: [number[], number, number[]][] = [
    [[6], 0, [2, 2, 2]],
    [[7, 3], 0, [3, 4]],
    [[2, 13, 3], 1, [1, 0, 5, 7]],
    [[2, 3, 257], 2, [256, 1]],
    [[4, 5], 1, [0, 5]],
  ];
  for (const [shape, axis, sizes] of cases) {
    const x = randomTensor("float32", shape, sizes.length);
    const expected = splitRef(x, sizes, axis);
    const got = await runKernel(
      gpu,
      [x],
      expected.map((t) => t.shape),
      (s, [a], outs) => prepareSplit(gpu, s, a, outs, axis),
    );
    expected.forEach((e, k) => assertSameTensor(got[k], e, `split ${shape} part ${k}`));
  }
});

Deno.test("expand: numpy broadcasting in both directions", async () => {
  const gpu = await getGpu();
  deepStrictEqual(broadcastShapes([3, 1], [2, 1, 6]), [2, 3, 6]);
  deepStrictEqual(broadcastShapes([3, 2], [4]), undefined);
  const cases: [number[], number[]][] = [
    [[1], [7]],
    [[3, 1], [2, 3, 13]],
    [[1, 4, 1], [5, 4, 3]],
    [[2, 1, 1, 3], [2, 6, 5, 3]],
    [[], [2, 3]],
    [[5], [1, 5]],
  ];
  for (const [shape, target] of cases) {
    const x = randomTensor("int32", shape, shape.length + 1);
    const outShape = broadcastShapes(shape, target)!;
    const expected = expandRef(x, outShape);
    const [got] = await runKernel(
      gpu,
      [x],
      [outShape],
      (s, [a], [o]) => prepareExpand(gpu, s, a, o),
    );
    assertSameTensor(got, expected, `expand ${shape} -> ${outShape}`);
  }
  // The reference itself: each output element comes from the right input element.
  const x = randomTensor("float32", [3, 1], 9);
  const y = expandRef(x, [2, 3, 4]);
  deepStrictEqual(y.data[1 * 12 + 2 * 4 + 3], x.data[2]);
});

Deno.test("copy: scalar and vec4 words, interleaved and consecutive runs agree", async () => {
  const gpu = await getGpu();
  const x = randomTensor("float32", [6, 8, 40], 12); // last axis: vec4-aligned
  const y = randomTensor("int32", [6, 8, 37], 13); // last axis: scalar words only
  const t = randomTensor("float32", [3, 8, 40], 14);
  try {
    for (const interleave of [true, false]) {
      movementTuning.interleave = interleave;
      for (const a of [x, y]) {
        const sl = resolveSlice(a.shape, [1, 4], [6, 1e19], [0, 2], [2, 1]);
        const [got] = await runKernel(
          gpu,
          [a],
          [sl.shape],
          (s, [i], [o]) => prepareSlice(gpu, s, i, o, sl.starts, sl.steps),
        );
        assertSameTensor(got, sliceRef(a, sl), `slice ${a.shape} interleave ${interleave}`);
      }
      const expected = concatRef([x, t], 0);
      const [got] = await runKernel(
        gpu,
        [x, t],
        [expected.shape],
        (s, ins, [o]) => prepareConcat(gpu, s, ins, o, 0),
      );
      assertSameTensor(got, expected, `concat interleave ${interleave}`);
      const table = randomTensor("float32", [20, 100], 15);
      const ids = cpuTensor("int32", [7], [3, -1, 0, 19, 5, 5, 2]);
      const [rows] = await runKernel(
        gpu,
        [table, ids],
        [[7, 100]],
        (s, [d, i], [o]) => prepareGather(gpu, s, d, i, o, 0),
      );
      assertSameTensor(rows, gatherRef(table, ids, 0), `gather interleave ${interleave}`);
    }
  } finally {
    movementTuning.interleave = "auto";
  }
});
