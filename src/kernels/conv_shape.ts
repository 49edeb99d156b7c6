/** Geometry of convolution and transposed convolution (1-3 spatial axes), shared by the GPU
 * bindings (conv.ts, conv_transpose.ts), their CPU references and the ONNX ops. Pure TS.
 * Shape errors are plain Errors saying what does not fit; callers add the node name. */
import { sizeOf } from "../util/tensor.ts";
import { to3d, windowOutputSize } from "./shape.ts";

/** Convolution settings with explicit pads (ONNX `auto_pad` is resolved by the caller). All
 * per-axis lists have one entry per spatial axis; `pads` is [begin..., end...]. */
export interface ConvAttrs {
  readonly strides: readonly number[];
  readonly pads: readonly number[];
  readonly dilations: readonly number[];
  readonly group: number;
  /** Apply max(0, y) after the bias (a fused Relu). */
  readonly relu?: boolean;
}

/** Transposed-convolution settings with explicit pads (ONNX `auto_pad` and `output_shape` are
 * resolved by the caller). Per-axis lists have one entry per spatial axis; `pads` is
 * [begin..., end...]. */
export interface ConvTransposeAttrs {
  readonly strides: readonly number[];
  readonly pads: readonly number[];
  readonly dilations: readonly number[];
  /** Extra output positions at the end of each axis (ONNX `output_padding`); default 0s. */
  readonly outputPadding?: readonly number[];
  readonly group: number;
}

/** Y's shape for X [N, C, ...spatial] and W [M, C/group, ...kernel]. */
export function convOutputShape(
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
): number[] {
  const rank = checkRanks(xShape, wShape);
  const [n, c] = xShape;
  const m = wShape[0];
  const g = attrs.group;
  if (g < 1 || c % g !== 0 || m % g !== 0) {
    throw new Error(`group ${g} must divide input channels ${c} and output channels ${m}`);
  }
  if (wShape[1] * g !== c) {
    throw new Error(`weight has ${wShape[1]} input channels per group, input has ${c}/${g}`);
  }
  checkAxisList("strides", attrs.strides, rank, 1);
  checkAxisList("dilations", attrs.dilations, rank, 1);
  checkPadCount(attrs.pads, rank);
  const out = [n, m];
  for (let a = 0; a < rank; a++) {
    const o = windowOutputSize(
      xShape[a + 2],
      wShape[a + 2],
      attrs.strides[a],
      attrs.dilations[a],
      attrs.pads[a],
      attrs.pads[a + rank],
    );
    if (o < 1) {
      throw new Error(
        `axis ${a + 2}: kernel ${wShape[a + 2]} (dilation ${attrs.dilations[a]}) does not fit ` +
          `input ${xShape[a + 2]} with pads ${attrs.pads[a]}+${attrs.pads[a + rank]}`,
      );
    }
    out.push(o);
  }
  return out;
}

/** One convolution's sizes as the GPU kernels take them: spatial ones in 3-D (leading 1s below
 * rank 3). */
export interface ConvGeometry {
  /** Spatial axes of X. */
  readonly rank: number;
  /** Input and output channels, and input and output channels per group. */
  readonly c: number;
  readonly m: number;
  readonly cg: number;
  readonly mg: number;
  readonly inSize: readonly [number, number, number];
  readonly outSize: readonly [number, number, number];
  readonly kernel: readonly [number, number, number];
  readonly taps: number;
  /** Output pixels of all images. */
  readonly pixels: number;
}

/** The sizes of X [N, C, ...spatial] * W [M, C/group, ...kernel] -> Y (shapes already checked
 * against each other, e.g. by convOutputShape). */
export function convGeometry(
  xShape: readonly number[],
  wShape: readonly number[],
  yShape: readonly number[],
  group: number,
): ConvGeometry {
  const [n, c] = xShape;
  const m = wShape[0];
  const outSize = to3d(yShape.slice(2), 1);
  const kernel = to3d(wShape.slice(2), 1);
  return {
    rank: xShape.length - 2,
    c,
    m,
    cg: c / group,
    mg: m / group,
    inSize: to3d(xShape.slice(2), 1),
    outSize,
    kernel,
    taps: kernel[0] * kernel[1] * kernel[2],
    pixels: n * sizeOf(outSize),
  };
}

/** The uniform fields conv.wgsl and conv_tiled.wgsl share (the head of both shaders' `struct
 * Params`): spatial sizes in 3-D with their products, strides, dilations, leading pads and the
 * channel counts. */
export function convGeometryUniform(geometry: ConvGeometry, attrs: ConvAttrs) {
  const { inSize, outSize, kernel, rank } = geometry;
  return {
    in_size: [...inSize, sizeOf(inSize)],
    out_size: [...outSize, sizeOf(outSize)],
    kernel: [...kernel, geometry.taps],
    stride: to3d(attrs.strides, 1),
    dilation: to3d(attrs.dilations, 1),
    pad: to3d(attrs.pads.slice(0, rank), 0),
    channels: [geometry.c, geometry.m, geometry.cg, geometry.mg],
  };
}

/** Length of one transposed-convolution output axis: the full scatter extent, minus the pads,
 * plus output padding. */
export function convTransposeAxisSize(
  inSize: number,
  kernel: number,
  stride: number,
  dilation: number,
  padBegin: number,
  padEnd: number,
  outputPadding: number,
): number {
  return stride * (inSize - 1) + outputPadding + (kernel - 1) * dilation + 1 - padBegin - padEnd;
}

/** Y's shape [N, M, ...] of a transposed convolution of X [N, C, ...spatial] by
 * W [C, M/group, ...kernel]. */
export function convTransposeOutputShape(
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvTransposeAttrs,
): number[] {
  const rank = checkRanks(xShape, wShape);
  const [n, c] = xShape;
  const g = attrs.group;
  if (!Number.isInteger(g) || g < 1 || c % g !== 0) {
    throw new Error(`group ${g} must divide input channels ${c}`);
  }
  if (wShape[0] !== c) {
    throw new Error(`weight has ${wShape[0]} input channels, input has ${c}`);
  }
  checkAxisList("strides", attrs.strides, rank, 1);
  checkAxisList("dilations", attrs.dilations, rank, 1);
  const outPad = attrs.outputPadding ?? Array<number>(rank).fill(0);
  checkAxisList("output padding", outPad, rank, 0);
  checkPadCount(attrs.pads, rank);
  // Negative pads are allowed here (they extend the output); fractional ones are not.
  if (!attrs.pads.every(Number.isInteger)) throw new Error(`pads must be integers`);
  const out = [n, wShape[1] * g];
  for (let a = 0; a < rank; a++) {
    const o = convTransposeAxisSize(
      xShape[a + 2],
      wShape[a + 2],
      attrs.strides[a],
      attrs.dilations[a],
      attrs.pads[a],
      attrs.pads[a + rank],
      outPad[a],
    );
    if (o < 1) {
      throw new Error(
        `axis ${a + 2}: pads ${attrs.pads[a]}+${attrs.pads[a + rank]} remove the whole output ` +
          `(input ${xShape[a + 2]}, kernel ${wShape[a + 2]}, stride ${attrs.strides[a]})`,
      );
    }
    out.push(o);
  }
  return out;
}

/** The spatial rank (1-3) of X [N, C, ...spatial] with a weight of the same rank. */
function checkRanks(xShape: readonly number[], wShape: readonly number[]): number {
  const rank = xShape.length - 2;
  if (rank < 1 || rank > 3) {
    throw new Error(`input rank ${xShape.length}: need 3 to 5 (N, C, 1-3 spatial axes)`);
  }
  if (wShape.length !== xShape.length) {
    throw new Error(`weight rank ${wShape.length} differs from input rank ${xShape.length}`);
  }
  return rank;
}

/** One integer >= `min` per spatial axis. */
function checkAxisList(name: string, values: readonly number[], rank: number, min: number): void {
  if (values.length !== rank) throw new Error(`${name} needs ${rank} values, got ${values.length}`);
  for (const v of values) {
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be >= ${min}, got ${v}`);
  }
}

function checkPadCount(pads: readonly number[], rank: number): void {
  if (pads.length !== 2 * rank) {
    throw new Error(`pads needs ${2 * rank} values, got ${pads.length}`);
  }
}
