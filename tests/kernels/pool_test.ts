import { deepStrictEqual } from "node:assert/strict";
import { getGpu } from "../../src/gpu/mod.ts";
import { cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { globalPoolAttrs, type PoolKind, preparePool } from "../../src/kernels/pool.ts";
import { avgPoolRef, maxPoolRef } from "../../src/kernels/pool_ref.ts";
import { type PoolAttrs, poolOutputShape } from "../../src/kernels/pool_shape.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

interface Case {
  x: number[];
  kernel?: number[];
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  ceil?: boolean;
  includePad?: boolean;
  storageOrder?: number;
  global?: boolean;
  f16?: boolean;
}

let seed = 100;

async function check(kind: PoolKind, cs: Case, withIndices = false): Promise<void> {
  const gpu = await getGpu();
  const rank = cs.x.length - 2;
  const attrs: PoolAttrs = cs.global ? globalPoolAttrs(cs.x) : {
    kernel: cs.kernel!,
    strides: cs.strides ?? Array(rank).fill(1),
    pads: cs.pads ?? Array(2 * rank).fill(0),
    dilations: cs.dilations ?? Array(rank).fill(1),
    ceilMode: cs.ceil,
    countIncludePad: cs.includePad,
    storageOrder: cs.storageOrder,
  };
  const dtype = cs.f16 ? "float16" : "float32";
  const xData = randomFloats(cs.x.reduce((a, b) => a * b, 1), seed++, -2, 2);
  if (cs.f16) xData.forEach((v, i) => xData[i] = roundToF16(v));
  const yShape = poolOutputShape(cs.x, attrs);
  const outputs = [yShape, ...(withIndices ? [{ shape: yShape, dtype: "int64" as const }] : [])];
  const [got, indices] = await runKernel(
    gpu,
    [cpuTensor(dtype, cs.x, xData)],
    outputs,
    (scope, [x], [y, i]) => preparePool(gpu, scope, kind, x, y, attrs, i),
  );
  const label = `${kind} ${JSON.stringify(cs)}`;
  if (kind === "max") {
    const ref = maxPoolRef(xData, cs.x, attrs);
    assertClose(got.data, ref.data, { rtol: 0, atol: 0, label });
    if (indices) deepStrictEqual(Array.from(indices.data), Array.from(ref.indices), label);
  } else {
    const ref = avgPoolRef(xData, cs.x, attrs).data;
    if (cs.f16) {
      assertHalfValues(got, label);
      assertClose(got.data, ref.map(roundToF16), { rtol: 1e-3, atol: 1e-3, label });
    } else {
      assertClose(got.data, ref, { rtol: 1e-5, atol: 1e-6, label });
    }
  }
}

const CASES: Case[] = [
  { x: [1, 1, 5, 5], kernel: [2, 2] },
  { x: [2, 3, 13, 11], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
  { x: [1, 64, 17, 17], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, // ResNet stem
  { x: [1, 4, 8, 8], kernel: [2, 2], strides: [2, 2] }, // CLIP anti-aliased downsampling
  { x: [1, 2, 7, 9], kernel: [3, 2], strides: [2, 3], pads: [0, 1, 2, 1] },
  { x: [1, 2, 10, 9], kernel: [3, 3], strides: [2, 2], ceil: true },
  { x: [1, 2, 4, 4], kernel: [3, 3], strides: [3, 3], pads: [1, 1, 1, 1], ceil: true },
  { x: [1, 3, 9, 8], kernel: [2, 3], dilations: [2, 2], strides: [1, 2], pads: [1, 0, 2, 1] },
  { x: [1, 3, 11, 10], kernel: [2, 2], dilations: [3, 2], strides: [2, 2], ceil: true },
  { x: [2, 3, 257], kernel: [4], strides: [3], pads: [2, 1] },
  { x: [1, 2, 13], kernel: [3], dilations: [2], ceil: true, strides: [2] },
  { x: [1, 2, 5, 6, 7], kernel: [2, 3, 2], strides: [2, 1, 2], pads: [1, 1, 0, 0, 1, 1] },
  { x: [1, 1, 9, 9, 9], kernel: [3, 3, 3], dilations: [2, 2, 2], strides: [3, 3, 3], ceil: true },
];

Deno.test("pool: max pooling matches the reference", async () => {
  for (const cs of CASES) await check("max", cs);
});

Deno.test("pool: average pooling, with and without count_include_pad", async () => {
  for (const cs of CASES) {
    await check("avg", cs);
    await check("avg", { ...cs, includePad: true });
  }
});

Deno.test("pool: max pooling indices, row- and column-major", async () => {
  await check(
    "max",
    { x: [2, 3, 7, 9], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    true,
  );
  await check("max", { x: [2, 3, 7, 9], kernel: [2, 2], strides: [2, 2], storageOrder: 1 }, true);
  await check("max", {
    x: [1, 2, 5, 4, 6],
    kernel: [2, 2, 3],
    storageOrder: 1,
    ceil: true,
    strides: [2, 2, 2],
  }, true);
  await check("max", { x: [3, 2, 11], kernel: [3], strides: [2], pads: [1, 1] }, true);
});

Deno.test("pool: float16 averages are rounded to half precision", async () => {
  await check("avg", {
    x: [1, 3, 9, 9],
    kernel: [3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    f16: true,
  });
  await check("max", { x: [1, 3, 9, 9], kernel: [3, 3], strides: [2, 2], f16: true });
  await check("avg", { x: [2, 3, 5, 5], global: true, f16: true });
});

Deno.test("pool: global average and max pooling", async () => {
  for (const x of [[1, 5, 7, 7], [2, 3, 1, 1], [1, 2, 13], [2, 2, 3, 4, 5], [1, 7, 56, 56]]) {
    await check("avg", { x, global: true });
    await check("max", { x, global: true });
  }
});
