/** GPU binding of `shaders/conv.wgsl`: N-d convolution as an implicit GEMM with register tiles
 * (see the shader's header for the layout and why).
 *
 * Variants: the direct kernel with a register tile of `channelBlocks` x 4 output channels per
 * invocation (cache name `8ch` etc.), and, for pointwise convolutions (1x1 kernel, stride 1, no
 * padding, one group), `gemm`: the convolution is then exactly the matrix product
 * Y[n] = W [M, C] @ X[n] [C, D*H*W] in NCHW, run by `prepareMatmul` with the weights as a
 * constant operand (packed once), the bias as a per-row bias and ReLU fused. On llvmpipe that is
 * 1.6-2.9x the direct kernel at ResNet-50's shapes (the matmul's 16x16 register blocks load
 * fewer values per multiply-add than the direct kernel's 4 pixels x 16 channels).
 * A third variant, `8px16ch` (CONV_WIDE), is the direct kernel's wide tile for 3-wide and
 * 1-wide kernel rows at stride 1 or 2 (3x3, 1x1): 8 pixels of a row x 16 channels per
 * invocation (`main_wide3`). For hardware GPUs, `tiled64` and `tiled32` (conv_tiled.ts,
 * `shaders/conv_tiled.wgsl`): an implicit GEMM with workgroup shared-memory tiles of 64 or 32
 * output channels x 64 pixels, never a default (it loses on llvmpipe), run when asked for or
 * measured fastest. The variant is, in order: the one given in the options; the one measured
 * fastest on this adapter for this problem (`variantCache` under CONV_KERNEL / `convProblemKey`,
 * filled by `tuneConv` in conv_tune.ts or loaded from a saved cache); else the default of
 * `convDefaultVariant` (`gemm` or `8px16ch`) where one applies, else the direct kernel with
 * `chooseChannelBlocks`. Every direct tile sums
 * each output's taps in the same order; `gemm` and `8px16ch` sum in other orders
 * (rounding-level differences). The direct kernel's input path (`convInputPaths`: vec4 loads of
 * aligned pixel quads, or inputs shared by the taps of a kernel row) follows from the geometry
 * alone. */
import { type CpuTensor, f32ToF16Bits, shapeString, sizeOf } from "../util/tensor.ts";
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  isGpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import {
  type ConvAttrs,
  type ConvGeometry,
  convGeometry,
  convGeometryUniform,
  convOutputShape,
} from "./conv_shape.ts";
import { to3d } from "./shape.ts";
import { prepareMatmul } from "./matmul.ts";
import { problemKey, type VariantCache, variantCache } from "./variants.ts";
import { operandBinding } from "./operand_binding.ts";
import { type ConvTiledName, isConvTiledName, prepareConvTiled } from "./conv_tiled.ts";

const WG = 64;
/** Output pixels per invocation (the vec4 lanes of the shader's accumulators). */
const PIXELS = 4;
/** Weight bytes per cache chunk of channel tiles: a share of a CPU core's L2 cache. */
const CHUNK_BYTES = 256 * 1024;

/** Output channels of one invocation, in blocks of 4, when nothing was measured: 4 blocks
 * (16 channels x 4 pixels), measured on llvmpipe at 1.2-1.4x the 8-channel tile on ResNet-50's
 * stem and 3x3 convolutions (32 channels win some shapes and lose the 3x3/1 ones badly, so
 * they are left to tuning). Fewer for groups with fewer channels. */
export function chooseChannelBlocks(channelsPerGroup: number): number {
  return Math.min(4, Math.ceil(channelsPerGroup / 4));
}

/** Kernel name of measured conv choices in a VariantCache. */
export const CONV_KERNEL = "conv";

/** Cache key: input shape, weight shape, strides, pads, dilations, group, and `f16` for
 * half-precision weight texels (timed separately). */
export function convProblemKey(
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  halves = false,
): string {
  return problemKey(
    xShape.join("."),
    wShape.join("."),
    `s${attrs.strides.join(".")}`,
    `p${attrs.pads.join(".")}`,
    `d${attrs.dilations.join(".")}`,
    `g${attrs.group}`,
    ...(halves ? ["f16"] : []),
  );
}

/** Cache name of the pointwise-as-matmul variant. */
export const CONV_GEMM = "gemm";

/** Whether the convolution is a plain matrix product per image (the `gemm` variant applies):
 * 1x1 kernel, unit strides, no padding, one group. Dilation does not matter for a 1x1 kernel. */
export function isPointwiseConv(wShape: readonly number[], attrs: ConvAttrs): boolean {
  return attrs.group === 1 && wShape.slice(2).every((k) => k === 1) &&
    attrs.strides.every((st) => st === 1) && attrs.pads.every((p) => p === 0);
}

/** Cache name of the wide tile of `main_wide3` (8 pixels of a row x 16 channels). */
export const CONV_WIDE = "8px16ch";

/** Whether `main_wide3` applies: kernel rows 3 wide at dilation 1 (3x3 and the like) or 1 wide
 * (1x1), at stride 1 or 2 along W (any D/H strides), 16 or more output channels per group (its
 * tile). It also needs K = C/group * taps within one texture row (prepareConv
 * checks the adapter's limit). */
export function isWideRowConv(
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
): boolean {
  const rank = xShape.length - 2;
  const kernel = to3d(wShape.slice(2), 1);
  const kw = kernel[2], sw = to3d(attrs.strides, 1)[2], dw = to3d(attrs.dilations, 1)[2];
  return (kw === 1 || (kw === 3 && dw === 1)) && (sw === 1 || sw === 2) &&
    wShape[0] / attrs.group >= 16 && rank >= 1;
}

/** The variant a convolution runs when nothing was measured (undefined: the direct kernel's
 * `chooseChannelBlocks` tile); `wideRow`: whether the wide tile applies (prepareConv also checks
 * the adapter's texture limit). A pointwise convolution runs as a matmul (`gemm`) when its plane
 * is a whole number of vec4, whose rows the matmul then stores a vec4 at a time: 1.4-1.7x the
 * wide tile at ResNet-50's 14x14. Otherwise the wide tile where it applies: at 7x7 (49-pixel
 * rows, stored one value at a time) it is 1.2x `gemm`. (llvmpipe; timings in the closing note
 * of issue 6.) */
export function convDefaultVariant(
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  wideRow = isWideRowConv(xShape, wShape, attrs),
): string | undefined {
  if (isPointwiseConv(wShape, attrs)) {
    return sizeOf(xShape.slice(2)) % 4 === 0 || !wideRow ? CONV_GEMM : CONV_WIDE;
  }
  return wideRow ? CONV_WIDE : undefined;
}

/** Cache name of a register tile: `8ch` for 2 channel blocks. */
export function convVariantName(channelBlocks: number): string {
  return `${4 * channelBlocks}ch`;
}

/** Channel blocks of a cache name, undefined for a name that is not a valid tile. */
export function convChannelBlocksOf(name: string): number | undefined {
  const m = /^(\d+)ch$/.exec(name);
  const blocks = m ? Number(m[1]) / 4 : NaN;
  return Number.isInteger(blocks) && blocks >= 1 && blocks <= 8 ? blocks : undefined;
}

/** The measured register tile cached for this problem on this adapter, if any (entries that are
 * not a valid tile are ignored). `halves`: the weights are stored as half-precision texels. */
export function cachedConvChannelBlocks(
  gpu: Gpu,
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  cache: VariantCache = variantCache,
  halves = false,
): number | undefined {
  const name = cache.get(gpu, CONV_KERNEL, convProblemKey(xShape, wShape, attrs, halves));
  return name === undefined ? undefined : convChannelBlocksOf(name);
}

/** Options of `prepareConv` (a number is shorthand for `channelBlocks`). */
export interface PrepareConvOptions {
  /** Run the direct kernel with this many output channels per invocation in blocks of 4 (1..8);
   * default: the measured choice in the cache, else `convDefaultVariant`, else
   * `chooseChannelBlocks`. */
  readonly channelBlocks?: number;
  /** Run a pointwise convolution as a matrix product (true), or not (false); default as above.
   * True for a convolution that is not pointwise (see isPointwiseConv) is an error. */
  readonly gemm?: boolean;
  /** Run the wide tile (`CONV_WIDE`, see isWideRowConv) (true), or not (false); default: the
   * measured choice. True where it does not apply is an error. */
  readonly wide?: boolean;
  /** Run the shared-memory tile of this name (`tiled64`, `tiled32`: see conv_tiled.ts), which
   * takes any convolution; default: the measured choice (never chosen unmeasured). Not to be
   * combined with `channelBlocks`, `gemm` or `wide`. */
  readonly tiled?: ConvTiledName;
  /** "f16": constant (host) weights are stored as half-precision texels (rgba16float), rounding
   * them to float16 (at most 2^-11 relative error each); accumulation stays float32. GPU-computed
   * weights and activations are unaffected, except on the `gemm` path, whose matmul then stores
   * both operands as halves (as every matmul of an "f16" model does). Default "f32". */
  readonly precision?: "f32" | "f16";
  /** Measured choices to consult (default: the process-wide `variantCache`). */
  readonly variantCache?: VariantCache;
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

/** Repacks W [M, C/group, ...kernel] into the texture layout (rgba texels, row-major). */
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

/** Float16 bit patterns (round to nearest even) of float32 values, for rgba16float texels. */
function toHalfBits(values: Float32Array): Uint16Array<ArrayBuffer> {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]);
  return out;
}

/** The direct kernel's input paths (see `convInputPaths`). */
export interface ConvInputPaths {
  /** vec4 loads of aligned pixel quads (VEC4_INPUT). */
  readonly vec4Input: boolean;
  /** Consecutive input values a quad's kernel row reads along W on the row path (ROW); 0 when
   * it is not taken. */
  readonly rowSpan: number;
  /** > 0: quads are laid out per output row, that many per row. */
  readonly rowQuads: number;
}

/** Most input values the row path holds per channel (the size of `v` in conv.wgsl), and the
 * widest kernel it handles (the taps written out there). */
const MAX_ROW_SPAN = 16;
const MAX_ROW_KW = 7;

/** The shader's input paths for this geometry (see VEC4_INPUT and ROW in conv.wgsl), from the
 * 3-D input, output and kernel sizes and the rows per channel block of the weight texture.
 * `rowSpan` is the number of consecutive input values a quad's kernel row reads along W, 0 when
 * the row path is not taken (it is taken only where it loads fewer values than 4 per tap).
 * `rowQuads` > 0: the quads are laid out per output row, that many per row (see conv.wgsl). */
export function convInputPaths(
  inSize: readonly number[],
  outSize: readonly number[],
  kernel: readonly number[],
  attrs: ConvAttrs,
  rank: number,
  textureRows: number,
): ConvInputPaths {
  const strides = to3d(attrs.strides, 1);
  const dilations = to3d(attrs.dilations, 1);
  const pads = to3d(attrs.pads.slice(0, rank), 0);
  const inPlane = inSize[0] * inSize[1] * inSize[2];
  const outPlane = outSize[0] * outSize[1] * outSize[2];
  const pointwise = kernel.every((k) => k === 1) && strides.every((s) => s === 1) &&
    attrs.pads.every((p) => p === 0);
  const quadsInRows = outSize[2] % 4 === 0;
  const vec4Input = (pointwise && outPlane % 4 === 0 && inPlane % 4 === 0) ||
    (quadsInRows && strides[2] === 1 && kernel[2] === 1 && inSize[2] % 4 === 0 &&
      pads[2] % 4 === 0);
  const span = (PIXELS - 1) * strides[2] + (kernel[2] - 1) * dilations[2] + 1;
  // Where OW % 4 != 0 the row path runs ceil(OW / 4) quads per row, the last one partial: worth
  // it while at most 1 lane in 8 idles (OW 7, 11, 14, 15, ...; measured on 3x3/1 at OW 14 and 7).
  const rowSlots = Math.ceil(outSize[2] / PIXELS) * PIXELS;
  const row = !vec4Input && 7 * rowSlots <= 8 * outSize[2] && textureRows === 1 &&
    span < PIXELS * kernel[2] && span <= MAX_ROW_SPAN && kernel[2] <= MAX_ROW_KW;
  return {
    vec4Input,
    rowSpan: row ? span : 0,
    rowQuads: row && !quadsInRows ? rowSlots / PIXELS : 0,
  };
}

/** Checks Y's shape and B's length against X, W and `attrs`, and returns the sizes. */
function checkConvProblem(
  x: GpuTensor,
  weight: GpuTensor | CpuTensor,
  bias: GpuTensor | CpuTensor | undefined,
  y: GpuTensor,
  attrs: ConvAttrs,
): ConvGeometry {
  const expected = convOutputShape(x.shape, weight.shape, attrs);
  if (shapeString(expected) !== shapeString(y.shape)) {
    throw new EngineError(
      `conv: output is ${shapeString(y.shape)}, expected ${shapeString(expected)}`,
    );
  }
  const m = weight.shape[0];
  if (bias && sizeOf(bias.shape) !== m) {
    throw new EngineError(`conv: bias has ${sizeOf(bias.shape)} values for ${m} channels`);
  }
  return convGeometry(x.shape, weight.shape, y.shape, attrs.group);
}

/** The direct kernel's register tile: `channelBlocks` x 4 output channels per invocation;
 * `wide`: the wide tile (`CONV_WIDE`, always 4 blocks). */
interface ConvTile {
  readonly kind: "tile";
  readonly wide: boolean;
  readonly channelBlocks: number;
}

/** What prepareConv runs: the pointwise matmul (`CONV_GEMM`), a shared-memory tile
 * (conv_tiled.ts) or a register tile. */
type ConvVariant =
  | { readonly kind: "gemm" }
  | { readonly kind: "tiled"; readonly name: ConvTiledName }
  | ConvTile;

/** The variant to run (see the module header for the order of choices); an error where the
 * options ask for one that does not apply or for a tile out of range. */
function chooseConvVariant(
  gpu: Gpu,
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  opts: PrepareConvOptions,
  halves: boolean,
): ConvVariant {
  if (opts.tiled !== undefined) {
    if (!isConvTiledName(opts.tiled)) {
      throw new EngineError(`conv: no shared-memory tile '${opts.tiled}' (tiled64, tiled32)`);
    }
    if (opts.channelBlocks !== undefined || opts.gemm || opts.wide) {
      throw new EngineError(
        `conv: the ${opts.tiled} tile cannot be combined with channelBlocks, gemm or wide ` +
          `(${JSON.stringify(opts)})`,
      );
    }
    return { kind: "tiled", name: opts.tiled };
  }
  const pointwise = isPointwiseConv(wShape, attrs);
  if (opts.gemm && !pointwise) {
    throw new EngineError(
      `conv: the matmul path takes pointwise convolutions (1x1, stride 1, no pads, one group), ` +
        `not weights ${shapeString(wShape)} with ${JSON.stringify(attrs)}`,
    );
  }
  const wideOk = isWideRowConv(xShape, wShape, attrs) &&
    sizeOf(wShape.slice(1)) <= gpu.limits.maxTextureDimension2D;
  if (opts.wide && !wideOk) {
    throw new EngineError(
      `conv: the ${CONV_WIDE} tile takes 3- or 1-wide kernel rows at stride 1 or 2 and 16+ ` +
        `channels per group, not weights ${shapeString(wShape)} with ${JSON.stringify(attrs)}`,
    );
  }
  const cached = measuredConvVariant(gpu, xShape, wShape, attrs, opts, halves);
  if (cached !== undefined && isConvTiledName(cached)) return { kind: "tiled", name: cached };
  // Measured choice first; with none, the default (the wide tile is 1.6-1.9x the 8ch tile on
  // ResNet-50's 3x3 convolutions on llvmpipe).
  const choice = opts.channelBlocks === undefined
    ? cached ?? convDefaultVariant(xShape, wShape, attrs, wideOk)
    : undefined;
  // Asking for the wide tile rules `gemm` out (it is what the tuner times under that name).
  if (pointwise && (opts.gemm ?? (opts.wide !== true && choice === CONV_GEMM))) {
    return { kind: "gemm" };
  }
  const wide = wideOk && (opts.wide ?? choice === CONV_WIDE);
  const channelBlocks = wide ? 4 : opts.channelBlocks ??
    (cached === undefined ? undefined : convChannelBlocksOf(cached)) ??
    chooseChannelBlocks(wShape[0] / attrs.group);
  if (!Number.isInteger(channelBlocks) || channelBlocks < 1 || channelBlocks > 8) {
    throw new EngineError(`conv: channel blocks per invocation must be 1..8, got ${channelBlocks}`);
  }
  return { kind: "tile", wide, channelBlocks };
}

/** The variant cached for this problem when the options choose none; names that are no variant
 * (a hand-edited or foreign cache) count as nothing measured. */
function measuredConvVariant(
  gpu: Gpu,
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  opts: PrepareConvOptions,
  halves: boolean,
): string | undefined {
  if (opts.channelBlocks !== undefined || opts.gemm !== undefined || opts.wide !== undefined) {
    return undefined;
  }
  const name = (opts.variantCache ?? variantCache).get(
    gpu,
    CONV_KERNEL,
    convProblemKey(xShape, wShape, attrs, halves),
  );
  return name === CONV_GEMM || name === CONV_WIDE ||
      (name !== undefined && (isConvTiledName(name) || convChannelBlocksOf(name) !== undefined))
    ? name
    : undefined;
}

/** How a register tile covers Y: `channelTiles` tiles per group, `chunk` of them per cache chunk
 * of weights; the wide tile walks each output row in `segmentsPerRow` segments of 8 pixels, the
 * direct kernel takes the input `paths` (undefined on the wide tile). */
interface ConvTiling {
  readonly channelTiles: number;
  readonly chunk: number;
  readonly segmentsPerRow: number;
  readonly paths: ConvInputPaths | undefined;
}

function convTiling(
  geometry: ConvGeometry,
  attrs: ConvAttrs,
  layout: ConvWeightLayout,
  tile: ConvTile,
): ConvTiling {
  const { inSize, outSize, kernel, rank } = geometry;
  const channelTiles = layout.blocks / tile.channelBlocks;
  return {
    channelTiles,
    chunk: cacheChunk(channelTiles, tile.channelBlocks * 16 * layout.k),
    // See main_wide3 in conv.wgsl.
    segmentsPerRow: Math.ceil(outSize[2] / 8),
    paths: tile.wide
      ? undefined
      : convInputPaths(inSize, outSize, kernel, attrs, rank, layout.rows),
  };
}

/** The one uniform of the weight packing (if any) and the convolution. */
function createConvUniform(
  gpu: Gpu,
  owner: ResourceOwner,
  geometry: ConvGeometry,
  attrs: ConvAttrs,
  layout: ConvWeightLayout,
  tiling: ConvTiling,
): GPUBuffer {
  return owner.own(createUniform(gpu, "conv", {
    ...convGeometryUniform(geometry, attrs),
    tiles: [geometry.pixels, tiling.channelTiles, attrs.group, tiling.chunk],
    texture: [
      layout.width,
      layout.rows,
      tiling.paths ? tiling.paths.rowQuads : tiling.segmentsPerRow,
    ],
  }));
}

/** The weights' texture in `layout`: half-precision texels when `halves`; GPU weights need it
 * writable by the pack dispatch. */
function createWeightTexture(
  gpu: Gpu,
  owner: ResourceOwner,
  weight: GpuTensor | CpuTensor,
  layout: ConvWeightLayout,
  halves: boolean,
): GPUTexture {
  return owner.own(gpu.device.createTexture({
    size: [layout.width, layout.height],
    format: halves ? "rgba16float" : "rgba32float",
    usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST |
      (isGpuTensor(weight) ? GPUTextureUsage.STORAGE_BINDING : 0),
    label: `conv weights ${shapeString(weight.shape)}`,
  }));
}

/** Host weights: packed and written to the texture once. */
function writeWeightTexture(
  gpu: Gpu,
  texture: GPUTexture,
  weight: CpuTensor,
  group: number,
  layout: ConvWeightLayout,
  halves: boolean,
): void {
  const data = packConvWeights(weight.data, weight.shape, group, layout);
  gpu.device.queue.writeTexture(
    { texture },
    halves ? toHalfBits(data) : data,
    { bytesPerRow: layout.width * (halves ? 8 : 16), rowsPerImage: layout.height },
    [layout.width, layout.height],
  );
}

/** GPU weights: a dispatch that packs them into the texture on every run. */
function packWeightsDispatch(
  gpu: Gpu,
  weight: GpuTensor,
  texture: GPUTexture,
  uniform: GPUBuffer,
  group: number,
  layout: ConvWeightLayout,
  tile: ConvTile,
): Dispatch {
  return prepareDispatch(
    gpu,
    {
      shader: "conv",
      entryPoint: "pack_weights",
      constants: { WG },
      placeholders: { TM4: tile.channelBlocks },
    },
    [weight, texture.createView(), uniform],
    Math.ceil((layout.k * group * layout.blocks) / WG),
  );
}

/** What the convolution dispatch binds. */
interface ConvBindings {
  readonly x: GpuTensor;
  readonly texture: GPUTexture;
  readonly bias: GpuTensor | GPUBuffer;
  readonly y: GpuTensor;
  readonly uniform: GPUBuffer;
}

/** Constants of both convolution entry points. */
function commonConstants(attrs: ConvAttrs, y: GpuTensor): Record<string, number> {
  return { WG, RELU: attrs.relu ? 1 : 0, ROUND_F16: y.dtype === "float16" ? 1 : 0 };
}

/** The wide tile (`main_wide3`): one invocation per 8-pixel row segment and channel tile. */
function wideTileDispatch(
  gpu: Gpu,
  bindings: ConvBindings,
  geometry: ConvGeometry,
  attrs: ConvAttrs,
  tiling: ConvTiling,
  tile: ConvTile,
): Dispatch {
  const { x, texture, bias, y, uniform } = bindings;
  const { kernel, outSize } = geometry;
  const strideW = to3d(attrs.strides, 1)[2];
  const segments = (geometry.pixels / outSize[2]) * tiling.segmentsPerRow;
  return prepareDispatch(
    gpu,
    {
      shader: "conv",
      entryPoint: "main_wide3",
      constants: {
        ...commonConstants(attrs, y),
        WIDE_KW: kernel[2],
        WIDE_SW: strideW,
        WIDE_SPAN: 7 * strideW + kernel[2],
      },
      placeholders: { TM4: tile.channelBlocks },
    },
    [x, texture.createView(), bias, y, uniform],
    Math.ceil((segments * tiling.channelTiles * attrs.group) / WG),
  );
}

/** The direct kernel (`main`): one invocation per quad of output pixels and channel tile, the
 * input read along `paths`. */
function directDispatch(
  gpu: Gpu,
  bindings: ConvBindings,
  geometry: ConvGeometry,
  attrs: ConvAttrs,
  tiling: ConvTiling,
  paths: ConvInputPaths,
  tile: ConvTile,
): Dispatch {
  const { x, texture, bias, y, uniform } = bindings;
  const { kernel, outSize, pixels } = geometry;
  const quads = paths.rowQuads > 0
    ? (pixels / outSize[2]) * paths.rowQuads
    : Math.ceil(pixels / PIXELS);
  return prepareDispatch(
    gpu,
    {
      shader: "conv",
      entryPoint: "main",
      constants: {
        ...commonConstants(attrs, y),
        VEC4_INPUT: paths.vec4Input ? 1 : 0,
        ROW: paths.rowSpan > 0 ? 1 : 0,
        ...(paths.rowSpan > 0
          ? {
            ROW_KW: kernel[2],
            ROW_SW: to3d(attrs.strides, 1)[2],
            ROW_DW: to3d(attrs.dilations, 1)[2],
            ROW_SPAN: paths.rowSpan,
          }
          : {}),
      },
      placeholders: { TM4: tile.channelBlocks },
    },
    [x, texture.createView(), bias, y, uniform, x],
    Math.ceil((quads * tiling.channelTiles * attrs.group) / WG),
  );
}

/** Records Y = conv(X, W) + B (ReLU if `attrs.relu`; rounded to half precision when Y is
 * float16). X [N, C, ...spatial] and Y are GPU tensors; W and B may be GPU tensors or host
 * tensors. Constant (host) weights are packed once into a texture owned by `owner`; GPU weights
 * are packed by a first dispatch on every run. `options` (or a number: the channel blocks)
 * overrides the register tile (tests, benchmarks) and picks the weights' precision. */
export function prepareConv(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  weight: GpuTensor | CpuTensor,
  bias: GpuTensor | CpuTensor | undefined,
  y: GpuTensor,
  attrs: ConvAttrs,
  options: number | PrepareConvOptions = {},
): Dispatch[] {
  const opts: PrepareConvOptions = typeof options === "number"
    ? { channelBlocks: options }
    : options;
  const geometry = checkConvProblem(x, weight, bias, y, attrs);
  if (geometry.pixels === 0 || geometry.m === 0) return [];
  // Half-precision texels for constant weights only (the pack shader writes rgba32float).
  const halves = opts.precision === "f16" && !isGpuTensor(weight);
  const variant = chooseConvVariant(gpu, x.shape, weight.shape, attrs, opts, halves);
  if (variant.kind === "gemm") {
    return preparePointwiseGemm(gpu, owner, x, weight, bias, y, attrs, opts);
  }
  if (variant.kind === "tiled") {
    return prepareConvTiled(gpu, owner, x, weight, bias, y, attrs, geometry, variant.name, halves);
  }
  const layout = convWeightLayout(gpu, weight.shape, attrs.group, variant.channelBlocks);
  const tiling = convTiling(geometry, attrs, layout, variant);
  const uniform = createConvUniform(gpu, owner, geometry, attrs, layout, tiling);
  const texture = createWeightTexture(gpu, owner, weight, layout, halves);
  const dispatches: Dispatch[] = [];
  if (isGpuTensor(weight)) {
    dispatches.push(
      packWeightsDispatch(gpu, weight, texture, uniform, attrs.group, layout, variant),
    );
  } else {
    writeWeightTexture(gpu, texture, weight, attrs.group, layout, halves);
  }
  const bindings = {
    x,
    texture,
    bias: operandBinding(gpu, owner, bias, "conv bias", geometry.m),
    y,
    uniform,
  };
  dispatches.push(
    tiling.paths
      ? directDispatch(gpu, bindings, geometry, attrs, tiling, tiling.paths, variant)
      : wideTileDispatch(gpu, bindings, geometry, attrs, tiling, variant),
  );
  return dispatches;
}

/** The `gemm` variant: Y[n] [M, P] = W [M, C] @ X[n] [C, P] (+ bias per output channel, ReLU),
 * P = D*H*W, on NCHW tensors without copies. Host weights are the matmul's constant operand
 * (packed once by the texture family; uploaded as well for the families that read buffers). */
function preparePointwiseGemm(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  weight: GpuTensor | CpuTensor,
  bias: GpuTensor | CpuTensor | undefined,
  y: GpuTensor,
  attrs: ConvAttrs,
  opts: PrepareConvOptions,
): Dispatch[] {
  const [n, c] = x.shape;
  const m = weight.shape[0];
  const plane = sizeOf(x.shape.slice(2));
  const asMatrix = (t: GpuTensor | CpuTensor, shape: number[], label: string): GpuTensor =>
    isGpuTensor(t) ? { ...t, shape } : {
      buffer: owner.own(createStorageBuffer(gpu, Float32Array.from(t.data), label)),
      shape,
      dtype: "float32",
    };
  const w = asMatrix(weight, [m, c], "conv weights");
  const b = bias === undefined ? undefined : asMatrix(bias, [m, 1], "conv bias");
  return prepareMatmul(gpu, owner, w, { ...x, shape: [n, c, plane] }, {
    ...y,
    shape: [n, m, plane],
  }, {
    bias: b,
    activation: attrs.relu ? "relu" : "none",
    precision: opts.precision,
    variantCache: opts.variantCache,
    label: `conv ${shapeString(x.shape)} * ${shapeString(weight.shape)} as a matmul`,
    constants: isGpuTensor(weight) ? {} : { a: { ...weight, shape: [m, c] } },
  });
}
