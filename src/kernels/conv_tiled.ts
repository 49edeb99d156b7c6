/** GPU binding of `shaders/conv_tiled.wgsl`: convolution as an implicit GEMM with workgroup
 * shared-memory tiles, the variant for hardware GPUs (see the shader's header for the layout and
 * why). `prepareConv` (conv.ts) runs it under the cache names of `CONV_TILED_SHAPES` when asked or
 * measured fastest; `convCandidates` offers it to the tuner on hardware adapters only.
 *
 * Constant (host) weights are laid out once into a storage buffer, as float32 or, with half
 * precision asked for, as float16 pairs (rounded to nearest even, as the texture variants'
 * rgba16float texels are); weights computed on the GPU are laid out by a first dispatch on every
 * run, at float32. */
import { f32ToF16Bits, shapeString, sizeOf } from "../util/tensor.ts";
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  isGpuTensor,
  prepareDispatch,
  type ResourceOwner,
  splitWorkgroups,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import type { CpuTensor } from "../util/tensor.ts";
import { type ConvAttrs, type ConvGeometry, convGeometryUniform } from "./conv_shape.ts";
import { operandBinding } from "./operand_binding.ts";

/** A tile of the shader: WG_N x WG_M invocations, each 4 pixels x 4 output channels. */
export interface ConvTiledShape {
  /** Invocations along the output pixels (the tile is 4 * wgN pixels). */
  readonly wgN: number;
  /** Invocations along the output channels (the tile is 4 * wgM channels). */
  readonly wgM: number;
}

/** The tiles, by cache name (output channels x pixels per workgroup): 64 x 64, the usual GEMM
 * tile of 256 invocations; 32 x 64 (128 invocations) wastes less where a group has few output
 * channels (up to 32) and gives twice the workgroups where there are few pixels. */
export const CONV_TILED_SHAPES = {
  tiled64: { wgN: 16, wgM: 16 },
  tiled32: { wgN: 16, wgM: 8 },
} as const satisfies Record<string, ConvTiledShape>;

export type ConvTiledName = keyof typeof CONV_TILED_SHAPES;

/** k values per staged slice (the shader's TILE_K). */
const TILE_K = 16;
/** vec4 slots of each workgroup array (the shader's TILE_CAPACITY). */
const TILE_CAPACITY = 256;
/** Invocations per workgroup of `pack_weights`. */
const PACK_WG = 64;

/** Whether `name` is the cache name of a tile of this shader. */
export function isConvTiledName(name: string): name is ConvTiledName {
  return Object.hasOwn(CONV_TILED_SHAPES, name);
}

/** The tiled variants worth timing for a group of `channelsPerGroup` output channels: none
 * below 8 (a depthwise-like group would fill at most 1 row in 4 of the 32-channel tile, where
 * the direct kernel's small tiles fit), the 64-channel tile from 32 up. */
export function convTiledCandidates(channelsPerGroup: number): ConvTiledName[] {
  if (channelsPerGroup < 8) return [];
  return channelsPerGroup >= 32 ? ["tiled64", "tiled32"] : ["tiled32"];
}

/** Weight quads per k (4 output channels each) of a group of `mg` channels. */
function quadsPerK(mg: number): number {
  return Math.ceil(mg / 4);
}

/** W [M, Cg, ...kernel] in the shader's quad layout: quad (g * K + k) * MQ + q holds
 * W[g*Mg + 4q + (0..3), k] (zero past Mg), as 32-bit words: 4 float32 per quad, or (`halves`)
 * 4 float16 bit patterns packed in pairs, low half first (unpack2x16float's order). */
export function packConvTiledWeights(
  w: ArrayLike<number>,
  wShape: readonly number[],
  group: number,
  halves: boolean,
): Uint32Array<ArrayBuffer> {
  const mg = wShape[0] / group;
  const k = sizeOf(wShape.slice(1));
  const mq = quadsPerK(mg);
  const quads = new Float32Array(group * k * mq * 4);
  for (let g = 0; g < group; g++) {
    for (let m = 0; m < mg; m++) {
      const src = (g * mg + m) * k;
      const q = m >> 2, lane = m & 3;
      for (let kk = 0; kk < k; kk++) quads[((g * k + kk) * mq + q) * 4 + lane] = w[src + kk];
    }
  }
  if (!halves) return new Uint32Array(quads.buffer);
  const out = new Uint32Array(quads.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = f32ToF16Bits(quads[2 * i]) | (f32ToF16Bits(quads[2 * i + 1]) << 16);
  }
  return out;
}

/** The weights in the quad layout: host ones packed and uploaded now; GPU ones into a buffer
 * that the returned dispatch fills on every run. */
function weightBuffer(
  gpu: Gpu,
  owner: ResourceOwner,
  weight: GpuTensor | CpuTensor,
  geometry: ConvGeometry,
  group: number,
  uniform: GPUBuffer,
  halves: boolean,
): { buffer: GPUBuffer; pack?: Dispatch } {
  const label = `conv tiled weights ${shapeString(weight.shape)}`;
  if (!isGpuTensor(weight)) {
    const words = packConvTiledWeights(weight.data, weight.shape, group, halves);
    return { buffer: owner.own(createStorageBuffer(gpu, words, label)) };
  }
  const quads = group * geometry.cg * geometry.taps * quadsPerK(geometry.mg);
  const bytes = quads * 16;
  if (bytes > gpu.limits.maxStorageBufferBindingSize) {
    throw new EngineError(
      `conv: tiled weights ${shapeString(weight.shape)} need ${bytes} bytes, over this ` +
        `adapter's maxStorageBufferBindingSize (${gpu.limits.maxStorageBufferBindingSize})`,
    );
  }
  const buffer = owner.own(gpu.device.createBuffer({
    size: Math.max(16, bytes),
    usage: GPUBufferUsage.STORAGE,
    label,
  }));
  const pack = prepareDispatch(
    gpu,
    { shader: "conv_tiled", entryPoint: "pack_weights", constants: { PACK_WG } },
    [weight, buffer, uniform],
    Math.ceil(quads / PACK_WG),
  );
  return { buffer, pack };
}

/** Records Y = conv(X, W) + B (ReLU if `attrs.relu`; rounded to half precision when Y is
 * float16) with the tile `name`; `geometry` is the checked problem (conv.ts checkConvProblem).
 * `halves`: host weights are stored as float16 (ignored for GPU weights). */
export function prepareConvTiled(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  weight: GpuTensor | CpuTensor,
  bias: GpuTensor | CpuTensor | undefined,
  y: GpuTensor,
  attrs: ConvAttrs,
  geometry: ConvGeometry,
  name: ConvTiledName,
  halves: boolean,
): Dispatch[] {
  const { wgN, wgM } = CONV_TILED_SHAPES[name];
  if (TILE_K * Math.max(wgN, wgM) > TILE_CAPACITY) {
    throw new Error(`conv_tiled: tile ${name} needs more than ${TILE_CAPACITY} vec4 per array`);
  }
  const channelTiles = Math.ceil(geometry.mg / (4 * wgM));
  const zTiles = attrs.group * channelTiles;
  const maxPerDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (zTiles > maxPerDim) {
    throw new EngineError(
      `conv: ${attrs.group} groups x ${channelTiles} channel tiles exceed this adapter's ` +
        `${maxPerDim} workgroups per dimension for the ${name} tile`,
    );
  }
  const uniform = owner.own(createUniform(gpu, "conv_tiled", {
    ...convGeometryUniform(geometry, attrs),
    gemm: [geometry.pixels, geometry.cg * geometry.taps, quadsPerK(geometry.mg), channelTiles],
  }));
  const half = halves && !isGpuTensor(weight);
  const weights = weightBuffer(gpu, owner, weight, geometry, attrs.group, uniform, half);
  const [wx, wy] = splitWorkgroups(gpu, Math.ceil(geometry.pixels / (4 * wgN)));
  const conv = prepareDispatch(
    gpu,
    {
      shader: "conv_tiled",
      constants: {
        WG_N: wgN,
        WG_M: wgM,
        TILE_K,
        RELU: attrs.relu ? 1 : 0,
        ROUND_F16: y.dtype === "float16" ? 1 : 0,
        HALF_WEIGHTS: half ? 1 : 0,
      },
    },
    [x, weights.buffer, operandBinding(gpu, owner, bias, "conv bias", geometry.m), y, uniform],
    [wx, wy, zTiles],
  );
  return weights.pack ? [weights.pack, conv] : [conv];
}
