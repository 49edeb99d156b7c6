import { ok, rejects } from "node:assert/strict";
import { getGpu, type GpuTensor } from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { convInputPaths, convWeightLayout, prepareConv } from "../../src/kernels/conv.ts";
import { convRef } from "../../src/kernels/conv_ref.ts";
import { type ConvAttrs, convOutputShape } from "../../src/kernels/conv_shape.ts";
import { to3d } from "../../src/kernels/shape.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

interface Case {
  x: number[];
  w: number[];
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  group?: number;
  bias?: boolean;
  relu?: boolean;
  /** Upload W (and B) as GPU tensors so the shader repacks them. */
  gpuWeights?: boolean;
  /** float16 tensors: output values must be rounded to half precision. */
  f16?: boolean;
  /** Register tile override (output channel blocks of 4 per invocation). */
  channelBlocks?: number;
  /** Pointwise as a matmul (true) or the direct kernel (false); default: the binding's choice. */
  gemm?: boolean;
  /** The wide tile of 3- and 1-wide kernel rows at stride 1 or 2 (true), or not (false). */
  wide?: boolean;
}

let seed = 1;

/** Runs the case and compares with convRef; returns the shaders its dispatches ran. */
async function check(cs: Case): Promise<string[]> {
  const gpu = await getGpu();
  const rank = cs.x.length - 2;
  const attrs: ConvAttrs = {
    strides: cs.strides ?? Array(rank).fill(1),
    pads: cs.pads ?? Array(2 * rank).fill(0),
    dilations: cs.dilations ?? Array(rank).fill(1),
    group: cs.group ?? 1,
    relu: cs.relu,
  };
  const round = (v: Float32Array) => cs.f16 ? v.map(roundToF16) : v;
  const dtype = cs.f16 ? "float16" : "float32";
  const xData = round(randomFloats(cs.x.reduce((a, b) => a * b, 1), seed++));
  const wData = round(randomFloats(cs.w.reduce((a, b) => a * b, 1), seed++));
  const bData = cs.bias ? randomFloats(cs.w[0], seed++) : undefined;
  const ref = convRef(xData, cs.x, wData, cs.w, bData, attrs);
  const yShape = convOutputShape(cs.x, cs.w, attrs);
  const x = cpuTensor(dtype, cs.x, xData);
  const w = cpuTensor("float32", cs.w, wData);
  const b = bData ? cpuTensor("float32", [cs.w[0]], bData) : undefined;
  // Weights (and bias) on the GPU are inputs 1 (and 2); host ones the binding packs itself.
  const inputs = cs.gpuWeights ? [x, w, ...(b ? [b] : [])] : [x];
  const options = { channelBlocks: cs.channelBlocks, gemm: cs.gemm, wide: cs.wide };
  let shaders: string[] = [];
  const [got] = await runKernel(gpu, inputs, [yShape], (scope, ins, [y]) => {
    const wArg: GpuTensor | CpuTensor = cs.gpuWeights ? ins[1] : w;
    const bArg: GpuTensor | CpuTensor | undefined = cs.gpuWeights && b ? ins[2] : b;
    const dispatches = prepareConv(gpu, scope, ins[0], wArg, bArg, y, attrs, options);
    shaders = dispatches.map((d) => d.label);
    return dispatches;
  });
  const label = JSON.stringify(cs);
  if (cs.f16) {
    assertHalfValues(got, label);
    assertClose(got.data, round(ref.data), { rtol: 2e-3, atol: 1e-3, label });
  } else {
    assertClose(got.data, ref.data, { rtol: 1e-4, atol: 1e-4, label });
  }
  return shaders;
}

Deno.test("conv: 2-D basics, odd sizes, bias/no bias, relu", async () => {
  await check({ x: [1, 1, 5, 5], w: [1, 1, 3, 3], pads: [1, 1, 1, 1] });
  await check({ x: [2, 3, 7, 9], w: [5, 3, 3, 3], bias: true });
  await check({ x: [1, 13, 11, 10], w: [17, 13, 1, 1], bias: true, relu: true });
  await check({ x: [3, 8, 6, 6], w: [16, 8, 3, 3], pads: [1, 1, 1, 1], relu: true });
  await check({ x: [1, 2, 1, 1], w: [3, 2, 1, 1] });
});

Deno.test("conv: pointwise convolutions as a matmul and by the direct kernel", async () => {
  const cases: Case[] = [
    { x: [1, 13, 11, 10], w: [17, 13, 1, 1], bias: true, relu: true },
    { x: [3, 7, 5, 9], w: [33, 7, 1, 1], bias: true }, // batch of 3, odd plane 45
    { x: [2, 64, 7, 7], w: [130, 64, 1, 1], relu: true }, // stage-4-like plane of 49
    { x: [1, 2, 1, 1], w: [3, 2, 1, 1] },
    { x: [2, 5, 19], w: [6, 5, 1], bias: true }, // 1-D
    { x: [1, 3, 2, 3, 5], w: [4, 3, 1, 1, 1], dilations: [2, 2, 2] }, // 3-D; dilation is moot
    { x: [2, 9, 6, 6], w: [12, 9, 1, 1], bias: true, gpuWeights: true },
    { x: [2, 6, 5, 5], w: [10, 6, 1, 1], bias: true, relu: true, f16: true },
  ];
  for (const cs of cases) {
    await check(cs); // the default (the matmul, unless a measured choice says otherwise)
    await check({ ...cs, gemm: true });
    await check({ ...cs, gemm: false });
  }
  // Strided, padded and grouped 1x1 convolutions are not plain matmuls.
  await check({ x: [1, 4, 9, 9], w: [8, 4, 1, 1], strides: [2, 2], bias: true });
  await check({ x: [1, 4, 5, 5], w: [8, 4, 1, 1], pads: [1, 1, 1, 1] });
  await rejects(
    () => check({ x: [1, 4, 5, 5], w: [8, 4, 1, 1], pads: [1, 1, 1, 1], gemm: true }),
    /matmul path takes pointwise convolutions/,
  );
});

Deno.test("conv: the wide tile (8 pixels x 16 channels) of 3- and 1-wide rows, stride 1 and 2", async () => {
  const cases: Case[] = [
    { x: [1, 5, 9, 16], w: [16, 5, 3, 3], pads: [1, 1, 1, 1], bias: true, relu: true },
    { x: [2, 3, 7, 7], w: [20, 3, 3, 3], pads: [1, 1, 1, 1], bias: true }, // 20 = 16 + 4 padding
    { x: [1, 4, 6, 13], w: [32, 4, 3, 3] }, // no pads, OW 11: a partial segment of 3
    { x: [1, 2, 5, 9], w: [16, 2, 3, 3], pads: [0, 2, 1, 0], strides: [2, 1], dilations: [2, 1] },
    { x: [1, 8, 6, 6], w: [32, 4, 3, 3], group: 2, pads: [1, 1, 1, 1] },
    { x: [2, 3, 21], w: [17, 3, 3], pads: [1, 1], bias: true }, // 1-D
    { x: [1, 2, 3, 4, 10], w: [16, 2, 2, 3, 3], pads: [0, 1, 1, 1, 0, 1] }, // 3-D
    { x: [1, 3, 5, 10], w: [16, 3, 3, 3], pads: [1, 1, 1, 1], gpuWeights: true, bias: true },
    { x: [1, 3, 6, 9], w: [16, 3, 3, 3], pads: [1, 1, 1, 1], f16: true, relu: true },
    // 1-wide rows: pointwise, padded and strided-along-H 1x1 convolutions.
    { x: [2, 5, 7, 11], w: [16, 5, 1, 1], bias: true, relu: true },
    { x: [1, 6, 5, 9], w: [20, 6, 1, 1], pads: [1, 2, 0, 1], strides: [2, 1] },
    { x: [1, 4, 3, 3, 8], w: [16, 4, 1, 1, 1], gpuWeights: true },
    // Stride 2 along W: ResNet downsampling (3x3/2 padded, 1x1/2), odd widths, partial segments.
    { x: [1, 5, 9, 21], w: [16, 5, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], bias: true },
    { x: [2, 6, 8, 16], w: [20, 6, 1, 1], strides: [2, 2], relu: true },
    { x: [1, 3, 7, 30], w: [16, 3, 3, 3], strides: [1, 2], pads: [0, 2, 1, 0] },
    { x: [1, 4, 5, 13], w: [32, 4, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], f16: true },
  ];
  for (const cs of cases) {
    // The wide tile itself, also for pointwise convolutions (whose default may be the matmul).
    const shaders = await check({ ...cs, wide: true });
    ok(shaders.every((name) => name === "conv"), `${JSON.stringify(cs)} ran ${shaders}`);
    await check({ ...cs, wide: false });
  }
  await rejects(
    () => check({ x: [1, 3, 9, 9], w: [16, 3, 3, 3], strides: [1, 3], wide: true }),
    /tile takes 3- or 1-wide kernel rows at stride 1 or 2/,
  );
  await rejects(
    () => check({ x: [1, 3, 9, 9], w: [8, 3, 3, 3], wide: true }),
    /16\+ channels per group/,
  );
});

Deno.test("conv: strides, asymmetric pads, dilations", async () => {
  await check({
    x: [1, 3, 15, 13],
    w: [8, 3, 7, 7],
    strides: [2, 2],
    pads: [3, 3, 3, 3],
    bias: true,
  });
  await check({ x: [2, 4, 9, 8], w: [6, 4, 3, 3], strides: [2, 3], pads: [1, 0, 2, 1] });
  await check({ x: [1, 5, 12, 11], w: [7, 5, 3, 2], dilations: [2, 3], pads: [2, 1, 0, 3] });
  await check({ x: [1, 3, 5, 5], w: [2, 3, 3, 3], strides: [2, 2], pads: [1, 0, 1, 0] });
});

Deno.test("conv: groups and depthwise", async () => {
  await check({ x: [2, 6, 7, 7], w: [9, 2, 3, 3], group: 3, pads: [1, 1, 1, 1], bias: true });
  await check({ x: [1, 8, 9, 9], w: [8, 1, 3, 3], group: 8, pads: [1, 1, 1, 1], bias: true });
  await check({ x: [1, 5, 8, 7], w: [10, 1, 3, 3], group: 5, strides: [2, 2] });
  await check({ x: [1, 64, 10, 10], w: [64, 16, 3, 3], group: 4, pads: [1, 1, 1, 1] });
});

Deno.test("conv: float16 tensors get half-precision outputs", async () => {
  await check({ x: [1, 3, 9, 7], w: [8, 3, 3, 3], pads: [1, 1, 1, 1], bias: true, f16: true });
  await check({ x: [2, 4, 5, 5], w: [4, 2, 1, 1], group: 2, relu: true, f16: true });
});

Deno.test("conv: 1-D and 3-D", async () => {
  await check({ x: [2, 4, 17], w: [6, 4, 3], pads: [1, 2], bias: true });
  await check({ x: [1, 3, 257], w: [5, 3, 5], strides: [3], dilations: [2] });
  await check({ x: [1, 4, 10], w: [4, 2, 3], group: 2 });
  await check({ x: [1, 2, 5, 6, 7], w: [3, 2, 3, 3, 3], pads: [1, 0, 1, 1, 2, 0], bias: true });
  await check({
    x: [2, 4, 7, 5, 6],
    w: [4, 1, 2, 3, 2],
    group: 4,
    strides: [2, 1, 2],
    dilations: [1, 2, 1],
  });
});

Deno.test("conv: weights packed on the GPU, every tile size, wrapped weight texture", async () => {
  await check({
    x: [1, 3, 9, 9],
    w: [10, 3, 3, 3],
    pads: [1, 1, 1, 1],
    bias: true,
    gpuWeights: true,
  });
  await check({ x: [2, 4, 6, 5], w: [12, 2, 2, 3], group: 2, gpuWeights: true, relu: true });
  for (const channelBlocks of [1, 2, 3]) {
    await check({
      x: [1, 5, 7, 6],
      w: [37, 5, 3, 3],
      pads: [1, 1, 1, 1],
      bias: true,
      channelBlocks,
    });
  }
  // K = 9 * 1000 is wider than a texture row on default limits (8192): rows wrap.
  await check({ x: [1, 1000, 3, 4], w: [6, 1000, 3, 3], pads: [1, 1, 1, 1], bias: true });
  await check({ x: [1, 1000, 3, 4], w: [6, 1000, 3, 3], pads: [0, 1, 0, 1], gpuWeights: true });
});

Deno.test("conv: vec4 input loads and shared kernel-row inputs", async () => {
  // Each case names the input path it must take (for the row path: "row" and the span of input
  // values a quad's kernel row reads), so the test fails if it stops covering it.
  const cases:
    (Case & { path: "vec4" | `row${number}` | `row${number} q${number}` | "generic" })[] = [
      { x: [2, 5, 4, 6], w: [7, 5, 1, 1], bias: true, path: "vec4" }, // 1x1, OW 6, plane 24
      { x: [3, 4, 7, 4], w: [9, 4, 1, 1], channelBlocks: 1, path: "vec4" }, // plane 28
      { x: [1, 3, 5, 8], w: [6, 3, 3, 1], pads: [1, 4, 1, 4], relu: true, path: "vec4" },
      { x: [2, 6, 7, 8], w: [8, 3, 3, 3], group: 2, pads: [1, 1, 1, 1], relu: true, path: "row6" },
      { x: [1, 3, 9, 9], w: [5, 3, 3, 3], strides: [2, 1], pads: [0, 1, 1, 0], path: "row6" },
      { x: [1, 2, 3, 4, 8], w: [3, 2, 3, 3, 3], pads: [1, 1, 1, 1, 1, 1], path: "row6" },
      { x: [1, 4, 10], w: [4, 2, 3], group: 2, path: "row6" }, // 1-D
      { x: [1, 5, 6, 4], w: [13, 5, 3, 3], pads: [1, 1, 1, 1], channelBlocks: 3, path: "row6" },
      { x: [1, 3, 6, 8], w: [5, 3, 3, 3], pads: [1, 1, 1, 1], gpuWeights: true, path: "row6" },
      { x: [1, 3, 9, 12], w: [4, 3, 3, 3], dilations: [2, 2], pads: [2, 2, 2, 2], path: "row8" },
      // 7x7/2 stem (pads wider than a quad's first columns), 3x3/2, 5-wide/3, 7-wide dilated.
      { x: [2, 3, 19, 24], w: [9, 3, 7, 7], strides: [2, 2], pads: [3, 3, 3, 3], path: "row13" },
      {
        x: [1, 3, 11, 17],
        w: [6, 3, 7, 7],
        strides: [2, 2],
        pads: [3, 3, 2, 2],
        bias: true,
        path: "row13",
      },
      {
        x: [1, 5, 9, 16],
        w: [16, 5, 3, 3],
        strides: [2, 2],
        pads: [1, 1, 1, 1],
        relu: true,
        path: "row9",
      },
      {
        x: [1, 4, 7, 15],
        w: [7, 4, 3, 3],
        strides: [1, 2],
        pads: [1, 0, 1, 2],
        gpuWeights: true,
        path: "row9",
      },
      { x: [1, 2, 23], w: [5, 2, 5], strides: [3], pads: [2, 1], f16: true, path: "row14" }, // 1-D
      { x: [1, 3, 5, 18], w: [4, 3, 2, 7], dilations: [1, 2], pads: [0, 3, 0, 3], path: "row16" },
      {
        x: [2, 6, 5, 11],
        w: [8, 3, 3, 5],
        strides: [1, 2],
        group: 2,
        channelBlocks: 1,
        path: "row11",
      },
      // Not a win (span >= 4 per tap) or too wide for the shader: the generic path.
      { x: [1, 4, 6, 16], w: [5, 4, 1, 1], strides: [2, 2], path: "generic" },
      { x: [1, 3, 6, 16], w: [5, 3, 2, 2], strides: [2, 2], path: "generic" },
      { x: [1, 2, 3, 19], w: [3, 2, 1, 8], path: "generic" }, // KW 8: wider than written out
      { x: [1, 3, 5, 46], w: [4, 3, 1, 7], strides: [1, 3], dilations: [1, 2], path: "generic" },
      { x: [1, 3, 6, 6], w: [4, 3, 3, 3], pads: [1, 1, 1, 1], path: "generic" }, // OW 6: 2 idle
      // OW % 4 != 0: quads per output row, the last one partial ("q": quads per row).
      { x: [2, 5, 7, 7], w: [9, 5, 3, 3], pads: [1, 1, 1, 1], bias: true, path: "row6 q2" },
      { x: [1, 4, 14, 14], w: [8, 4, 3, 3], pads: [1, 1, 1, 1], relu: true, path: "row6 q4" },
      { x: [1, 3, 5, 11], w: [6, 1, 3, 3], pads: [0, 1, 0, 1], group: 3, path: "row6 q3" }, // OW 11
      { x: [1, 3, 9, 29], w: [5, 3, 7, 7], strides: [2, 2], pads: [3, 3, 3, 3], path: "row13 q4" },
      {
        x: [1, 2, 3, 3, 7],
        w: [3, 2, 1, 3, 3],
        pads: [0, 1, 1, 0, 1, 1],
        gpuWeights: true,
        path: "row6 q2",
      },
    ];
  const gpu = await getGpu();
  for (const { path, ...cs } of cases) {
    const rank = cs.x.length - 2;
    const attrs: ConvAttrs = {
      strides: cs.strides ?? Array(rank).fill(1),
      pads: cs.pads ?? Array(2 * rank).fill(0),
      dilations: cs.dilations ?? Array(rank).fill(1),
      group: cs.group ?? 1,
    };
    const yShape = convOutputShape(cs.x, cs.w, attrs);
    const layout = convWeightLayout(gpu, cs.w, attrs.group, cs.channelBlocks ?? 2);
    const paths = convInputPaths(
      to3d(cs.x.slice(2), 1),
      to3d(yShape.slice(2), 1),
      to3d(cs.w.slice(2), 1),
      attrs,
      rank,
      layout.rows,
    );
    const rowQuads = paths.rowQuads > 0 ? ` q${paths.rowQuads}` : "";
    const got = paths.vec4Input
      ? "vec4"
      : paths.rowSpan > 0
      ? `row${paths.rowSpan}${rowQuads}`
      : "generic";
    if (got !== path) throw new Error(`${JSON.stringify(cs)}: ${got} input path, expected ${path}`);
    await check(cs);
  }
});
