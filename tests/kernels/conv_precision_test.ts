/** Conv with half-precision weights (`precision: "f16"`): constant weights are stored as
 * rgba16float texels, so the result equals the float64 convolution of the float16-rounded
 * weights (float32 accumulation), differs from the float32 result, and stays within float16
 * rounding of it. Weights computed on the GPU are not rounded. */
import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/mod.ts";
import { cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { prepareConv } from "../../src/kernels/conv.ts";
import { convRef } from "../../src/kernels/conv_ref.ts";
import { type ConvAttrs, convOutputShape } from "../../src/kernels/conv_shape.ts";
import { MATMUL_KERNEL, matmulProblem, matmulProblemKey } from "../../src/kernels/matmul.ts";
import { VariantCache } from "../../src/kernels/variants.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { runKernel } from "./harness.ts";

const CASES: { x: number[]; w: number[]; attrs: ConvAttrs; channelBlocks?: number }[] = [
  {
    x: [2, 5, 13, 11],
    w: [12, 5, 3, 3],
    attrs: { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 },
  },
  {
    x: [1, 8, 9, 9],
    w: [8, 2, 3, 3],
    attrs: { strides: [2, 2], pads: [0, 1, 0, 1], dilations: [1, 1], group: 4 },
    channelBlocks: 1,
  },
  {
    x: [3, 7, 17],
    w: [9, 7, 1],
    attrs: { strides: [1], pads: [0, 0], dilations: [1], group: 1, relu: true },
    channelBlocks: 2, // the direct kernel (pointwise convolutions default to the matmul)
  },
];

Deno.test("conv f16 weights: exact for rounded weights, within half rounding of float32", async () => {
  const gpu = await getGpu();
  let seed = 40;
  for (const cs of CASES) {
    const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
    const xData = randomFloats(n(cs.x), seed++);
    const wData = randomFloats(n(cs.w), seed++);
    const bData = randomFloats(cs.w[0], seed++);
    const yShape = convOutputShape(cs.x, cs.w, cs.attrs);
    const exact = convRef(xData, cs.x, wData, cs.w, bData, cs.attrs).data;
    const rounded = convRef(xData, cs.x, wData.map(roundToF16), cs.w, bData, cs.attrs).data;
    const x = cpuTensor("float32", cs.x, xData);
    const w = cpuTensor("float32", cs.w, wData), b = cpuTensor("float32", [cs.w[0]], bData);
    const label = JSON.stringify(cs);
    const opts = { precision: "f16" as const, channelBlocks: cs.channelBlocks };
    const [got] = await runKernel(
      gpu,
      [x],
      [yShape],
      (scope, [gx], [y]) => prepareConv(gpu, scope, gx, w, b, y, cs.attrs, opts),
    );
    assertClose(got.data, rounded, {
      rtol: 1e-5,
      atol: 1e-5,
      label: `${label} vs rounded weights`,
    });
    // Rounding the weights is visible, and bounded by 2^-11 of each |w x| term.
    let maxDiff = 0;
    for (let i = 0; i < got.data.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got.data[i] - exact[i]));
    }
    assert.ok(maxDiff > 1e-6, `${label}: f16 weights changed nothing (${maxDiff})`);
    const taps = n(cs.w.slice(1));
    assert.ok(maxDiff <= taps * 2 ** -11, `${label}: ${maxDiff} over half rounding`);

    // Weights on the GPU are repacked each run at full precision.
    const [full] = await runKernel(
      gpu,
      [x, w],
      [yShape],
      (scope, [gx, gw], [y]) => prepareConv(gpu, scope, gx, gw, b, y, cs.attrs, opts),
    );
    assertClose(full.data, exact, { rtol: 1e-4, atol: 1e-5, label });
  }
});

Deno.test("conv f16 as a matmul: weights and activations stored as halves", async () => {
  const gpu = await getGpu();
  const xShape = [2, 9, 10, 10], wShape = [97, 9, 1, 1];
  const attrs: ConvAttrs = { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 };
  const xData = randomFloats(2 * 9 * 100, 50), wData = randomFloats(97 * 9, 51);
  const bData = randomFloats(97, 52);
  const exact = convRef(xData, xShape, wData, wShape, bData, attrs).data;
  const rounded =
    convRef(xData.map(roundToF16), xShape, wData.map(roundToF16), wShape, bData, attrs).data;
  const x = cpuTensor("float32", xShape, xData);
  const w = cpuTensor("float32", wShape, wData), b = cpuTensor("float32", [97], bData);
  // The half-precision texture matmul, whatever the adapter would choose.
  const variantCache = new VariantCache();
  const problem = matmulProblem([97, 9], [2, 9, 100], {}, true);
  variantCache.set(gpu, MATMUL_KERNEL, matmulProblemKey(problem), "texture-f16-16x16");
  const options = { precision: "f16", gemm: true, variantCache } as const;
  const [got] = await runKernel(
    gpu,
    [x],
    [[2, 97, 10, 10]],
    (scope, [gx], [y]) => prepareConv(gpu, scope, gx, w, b, y, attrs, options),
  );
  assertClose(got.data, rounded, { rtol: 1e-5, atol: 1e-5, label: "vs rounded operands" });
  let maxDiff = 0;
  for (let i = 0; i < got.data.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got.data[i] - exact[i]));
  }
  assert.ok(maxDiff > 1e-6, `f16 operands changed nothing (${maxDiff})`);
  assert.ok(maxDiff <= 9 * 2 * 2 ** -11, `${maxDiff} over half rounding of both operands`);
});
