/** ConvTranspose: the CPU reference against a direct float64 definition (the scatter of every
 * input value through every tap), and the GPU kernel against the reference on randomized
 * problems at odd sizes (groups, strides, dilations, output padding, negative pads, 1-D/2-D/3-D,
 * host and GPU weights, every tile size, float16). */
import { deepStrictEqual, rejects, throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor, roundToF16, sizeOf } from "../../src/util/tensor.ts";
import { getGpu, type GpuTensor } from "../../src/gpu/mod.ts";
import {
  chooseTransposeChannelBlocks,
  isFoldedConvTranspose,
  packConvTransposeWeights,
  prepareConvTranspose,
} from "../../src/kernels/conv_transpose.ts";
import { convTransposeRef } from "../../src/kernels/conv_transpose_ref.ts";
import { type ConvTransposeAttrs, convTransposeOutputShape } from "../../src/kernels/conv_shape.ts";
import { assertClose, randomFloats, rng } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

/** The definition, independently of the reference's gather: every input value X[n, ch, i] goes
 * through every tap k to the full position i * stride + k * dilation, shifted by the leading
 * pad; what lands outside the output is dropped. Float64 throughout. */
function scatterDefinition(
  x: ArrayLike<number>,
  xShape: readonly number[],
  w: ArrayLike<number>,
  wShape: readonly number[],
  bias: ArrayLike<number> | undefined,
  attrs: ConvTransposeAttrs,
): { data: Float64Array; shape: number[] } {
  const shape = convTransposeOutputShape(xShape, wShape, attrs);
  const rank = xShape.length - 2;
  const [n, c] = xShape;
  const mg = wShape[1], m = shape[1], cg = c / attrs.group;
  const inSp = xShape.slice(2), kSp = wShape.slice(2), outSp = shape.slice(2);
  const outPlane = sizeOf(outSp), inPlane = sizeOf(inSp), taps = sizeOf(kSp);
  const y = new Float64Array(sizeOf(shape));
  for (let b = 0; b < n; b++) {
    for (let oc = 0; oc < m; oc++) {
      for (let o = 0; o < outPlane; o++) y[(b * m + oc) * outPlane + o] = bias ? bias[oc] : 0;
    }
  }
  // Multi-index of a flat position in `dims` (row-major).
  const unflat = (flat: number, dims: readonly number[]) => {
    const idx = Array<number>(dims.length);
    for (let a = dims.length - 1; a >= 0; a--) {
      idx[a] = flat % dims[a];
      flat = Math.floor(flat / dims[a]);
    }
    return idx;
  };
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const g = Math.floor(ch / cg);
      for (let ip = 0; ip < inPlane; ip++) {
        const i = unflat(ip, inSp);
        const xv = x[(b * c + ch) * inPlane + ip];
        for (let tap = 0; tap < taps; tap++) {
          const k = unflat(tap, kSp);
          let o = 0, inside = true;
          for (let a = 0; a < rank; a++) {
            const pos = i[a] * attrs.strides[a] + k[a] * attrs.dilations[a] - attrs.pads[a];
            if (pos < 0 || pos >= outSp[a]) inside = false;
            o = o * outSp[a] + pos;
          }
          if (!inside) continue;
          for (let mi = 0; mi < mg; mi++) {
            const oc = g * mg + mi;
            y[(b * m + oc) * outPlane + o] += xv * w[(ch * mg + mi) * taps + tap];
          }
        }
      }
    }
  }
  return { data: y, shape };
}

interface Case {
  x: number[];
  /** [C, M/group, ...kernel] */
  w: number[];
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  outputPadding?: number[];
  group?: number;
  bias?: boolean;
  /** Upload W and B as GPU tensors so that the shader packs them. */
  gpuWeights?: boolean;
  f16?: boolean;
  channelBlocks?: number;
  /** The folded kernel for kernel == stride (true) or the general one (false); default: the
   * binding's choice. */
  folded?: boolean;
}

function attrsOf(cs: Case): ConvTransposeAttrs {
  const rank = cs.x.length - 2;
  return {
    strides: cs.strides ?? Array(rank).fill(1),
    pads: cs.pads ?? Array(2 * rank).fill(0),
    dilations: cs.dilations ?? Array(rank).fill(1),
    outputPadding: cs.outputPadding ?? Array(rank).fill(0),
    group: cs.group ?? 1,
  };
}

let seed = 1;

async function check(cs: Case): Promise<void> {
  const gpu = await getGpu();
  const attrs = attrsOf(cs);
  const dtype = cs.f16 ? "float16" : "float32";
  const round = (v: Float32Array) => cs.f16 ? v.map(roundToF16) : v;
  const x = cpuTensor(dtype, cs.x, round(randomFloats(sizeOf(cs.x), seed++)));
  const w = cpuTensor("float32", cs.w, round(randomFloats(sizeOf(cs.w), seed++)));
  const m = cs.w[1] * attrs.group;
  const b = cs.bias ? cpuTensor("float32", [m], randomFloats(m, seed++)) : undefined;
  const ref = convTransposeRef(x.data, x.shape, w.data, w.shape, b?.data, attrs);
  const inputs: CpuTensor[] = [x, ...(cs.gpuWeights ? [w, ...(b ? [b] : [])] : [])];
  const [got] = await runKernel(gpu, inputs, [ref.shape], (scope, ins, outs) => {
    const wArg: GpuTensor | CpuTensor = cs.gpuWeights ? ins[1] : w;
    const bArg: GpuTensor | CpuTensor | undefined = cs.gpuWeights && b ? ins[2] : b;
    return prepareConvTranspose(gpu, scope, ins[0], wArg, bArg, outs[0], attrs, {
      channelBlocks: cs.channelBlocks,
      folded: cs.folded,
    });
  });
  const label = JSON.stringify(cs);
  deepStrictEqual([...got.shape], ref.shape, `${label}: shape`);
  if (cs.f16) {
    assertHalfValues(got, label);
    assertClose(got.data, round(ref.data), { rtol: 2e-3, atol: 1e-3, label });
  } else {
    assertClose(got.data, ref.data, { rtol: 1e-4, atol: 1e-5, label });
  }
}

/** A random problem at odd sizes: rank 1-3, groups, strides 1-3, dilations 1-2, output padding
 * below the stride, pads that may be negative (up to the output's length). */
function randomCase(r: () => number): Case {
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const rank = int(1, 3);
  const group = [1, 1, 2, 3][int(0, 3)];
  const cg = int(1, 3), mg = int(1, 9);
  const big = rank === 3 ? 4 : rank === 2 ? 7 : 11;
  const x = [int(1, 2), cg * group];
  const w = [cg * group, mg];
  const strides: number[] = [], dilations: number[] = [], outputPadding: number[] = [];
  const pads = Array<number>(2 * rank).fill(0);
  for (let a = 0; a < rank; a++) {
    x.push(int(1, big));
    w.push(int(1, rank === 3 ? 3 : 4));
    strides.push(int(1, 3));
    dilations.push(int(1, 2));
    outputPadding.push(int(0, strides[a] - 1));
    pads[a] = int(-1, 2);
    pads[a + rank] = int(-1, 2);
  }
  const cs: Case = { x, w, strides, dilations, outputPadding, pads, group, bias: r() < 0.7 };
  // Keep only problems with an output: shrink the pads until every axis has one.
  for (;;) {
    try {
      convTransposeOutputShape(x, w, attrsOf(cs));
      return cs;
    } catch {
      for (let i = 0; i < pads.length; i++) pads[i] = Math.min(pads[i], 0);
    }
  }
}

Deno.test("conv_transpose ref: matches the scatter definition (float64)", () => {
  const r = rng(11);
  const cases: Case[] = [
    { x: [1, 1, 3, 3], w: [1, 2, 3, 3], strides: [3, 2], pads: [1, 2, 1, 2] },
    { x: [2, 4, 5], w: [4, 3, 3], group: 2, strides: [2], dilations: [2], bias: true },
    { x: [1, 2, 2, 3, 4], w: [2, 2, 2, 3, 2], outputPadding: [0, 1, 1], strides: [1, 2, 3] },
    // Negative pads: the output extends past the full scatter at both ends.
    { x: [1, 3, 4, 3], w: [3, 1, 2, 2], group: 3, pads: [-1, 0, -2, 1], bias: true },
  ];
  for (let i = 0; i < 40; i++) cases.push(randomCase(r));
  for (const cs of cases) {
    const attrs = attrsOf(cs);
    const xv = randomFloats(sizeOf(cs.x), seed++);
    const wv = randomFloats(sizeOf(cs.w), seed++);
    const bv = cs.bias ? randomFloats(cs.w[1] * attrs.group, seed++) : undefined;
    const ref = convTransposeRef(xv, cs.x, wv, cs.w, bv, attrs);
    const def = scatterDefinition(xv, cs.x, wv, cs.w, bv, attrs);
    deepStrictEqual(ref.shape, def.shape, JSON.stringify(cs));
    // Both accumulate in float64 (in different orders); the reference rounds once to float32,
    // so they agree to float32's last bit.
    assertClose(ref.data, def.data, {
      rtol: 1.2e-7,
      atol: 1e-12,
      label: JSON.stringify(cs),
    });
  }
});

Deno.test("conv_transpose ref: output shapes and errors", () => {
  const a = (o: Partial<ConvTransposeAttrs> = {}): ConvTransposeAttrs => ({
    strides: [3, 2],
    pads: [0, 0, 0, 0],
    dilations: [1, 1],
    group: 1,
    ...o,
  });
  // 3 * (3 - 1) + 3 = 9, 2 * (3 - 1) + 3 = 7; output padding adds, pads remove.
  deepStrictEqual(convTransposeOutputShape([1, 1, 3, 3], [1, 2, 3, 3], a()), [1, 2, 9, 7]);
  deepStrictEqual(
    convTransposeOutputShape([1, 1, 3, 3], [1, 2, 3, 3], a({ outputPadding: [1, 1] })),
    [1, 2, 10, 8],
  );
  deepStrictEqual(
    convTransposeOutputShape([1, 1, 3, 3], [1, 2, 3, 3], a({ pads: [1, 2, 1, 2] })),
    [1, 2, 7, 3],
  );
  deepStrictEqual(
    convTransposeOutputShape([2, 6, 5], [6, 4, 3], {
      ...a(),
      strides: [1],
      pads: [0, 0],
      dilations: [1],
      group: 3,
    }),
    [2, 12, 7],
  );
  throws(
    () =>
      convTransposeOutputShape([1, 4, 3], [4, 1, 3], {
        ...a(),
        strides: [1],
        pads: [0, 0],
        dilations: [1],
        group: 3,
      }),
    /group 3/,
  );
  throws(
    () =>
      convTransposeOutputShape([1, 2, 3], [3, 1, 3], {
        ...a(),
        strides: [1],
        pads: [0, 0],
        dilations: [1],
      }),
    /input channels/,
  );
  throws(
    () => convTransposeOutputShape([1, 1, 3, 3], [1, 2, 3, 3], a({ pads: [5, 0, 5, 0] })),
    /remove the whole output/,
  );
  throws(
    () => convTransposeOutputShape([1, 1, 3, 3], [1, 2, 3, 3], a({ strides: [0, 1] })),
    /strides/,
  );
});

Deno.test("conv_transpose: packed weight layout", () => {
  // W [C = 2, Mg = 5, 1 tap], one group, 2 blocks of 4 channels: vec4 c * 2 + block.
  const w = Array.from({ length: 10 }, (_, i) => i + 1);
  const packed = packConvTransposeWeights(w, [2, 5, 1], 1, 2);
  deepStrictEqual(Array.from(packed), [1, 2, 3, 4, 5, 0, 0, 0, 6, 7, 8, 9, 10, 0, 0, 0]);
  deepStrictEqual([4, 5, 16, 17, 33].map(chooseTransposeChannelBlocks), [1, 2, 4, 3, 3]);
});

Deno.test("conv_transpose: 2-D basics, strides, pads, output padding, dilations", async () => {
  await check({ x: [1, 1, 3, 3], w: [1, 2, 3, 3] });
  await check({ x: [1, 1, 3, 3], w: [1, 2, 3, 3], strides: [3, 2], pads: [1, 2, 1, 2] });
  await check({ x: [2, 3, 5, 7], w: [3, 5, 2, 2], strides: [2, 2], bias: true }); // decoder 2x2/2
  await check({
    x: [1, 4, 7, 5],
    w: [4, 9, 3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    outputPadding: [1, 1],
    bias: true,
  });
  await check({ x: [1, 2, 6, 5], w: [2, 3, 3, 2], dilations: [2, 3], strides: [1, 2], bias: true });
  await check({
    x: [1, 3, 5, 5],
    w: [3, 7, 4, 4],
    strides: [2, 3],
    dilations: [2, 1],
    pads: [0, 2, 3, 1],
  });
  // Negative pads (ONNX output_shape / SAME_* with a longer output): zero + bias margins.
  await check({
    x: [1, 2, 3, 4],
    w: [2, 3, 3, 3],
    strides: [3, 2],
    pads: [-1, 0, -2, -1],
    bias: true,
  });
  // Stride larger than the kernel: positions no tap reaches hold the bias alone.
  await check({ x: [2, 3, 4, 3], w: [3, 6, 1, 2], strides: [3, 4], bias: true });
});

Deno.test("conv_transpose: groups and depthwise", async () => {
  await check({ x: [2, 6, 5, 4], w: [6, 3, 3, 3], group: 2, strides: [2, 1], bias: true });
  await check({
    x: [1, 9, 7, 6],
    w: [9, 1, 4, 4],
    group: 9,
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    bias: true,
  });
  await check({
    x: [1, 6, 3, 5],
    w: [6, 7, 2, 3],
    group: 3,
    dilations: [2, 2],
    outputPadding: [1, 0],
    strides: [2, 1],
  });
});

Deno.test("conv_transpose: 1-D and 3-D", async () => {
  await check({ x: [1, 1, 3], w: [1, 2, 3] });
  await check({
    x: [3, 4, 11],
    w: [4, 5, 4],
    strides: [3],
    pads: [2, 1],
    outputPadding: [2],
    bias: true,
  });
  await check({ x: [1, 4, 9], w: [4, 3, 3], group: 2, dilations: [3], strides: [2] });
  await check({ x: [1, 1, 3, 4, 5], w: [1, 2, 3, 3, 3] });
  await check({
    x: [2, 3, 3, 4, 5],
    w: [3, 5, 2, 3, 2],
    strides: [2, 1, 3],
    pads: [1, 0, 1, 0, 1, 2],
    outputPadding: [1, 0, 2],
    bias: true,
  });
  await check({
    x: [1, 4, 2, 3, 3],
    w: [4, 3, 3, 2, 2],
    group: 2,
    dilations: [2, 1, 2],
    strides: [1, 2, 2],
  });
});

Deno.test("conv_transpose: every tile size, weights packed on the GPU, float16", async () => {
  const base: Case = {
    x: [2, 5, 5, 6],
    w: [5, 19, 3, 3],
    strides: [2, 2],
    pads: [1, 0, 0, 1],
    outputPadding: [1, 1],
    bias: true,
  };
  for (const channelBlocks of [1, 2, 3, 4]) {
    await check({ ...base, channelBlocks });
    await check({ ...base, channelBlocks, group: 5, w: [5, 6, 3, 3] });
  }
  await check({ ...base, gpuWeights: true });
  await check({
    ...base,
    gpuWeights: true,
    bias: false,
    group: 5,
    w: [5, 3, 2, 3],
    channelBlocks: 2,
  });
  await check({
    x: [1, 3, 5, 3, 4],
    w: [3, 6, 2, 2, 3],
    strides: [2, 1, 2],
    gpuWeights: true,
    bias: true,
  });
  await check({ ...base, f16: true });
  await check({
    x: [1, 4, 7],
    w: [4, 5, 3],
    strides: [2],
    f16: true,
    gpuWeights: true,
    bias: true,
  });
});

Deno.test("conv_transpose: kernel == stride (folded into a matrix product) and the general kernel", async () => {
  const cases: Case[] = [
    { x: [1, 24, 7, 9], w: [24, 1, 2, 2], strides: [2, 2], bias: true }, // DB head's last layer
    { x: [2, 5, 5, 6], w: [5, 7, 2, 2], strides: [2, 2], bias: true },
    { x: [1, 6, 3, 5], w: [6, 3, 3, 2], strides: [3, 2], group: 2, bias: true },
    { x: [2, 3, 11], w: [3, 4, 3], strides: [3], dilations: [2] }, // kernel == stride, dilated
    { x: [1, 4, 2, 3, 5], w: [4, 2, 2, 1, 3], strides: [2, 1, 3], bias: true }, // 3-D
    { x: [1, 9, 4, 7], w: [9, 2, 1, 1], group: 3, dilations: [2, 3] }, // pointwise
    { x: [1, 6, 5, 5], w: [6, 5, 2, 2], strides: [2, 2], gpuWeights: true, bias: true },
    { x: [1, 3, 6, 5], w: [3, 4, 2, 2], strides: [2, 2], f16: true, bias: true },
  ];
  for (const cs of cases) {
    const attrs = attrsOf(cs);
    const foldable = isFoldedConvTranspose(cs.w, attrs);
    if (!foldable) {
      // Dilation 2 on a 3-wide kernel leaves gaps and overlaps: the general kernel only.
      await rejects(() => check({ ...cs, folded: true }), /folded kernel takes kernel == stride/);
      await check(cs);
      continue;
    }
    await check(cs);
    await check({ ...cs, folded: false });
    for (const channelBlocks of [1, 3]) await check({ ...cs, folded: true, channelBlocks });
  }
  // Pads, output padding or kernel != stride rule the folded kernel out.
  const base = attrsOf({ x: [1, 1, 4, 4], w: [1, 1, 2, 2], strides: [2, 2] });
  deepStrictEqual(isFoldedConvTranspose([1, 1, 2, 2], base), true);
  deepStrictEqual(isFoldedConvTranspose([1, 1, 2, 2], { ...base, pads: [0, 0, 1, 0] }), false);
  deepStrictEqual(isFoldedConvTranspose([1, 1, 2, 2], { ...base, outputPadding: [1, 0] }), false);
  deepStrictEqual(isFoldedConvTranspose([1, 1, 3, 2], base), false);
});

Deno.test("conv_transpose: randomized problems at odd sizes", async () => {
  const r = rng(2024);
  for (let i = 0; i < 60; i++) {
    const cs = randomCase(r);
    if (i % 4 === 1) cs.gpuWeights = true;
    if (i % 5 === 2) cs.channelBlocks = 1 + (i % 4);
    await check(cs);
  }
});

Deno.test("conv_transpose: checks the output shape and tile", async () => {
  const gpu = await getGpu();
  const x = cpuTensor("float32", [1, 2, 3], [1, 2, 3, 4, 5, 6]);
  const w = cpuTensor("float32", [2, 1, 2], [1, 1, 1, 1]);
  const attrs: ConvTransposeAttrs = { strides: [1], pads: [0, 0], dilations: [1], group: 1 };
  await runKernel(gpu, [x], [[1, 1, 4]], (scope, ins, outs) => {
    throws(
      () =>
        prepareConvTranspose(
          gpu,
          scope,
          ins[0],
          w,
          undefined,
          { ...outs[0], shape: [1, 1, 5] },
          attrs,
        ),
      /output is \[1,1,5\], expected \[1,1,4\]/,
    );
    throws(
      () =>
        prepareConvTranspose(gpu, scope, ins[0], w, undefined, outs[0], attrs, {
          channelBlocks: 5,
        }),
      /1\.\.4/,
    );
    return prepareConvTranspose(gpu, scope, ins[0], w, undefined, outs[0], attrs);
  });
});
