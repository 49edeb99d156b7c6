/** GPU binding of `shaders/conv_transpose.wgsl`: N-d transposed convolution as a gather (see the
 * shader's header for the tiling and the weight layout), with a register tile of 4 output
 * positions x `channelBlocks` x 4 output channels per invocation, or, where kernel == stride,
 * as a matrix product whose columns are (output channel, tap) pairs (`main_folded`). Constant
 * (host) weights are packed once, weights computed on the GPU are packed by a first dispatch
 * (`shaders/conv_transpose_pack.wgsl`) on every run. */
import { type CpuTensor, shapeString, sizeOf } from "../util/tensor.ts";
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  isGpuTensor,
  prepareDispatch,
  type ResourceOwner,
  STORAGE_USAGE,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { type ConvTransposeAttrs, convTransposeOutputShape } from "./conv_shape.ts";
import { to3d } from "./shape.ts";
import { operandBinding } from "./operand_binding.ts";

const WG = 64;
/** Output positions per invocation (the vec4 lanes of the shader's accumulators). */
const PIXELS = 4;
/** Most channel blocks of 4 one invocation holds (the shader's acc0..acc3). */
export const MAX_CHANNEL_BLOCKS = 4;

/** Output channels of one invocation, in blocks of 4: as many as needed to cover the group's
 * channels in the fewest tiles of at most 4 blocks, split evenly so that little of the last
 * tile is padding (Mg = 20: 5 blocks -> 2 tiles of 3, not 4 + 4 with 3 idle). 16 channels per
 * invocation load one input value per 16 FMAs per position, as conv's default tile does. */
export function chooseTransposeChannelBlocks(channelsPerGroup: number): number {
  const blocks = Math.max(1, Math.ceil(channelsPerGroup / 4));
  const tiles = Math.ceil(blocks / MAX_CHANNEL_BLOCKS);
  return Math.ceil(blocks / tiles);
}

/** Channel blocks of 4 per group in the packed weights: the group's channels rounded up to
 * whole tiles of `channelBlocks`. */
export function transposeBlocksPerGroup(channelsPerGroup: number, channelBlocks: number): number {
  return Math.ceil(channelsPerGroup / (4 * channelBlocks)) * channelBlocks;
}

/** Repacks W [C, Mg, ...kernel] into the shader's layout: vec4 ((g * taps + tap) * Cg + c) * MB
 * + mb holds W[g*Cg + c, 4*mb + (0..3), tap], zero past Mg. */
export function packConvTransposeWeights(
  w: ArrayLike<number>,
  wShape: readonly number[],
  group: number,
  blocksPerGroup: number,
): Float32Array<ArrayBuffer> {
  const c = wShape[0], mg = wShape[1];
  const cg = c / group;
  const taps = sizeOf(wShape.slice(2));
  const mb = blocksPerGroup;
  const out = new Float32Array(group * taps * cg * mb * 4);
  for (let ch = 0; ch < c; ch++) {
    const g = Math.floor(ch / cg), ci = ch % cg;
    for (let m = 0; m < mg; m++) {
      const src = (ch * mg + m) * taps;
      for (let tap = 0; tap < taps; tap++) {
        const vec = ((g * taps + tap) * cg + ci) * mb + (m >> 2);
        out[vec * 4 + (m & 3)] = w[src + tap];
      }
    }
  }
  return out;
}

/** Whether `main_folded` applies: kernel == stride on every axis (so every output position is
 * reached by exactly one input position and tap), unit dilations where the kernel is wider than
 * 1, no pads and no output padding. */
export function isFoldedConvTranspose(
  wShape: readonly number[],
  attrs: ConvTransposeAttrs,
): boolean {
  const kernel = wShape.slice(2);
  return kernel.every((k, a) => k === attrs.strides[a] && (k === 1 || attrs.dilations[a] === 1)) &&
    attrs.pads.every((p) => p === 0) && (attrs.outputPadding ?? []).every((p) => p === 0);
}

/** Options of `prepareConvTranspose` (tests, benchmarks). */
export interface PrepareConvTransposeOptions {
  /** Register tile: output channels (columns, folded) per invocation in blocks of 4 (1..4);
   * default `chooseTransposeChannelBlocks`. */
  readonly channelBlocks?: number;
  /** Run `main_folded` (true; an error where it does not apply) or `main` (false); default:
   * `main_folded` where it applies. */
  readonly folded?: boolean;
}

/** One transposed convolution's sizes, spatial ones in 3-D (leading 1s below rank 3) as the
 * shader takes them. */
interface ConvTransposeGeometry {
  /** Spatial axes of X. */
  readonly rank: number;
  /** Images, input and output channels, and input and output channels per group. */
  readonly n: number;
  readonly c: number;
  readonly m: number;
  readonly cg: number;
  readonly mg: number;
  readonly inSize: readonly [number, number, number];
  readonly outSize: readonly [number, number, number];
  readonly kernel: readonly [number, number, number];
  readonly strides: readonly [number, number, number];
  readonly taps: number;
}

/** Checks Y's shape, B's length and a requested folded kernel against X, W and `attrs`;
 * returns the sizes and whether `main_folded` runs. */
function checkConvTransposeProblem(
  x: GpuTensor,
  weight: GpuTensor | CpuTensor,
  bias: GpuTensor | CpuTensor | undefined,
  y: GpuTensor,
  attrs: ConvTransposeAttrs,
  options: PrepareConvTransposeOptions,
): { geometry: ConvTransposeGeometry; folded: boolean } {
  const expected = convTransposeOutputShape(x.shape, weight.shape, attrs);
  if (shapeString(expected) !== shapeString(y.shape)) {
    throw new EngineError(
      `conv_transpose: output is ${shapeString(y.shape)}, expected ${shapeString(expected)}`,
    );
  }
  const [n, c] = x.shape;
  const mg = weight.shape[1];
  const m = mg * attrs.group;
  if (bias && sizeOf(bias.shape) !== m) {
    throw new EngineError(
      `conv_transpose: bias has ${sizeOf(bias.shape)} values for ${m} channels`,
    );
  }
  const foldable = isFoldedConvTranspose(weight.shape, attrs);
  if (options.folded && !foldable) {
    throw new EngineError(
      `conv_transpose: the folded kernel takes kernel == stride, unit dilations, no pads and ` +
        `no output padding, not weights ${shapeString(weight.shape)} with ${JSON.stringify(attrs)}`,
    );
  }
  const kernel = to3d(weight.shape.slice(2), 1);
  const geometry = {
    rank: x.shape.length - 2,
    n,
    c,
    m,
    cg: c / attrs.group,
    mg,
    inSize: to3d(x.shape.slice(2), 1),
    outSize: to3d(y.shape.slice(2), 1),
    kernel,
    strides: to3d(attrs.strides, 1),
    taps: sizeOf(kernel),
  };
  return { geometry, folded: options.folded ?? foldable };
}

/** How the packed weights' columns are tiled: `columns` per group ((output channel, tap) pairs
 * when folded, packed as channels of a single tap: W [C, Mg, taps] is W [C, Mg * taps] in
 * memory), `packTaps` taps, `blocksPerGroup` blocks of 4 columns, `channelBlocks` of them per
 * invocation, `packedVec4s` in all. */
interface ConvTransposeTile {
  readonly folded: boolean;
  readonly columns: number;
  readonly packTaps: number;
  readonly channelBlocks: number;
  readonly blocksPerGroup: number;
  readonly channelTiles: number;
  readonly packedVec4s: number;
}

function chooseConvTransposeTile(
  geometry: ConvTransposeGeometry,
  group: number,
  folded: boolean,
  options: PrepareConvTransposeOptions,
): ConvTransposeTile {
  const columns = folded ? geometry.mg * geometry.taps : geometry.mg;
  const packTaps = folded ? 1 : geometry.taps;
  const tm4 = options.channelBlocks ?? chooseTransposeChannelBlocks(columns);
  if (!Number.isInteger(tm4) || tm4 < 1 || tm4 > MAX_CHANNEL_BLOCKS) {
    throw new EngineError(
      `conv_transpose: channel blocks per invocation must be 1..${MAX_CHANNEL_BLOCKS}, got ${tm4}`,
    );
  }
  const mb = transposeBlocksPerGroup(columns, tm4);
  return {
    folded,
    columns,
    packTaps,
    channelBlocks: tm4,
    blocksPerGroup: mb,
    channelTiles: mb / tm4,
    packedVec4s: group * packTaps * geometry.cg * mb,
  };
}

/** The packed weights' buffer, and the dispatch that packs GPU weights into it on every run
 * (host weights are packed once here). */
function packWeights(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  weight: GpuTensor | CpuTensor,
  geometry: ConvTransposeGeometry,
  group: number,
  tile: ConvTransposeTile,
): { packed: GPUBuffer; pack?: Dispatch } {
  if (sizeOf(x.shape) === 0) {
    // No input values (C = 0 or an empty input axis): Y is the bias alone; an empty weight
    // buffer still needs a binding.
    return {
      packed: owner.own(createStorageBuffer(gpu, new Float32Array(4), "conv_transpose weights")),
    };
  }
  if (isGpuTensor(weight)) return packGpuWeights(gpu, owner, weight, geometry, tile);
  const packShape = tile.folded ? [geometry.c, tile.columns] : weight.shape;
  return {
    packed: owner.own(createStorageBuffer(
      gpu,
      packConvTransposeWeights(weight.data, packShape, group, tile.blocksPerGroup),
      `conv_transpose weights ${shapeString(weight.shape)}`,
    )),
  };
}

function packGpuWeights(
  gpu: Gpu,
  owner: ResourceOwner,
  weight: GpuTensor,
  geometry: ConvTransposeGeometry,
  tile: ConvTransposeTile,
): { packed: GPUBuffer; pack: Dispatch } {
  const bytes = Math.max(16, tile.packedVec4s * 16);
  if (bytes > gpu.limits.maxStorageBufferBindingSize) {
    throw new EngineError(
      `conv_transpose: packed weights ${shapeString(weight.shape)} need ${bytes} bytes, over ` +
        `this adapter's maxStorageBufferBindingSize (${gpu.limits.maxStorageBufferBindingSize})`,
    );
  }
  const packed = owner.own(gpu.device.createBuffer({
    size: bytes,
    usage: STORAGE_USAGE,
    label: `conv_transpose weights ${shapeString(weight.shape)}`,
  }));
  const packUniform = owner.own(createUniform(gpu, "conv_transpose_pack", {
    cg: geometry.cg,
    mg: tile.columns,
    taps: tile.packTaps,
    mb: tile.blocksPerGroup,
    total: tile.packedVec4s,
  }, "conv_transpose pack"));
  const pack = prepareDispatch(
    gpu,
    { shader: "conv_transpose_pack", constants: { WG } },
    [weight, packed, packUniform],
    Math.ceil(tile.packedVec4s / WG),
  );
  return { packed, pack };
}

/** The quads of 4 output (`main`) or input (`main_folded`) positions the kernel walks: `grid`
 * as the uniform holds it, and the invocations over all phases, channel tiles and groups. */
function convTransposeGrid(
  geometry: ConvTransposeGeometry,
  group: number,
  tile: ConvTransposeTile,
): { grid: number[]; invocations: number } {
  const { n, inSize, outSize, strides } = geometry;
  if (tile.folded) {
    // Quads of 4 consecutive input positions along W, ceil(IW / 4) per input row.
    const qw = Math.ceil(inSize[2] / PIXELS);
    const quads = n * inSize[0] * inSize[1] * qw;
    return { grid: [0, 0, qw, quads], invocations: quads * tile.channelTiles * group };
  }
  // Quads per phase: along D and H every phase has at most ceil(O / S) positions, along W at
  // most ceil(OW / SW), in quads of PIXELS.
  const ud = Math.ceil(outSize[0] / strides[0]);
  const uh = Math.ceil(outSize[1] / strides[1]);
  const qw = Math.ceil(Math.ceil(outSize[2] / strides[2]) / PIXELS);
  const perPhase = n * ud * uh * qw;
  const phases = strides[0] * strides[1] * strides[2];
  return {
    grid: [ud, uh, qw, perPhase],
    invocations: perPhase * phases * tile.channelTiles * group,
  };
}

function createConvTransposeUniform(
  gpu: Gpu,
  owner: ResourceOwner,
  geometry: ConvTransposeGeometry,
  attrs: ConvTransposeAttrs,
  tile: ConvTransposeTile,
  grid: number[],
): GPUBuffer {
  const { inSize, outSize, kernel, strides, rank } = geometry;
  return owner.own(createUniform(gpu, "conv_transpose", {
    in_size: [...inSize, sizeOf(inSize)],
    out_size: [...outSize, sizeOf(outSize)],
    kernel: [...kernel, geometry.taps],
    stride: [...strides, strides[0] * strides[1] * strides[2]],
    dilation: to3d(attrs.dilations, 1),
    pad: to3d(attrs.pads.slice(0, rank), 0),
    channels: [geometry.c, geometry.m, geometry.cg, geometry.mg],
    grid,
    tiles: [tile.channelTiles, attrs.group, tile.blocksPerGroup, tile.columns],
  }));
}

/** Records Y = ConvTranspose(X, W) + B (rounded to half precision when Y is float16). X [N, C,
 * ...spatial] and Y [N, M, ...] are GPU tensors; W [C, M/group, ...kernel] and B [M] may be GPU
 * tensors or host tensors (host ones are packed / uploaded once into buffers owned by `owner`).
 * Problems where kernel == stride (see isFoldedConvTranspose) run `main_folded`, the others
 * `main` (see the shader): on the 2x2/2 layers of a text detector's head the folded kernel
 * takes less than half the time of `main` where the output has few channels, and ties where
 * channel tiles are full either way (docs/engine.md). */
export function prepareConvTranspose(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  weight: GpuTensor | CpuTensor,
  bias: GpuTensor | CpuTensor | undefined,
  y: GpuTensor,
  attrs: ConvTransposeAttrs,
  options: PrepareConvTransposeOptions = {},
): Dispatch[] {
  const { geometry, folded } = checkConvTransposeProblem(x, weight, bias, y, attrs, options);
  if (sizeOf(y.shape) === 0) return [];
  const tile = chooseConvTransposeTile(geometry, attrs.group, folded, options);
  const { packed, pack } = packWeights(gpu, owner, x, weight, geometry, attrs.group, tile);
  const biasBinding = operandBinding(gpu, owner, bias, "conv_transpose bias", geometry.m);
  const { grid, invocations } = convTransposeGrid(geometry, attrs.group, tile);
  const uniform = createConvTransposeUniform(gpu, owner, geometry, attrs, tile, grid);
  const main = prepareDispatch(
    gpu,
    {
      shader: "conv_transpose",
      entryPoint: folded ? "main_folded" : "main",
      constants: { WG, TM4: tile.channelBlocks, ROUND_F16: y.dtype === "float16" ? 1 : 0 },
    },
    [x, packed, biasBinding, y, uniform],
    Math.ceil(invocations / WG),
  );
  return pack ? [pack, main] : [main];
}
