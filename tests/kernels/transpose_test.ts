import { getGpu } from "../../src/gpu/mod.ts";
import {
  prepareDepthToSpace,
  prepareSpaceToDepth,
  prepareTranspose,
} from "../../src/kernels/transpose.ts";
import { depthToSpaceRef, spaceToDepthRef, transposeRef } from "../../src/kernels/transpose_ref.ts";
import { reversedPerm } from "../../src/kernels/transpose_shape.ts";
import { rng } from "../helpers.ts";
import { assertSameTensor, permutations, randomTensor, runKernel } from "./harness.ts";

Deno.test("transpose: every permutation of rank 3 and 4 at odd sizes", async () => {
  const gpu = await getGpu();
  const shapes = [[3, 7, 5], [2, 3, 5, 7], [1, 13, 1, 3]];
  let seed = 1;
  for (const shape of shapes) {
    const x = randomTensor("float32", shape, seed++);
    for (const perm of permutations(shape.length)) {
      const expected = transposeRef(x, perm);
      const [got] = await runKernel(
        gpu,
        [x],
        [expected.shape],
        (s, [a], [o]) => prepareTranspose(gpu, s, a, o, perm),
      );
      assertSameTensor(got, expected, `transpose ${shape} perm ${perm}`);
    }
  }
});

Deno.test("transpose: random perms at ranks 1..6, int32 and bool data", async () => {
  const gpu = await getGpu();
  const r = rng(7);
  for (let rank = 1; rank <= 6; rank++) {
    for (const dtype of ["int32", "bool"] as const) {
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(r() * (rank > 4 ? 4 : 7)));
      const perms = permutations(rank);
      const perm = perms[Math.floor(r() * perms.length)];
      const x = randomTensor(dtype, shape, rank * 10);
      for (const p of [perm, reversedPerm(rank)]) {
        const expected = transposeRef(x, p);
        const [got] = await runKernel(
          gpu,
          [x],
          [expected.shape],
          (s, [a], [o]) => prepareTranspose(gpu, s, a, o, p),
        );
        assertSameTensor(got, expected, `transpose ${dtype} ${shape} perm ${p}`);
      }
    }
  }
});

Deno.test("transpose: tiled and strided kernels agree on batched 2-D transposes", async () => {
  const gpu = await getGpu();
  const cases: [number[], number[]][] = [
    [[2, 3], [1, 0]],
    [[7, 13], [1, 0]],
    [[33, 65], [1, 0]],
    [[3, 31, 257], [0, 2, 1]],
    [[2, 5, 3, 40], [0, 3, 1, 2]], // NCHW -> NHWC: [2, 15, 40] batched
    [[2, 40, 3, 5], [0, 2, 3, 1]], // NHWC -> NCHW
  ];
  for (const [shape, perm] of cases) {
    const x = randomTensor("float32", shape, shape.length);
    const expected = transposeRef(x, perm);
    for (const variant of ["tiled", "strided", "auto"] as const) {
      const [got] = await runKernel(
        gpu,
        [x],
        [expected.shape],
        (s, [a], [o]) => prepareTranspose(gpu, s, a, o, perm, variant),
      );
      assertSameTensor(got, expected, `transpose ${variant} ${shape} perm ${perm}`);
    }
  }
});

Deno.test("transpose: attention reshape [8,197,12,64] -> [8,12,197,64] and empty tensors", async () => {
  const gpu = await getGpu();
  const x = randomTensor("float32", [8, 197, 12, 64], 3);
  const perm = [0, 2, 1, 3];
  const expected = transposeRef(x, perm);
  const [got] = await runKernel(
    gpu,
    [x],
    [expected.shape],
    (s, [a], [o]) => prepareTranspose(gpu, s, a, o, perm),
  );
  assertSameTensor(got, expected, "attention transpose");
  const empty = randomTensor("float32", [3, 0, 2], 1);
  const [e] = await runKernel(
    gpu,
    [empty],
    [[2, 3, 0]],
    (s, [a], [o]) => prepareTranspose(gpu, s, a, o, [2, 0, 1]),
  );
  assertSameTensor(e, transposeRef(empty, [2, 0, 1]), "empty transpose");
});

Deno.test("depthToSpace (DCR, CRD) and spaceToDepth match their index formulas", async () => {
  const gpu = await getGpu();
  for (
    const [shape, block] of [[[1, 8, 2, 3], 2], [[2, 27, 3, 1], 3], [[1, 4, 1, 1], 2]] as const
  ) {
    const x = randomTensor("float32", shape, block);
    for (const mode of ["DCR", "CRD"] as const) {
      const expected = depthToSpaceRef(x, block, mode);
      const [got] = await runKernel(
        gpu,
        [x],
        [expected.shape],
        (s, [a], [o]) => prepareDepthToSpace(gpu, s, a, o, block, mode),
      );
      assertSameTensor(got, expected, `depthToSpace ${mode} ${shape}`);
    }
    // SpaceToDepth inverts DCR.
    const y = depthToSpaceRef(x, block, "DCR");
    const expected = spaceToDepthRef(y, block);
    assertSameTensor(expected, x, `spaceToDepth inverts depthToSpace ${shape}`);
    const [got] = await runKernel(
      gpu,
      [y],
      [expected.shape],
      (s, [a], [o]) => prepareSpaceToDepth(gpu, s, a, o, block),
    );
    assertSameTensor(got, expected, `spaceToDepth ${shape}`);
  }
});
