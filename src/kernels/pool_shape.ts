/** Geometry of max, average and Lp pooling over 1-3 spatial axes (window extents, ceil mode,
 * the problem as 3-D lists), shared by the GPU bindings (pool.ts, lp_pool.ts), their CPU
 * references and the ONNX ops. Pure TS. */
import { to3d, windowOutputSize } from "./shape.ts";

/** Pooling settings with explicit pads (ONNX `auto_pad` is resolved by the caller). Per-axis
 * lists have one entry per spatial axis; `pads` is [begin..., end...]. */
export interface PoolAttrs {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly pads: readonly number[];
  readonly dilations: readonly number[];
  /** Output extent rounds up; a last window starting inside the end padding is dropped. */
  readonly ceilMode?: boolean;
  /** Average pooling divides by the window's positions inside the padded input (true) or by
   * its positions inside the input (false, the default). */
  readonly countIncludePad?: boolean;
  /** MaxPool indices: 0 row-major (default), 1 column-major over the spatial axes. */
  readonly storageOrder?: number;
}

/** Output extent of one pooling axis. */
export function poolOutputSize(
  inSize: number,
  kernel: number,
  stride: number,
  dilation: number,
  padBegin: number,
  padEnd: number,
  ceilMode: boolean,
): number {
  if (!ceilMode) return windowOutputSize(inSize, kernel, stride, dilation, padBegin, padEnd);
  const span = (kernel - 1) * dilation + 1;
  let out = Math.ceil((inSize + padBegin + padEnd - span) / stride) + 1;
  if ((out - 1) * stride >= inSize + padBegin) out--; // last window would start in the padding
  return out;
}

/** Y's shape for X [N, C, ...spatial]; throws a plain Error saying what does not fit. */
export function poolOutputShape(xShape: readonly number[], attrs: PoolAttrs): number[] {
  const rank = xShape.length - 2;
  if (rank < 1 || rank > 3) {
    throw new Error(`input rank ${xShape.length}: need 3 to 5 (N, C, 1-3 spatial axes)`);
  }
  for (
    const [name, list, len] of [
      ["kernel_shape", attrs.kernel, rank],
      ["strides", attrs.strides, rank],
      ["dilations", attrs.dilations, rank],
      ["pads", attrs.pads, 2 * rank],
    ] as const
  ) {
    if (list.length !== len) throw new Error(`${name} needs ${len} values, got ${list.length}`);
  }
  const out = [xShape[0], xShape[1]];
  for (let a = 0; a < rank; a++) {
    if (!(attrs.kernel[a] >= 1 && attrs.strides[a] >= 1 && attrs.dilations[a] >= 1)) {
      throw new Error(`kernel, strides and dilations must be >= 1 (axis ${a + 2})`);
    }
    const o = poolOutputSize(
      xShape[a + 2],
      attrs.kernel[a],
      attrs.strides[a],
      attrs.dilations[a],
      attrs.pads[a],
      attrs.pads[a + rank],
      attrs.ceilMode ?? false,
    );
    if (o < 1) {
      throw new Error(
        `axis ${a + 2}: window ${attrs.kernel[a]} (dilation ${attrs.dilations[a]}) does not fit ` +
          `input ${xShape[a + 2]} with pads ${attrs.pads[a]}+${attrs.pads[a + rank]}`,
      );
    }
    out.push(o);
  }
  return out;
}

/** The same pooling problem as 3-D lists (D, H, W) with unit leading axes. */
export interface Pool3d {
  inSize: [number, number, number];
  outSize: [number, number, number];
  kernel: [number, number, number];
  strides: [number, number, number];
  dilations: [number, number, number];
  padBegin: [number, number, number];
  padEnd: [number, number, number];
}

export function pool3d(
  xShape: readonly number[],
  yShape: readonly number[],
  attrs: PoolAttrs,
): Pool3d {
  const rank = xShape.length - 2;
  return {
    inSize: to3d(xShape.slice(2), 1),
    outSize: to3d(yShape.slice(2), 1),
    kernel: to3d(attrs.kernel, 1),
    strides: to3d(attrs.strides, 1),
    dilations: to3d(attrs.dilations, 1),
    padBegin: to3d(attrs.pads.slice(0, rank), 0),
    padEnd: to3d(attrs.pads.slice(rank), 0),
  };
}
