/** GPU binding of `shaders/conv.wgsl`: N-d convolution as an implicit GEMM with register tiles
 * (see the shader's header for the layout and why). */
import {
  type CpuTensor,
  createStorageBuffer,
  createUniform,
  type Dispatch,
  EngineError,
  type Gpu,
  type GpuTensor,
  Params,
  prepareDispatch,
  type ResourceOwner,
  shapeString,
  sizeOf,
} from "../gpu/mod.ts";
import { type ConvAttrs, convOutputShape, to3d } from "./conv_ref.ts";

const WG = 64;
/** Output pixels per invocation (the vec4 lanes of the shader's accumulators). */
const PIXELS = 4;
/** Weight bytes per cache chunk of channel tiles: a share of a CPU core's L2 cache. */
const CHUNK_BYTES = 256 * 1024;

/** Output channels of one invocation, in blocks of 4: 2 blocks x 4 pixels = 32 accumulators,
 * past which registers spill on CPU adapters (measured: 8 channels x 4 pixels beat 16 x 4 and
 * 32 x 1 by 1.5x on llvmpipe). */
export function chooseChannelBlocks(channelsPerGroup: number): number {
  return Math.min(2, Math.ceil(channelsPerGroup / 4));
}

/** Where the packed weights live: a texture of `width` x `height` rgba32float texels; channel
 * block b's k-th texel is at (k % width, b * rows + floor(k / width)). */
export interface ConvWeightLayout {
  /** Reduction length K = taps * C/group. */
  k: number;
  /** Channel blocks of 4 per group (a multiple of channelBlocks). */
  blocks: number;
  width: number;
  rows: number;
  height: number;
}

export function convWeightLayout(
  gpu: Gpu,
  wShape: readonly number[],
  group: number,
  channelBlocks: number,
): ConvWeightLayout {
  const k = sizeOf(wShape.slice(1));
  const mg = wShape[0] / group;
  const blocks = Math.ceil(mg / (4 * channelBlocks)) * channelBlocks;
  const maxSide = gpu.limits.maxTextureDimension2D;
  const width = Math.max(1, Math.min(k, maxSide));
  const rows = Math.max(1, Math.ceil(k / width));
  const height = group * blocks * rows;
  if (height > maxSide) {
    throw new EngineError(
      `conv: weights ${shapeString(wShape)} need a ${width}x${height} texture, over this ` +
        `adapter's maxTextureDimension2D (${maxSide})`,
    );
  }
  return { k, blocks, width, rows, height };
}

/** Repacks W [M, C/group, ...kernel] into the texture layout (rgba32float texels, row-major). */
export function packConvWeights(
  w: ArrayLike<number>,
  wShape: readonly number[],
  group: number,
  layout: ConvWeightLayout,
): Float32Array<ArrayBuffer> {
  const m = wShape[0], cg = wShape[1];
  const taps = sizeOf(wShape.slice(2));
  const mg = m / group;
  const { width, rows, blocks } = layout;
  const out = new Float32Array(width * layout.height * 4);
  for (let g = 0; g < group; g++) {
    for (let mi = 0; mi < mg; mi++) {
      const row0 = (g * blocks + (mi >> 2)) * rows, lane = mi & 3;
      for (let c = 0; c < cg; c++) {
        const src = ((g * mg + mi) * cg + c) * taps;
        for (let tap = 0; tap < taps; tap++) {
          const k = tap * cg + c;
          const texel = (row0 + Math.floor(k / width)) * width + (k % width);
          out[texel * 4 + lane] = w[src + tap];
        }
      }
    }
  }
  return out;
}

/** Channel tiles per cache chunk (see conv.wgsl): the largest divisor of `channelTiles` whose
 * weights (`tileBytes` each) fit in CHUNK_BYTES. */
export function cacheChunk(channelTiles: number, tileBytes: number): number {
  let best = 1;
  for (let d = 1; d <= channelTiles; d++) {
    if (channelTiles % d === 0 && d * tileBytes <= CHUNK_BYTES) best = d;
  }
  return best;
}

function isGpuTensor(t: GpuTensor | CpuTensor): t is GpuTensor {
  return (t as GpuTensor).buffer !== undefined;
}

/** Records Y = conv(X, W) + B (ReLU if `attrs.relu`; rounded to half precision when Y is
 * float16). X [N, C, ...spatial] and Y are GPU tensors; W and B may be GPU tensors or host tensors. Constant (host) weights are packed once
 * into a texture owned by `owner`; GPU weights are packed by a first dispatch on every run.
 * `channelBlocks` overrides the register tile (tests, benchmarks). */
export function prepareConv(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  weight: GpuTensor | CpuTensor,
  bias: GpuTensor | CpuTensor | undefined,
  y: GpuTensor,
  attrs: ConvAttrs,
  channelBlocks?: number,
): Dispatch[] {
  const expected = convOutputShape(x.shape, weight.shape, attrs);
  if (shapeString(expected) !== shapeString(y.shape)) {
    throw new EngineError(
      `conv: output is ${shapeString(y.shape)}, expected ${shapeString(expected)}`,
    );
  }
  const rank = x.shape.length - 2;
  const [n, c] = x.shape;
  const m = weight.shape[0];
  const group = attrs.group;
  const cg = c / group, mg = m / group;
  if (bias && sizeOf(bias.shape) !== m) {
    throw new EngineError(`conv: bias has ${sizeOf(bias.shape)} values for ${m} channels`);
  }
  const inSize = to3d(x.shape.slice(2), 1);
  const outSize = to3d(y.shape.slice(2), 1);
  const kernel = to3d(weight.shape.slice(2), 1);
  const taps = kernel[0] * kernel[1] * kernel[2];
  const pixels = n * sizeOf(outSize);
  if (pixels === 0 || m === 0) return [];
  const tm4 = channelBlocks ?? chooseChannelBlocks(mg);
  if (!Number.isInteger(tm4) || tm4 < 1 || tm4 > 8) {
    throw new EngineError(`conv: channel blocks per invocation must be 1..8, got ${tm4}`);
  }
  const layout = convWeightLayout(gpu, weight.shape, group, tm4);
  const placeholders = { TM4: tm4 };

  const dispatches: Dispatch[] = [];
  const texture = owner.own(gpu.device.createTexture({
    size: [layout.width, layout.height],
    format: "rgba32float",
    usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST |
      (isGpuTensor(weight) ? GPUTextureUsage.STORAGE_BINDING : 0),
    label: `conv weights ${shapeString(weight.shape)}`,
  }));
  if (isGpuTensor(weight)) {
    const packParams = new Params().u32(
      layout.k,
      cg,
      mg,
      taps,
      layout.blocks,
      group * layout.blocks,
      layout.width,
      layout.rows,
    );
    dispatches.push(prepareDispatch(
      gpu,
      { shader: "conv", entryPoint: "pack_weights", constants: { WG }, placeholders },
      [weight, texture.createView(), owner.own(createUniform(gpu, packParams, "conv pack"))],
      Math.ceil((layout.k * group * layout.blocks) / WG),
    ));
  } else {
    const data = packConvWeights(weight.data, weight.shape, group, layout);
    gpu.device.queue.writeTexture(
      { texture },
      data,
      { bytesPerRow: layout.width * 16, rowsPerImage: layout.height },
      [layout.width, layout.height],
    );
  }
  let biasBinding: GpuTensor | GPUBuffer;
  if (bias === undefined) {
    biasBinding = owner.own(createStorageBuffer(gpu, new Float32Array(m), "conv zero bias"));
  } else if (isGpuTensor(bias)) {
    biasBinding = bias;
  } else {
    biasBinding = owner.own(createStorageBuffer(gpu, Float32Array.from(bias.data), "conv bias"));
  }

  const channelTiles = layout.blocks / tm4;
  const params = new Params()
    .u32Array([...inSize, sizeOf(inSize)], 1)
    .u32Array([...outSize, sizeOf(outSize)], 1)
    .u32Array([...kernel, taps], 1)
    .u32Array(to3d(attrs.strides, 1), 1)
    .u32Array(to3d(attrs.dilations, 1), 1)
    .u32Array(to3d(attrs.pads.slice(0, rank), 0), 1)
    .u32Array([c, m, cg, mg], 1)
    .u32Array([pixels, channelTiles, group, cacheChunk(channelTiles, tm4 * 16 * layout.k)], 1)
    .u32Array([layout.width, layout.rows], 1);
  dispatches.push(prepareDispatch(
    gpu,
    {
      shader: "conv",
      entryPoint: "main",
      constants: { WG, RELU: attrs.relu ? 1 : 0, ROUND_F16: y.dtype === "float16" ? 1 : 0 },
      placeholders,
    },
    [x, texture.createView(), biasBinding, y, owner.own(createUniform(gpu, params, "conv"))],
    Math.ceil((Math.ceil(pixels / PIXELS) * channelTiles * group) / WG),
  ));
  return dispatches;
}
