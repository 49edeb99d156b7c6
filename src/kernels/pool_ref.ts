/** CPU reference for max and average pooling over 1-3 spatial axes (strides, pads, dilations,
 * ceil mode, count_include_pad, MaxPool's argmax indices), shared geometry with the GPU binding.
 * Global pools are pools whose window is the whole spatial extent. Pure TS. */
import { to3d } from "./conv_ref.ts";

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
  const span = (kernel - 1) * dilation + 1;
  const room = inSize + padBegin + padEnd - span;
  if (!ceilMode) return Math.floor(room / stride) + 1;
  let out = Math.ceil(room / stride) + 1;
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

/** Visits every output position of every (n, c) plane with its window's input positions. */
function forEachWindow(
  planes: number,
  g: Pool3d,
  visit: (plane: number, out: number, taps: readonly [number, number, number][]) => void,
): void {
  const [od, oh, ow] = g.outSize;
  for (let plane = 0; plane < planes; plane++) {
    for (let zd = 0; zd < od; zd++) {
      for (let zh = 0; zh < oh; zh++) {
        for (let zw = 0; zw < ow; zw++) {
          const taps: [number, number, number][] = [];
          const start = [zd, zh, zw].map((o, a) => o * g.strides[a] - g.padBegin[a]);
          for (let a = 0; a < g.kernel[0]; a++) {
            for (let b = 0; b < g.kernel[1]; b++) {
              for (let c = 0; c < g.kernel[2]; c++) {
                taps.push([
                  start[0] + a * g.dilations[0],
                  start[1] + b * g.dilations[1],
                  start[2] + c * g.dilations[2],
                ]);
              }
            }
          }
          visit(plane, (zd * oh + zh) * ow + zw, taps);
        }
      }
    }
  }
}

function inside(q: readonly number[], lo: readonly number[], hi: readonly number[]): boolean {
  return q[0] >= lo[0] && q[0] < hi[0] && q[1] >= lo[1] && q[1] < hi[1] && q[2] >= lo[2] &&
    q[2] < hi[2];
}

/** Max pooling; `indices` are flat positions in X (n and c included), row- or column-major over
 * the spatial axes per `storageOrder`. A window with no input position gives 0 and index -1. */
export function maxPoolRef(
  x: ArrayLike<number>,
  xShape: readonly number[],
  attrs: PoolAttrs,
): { data: Float32Array; indices: Float64Array; shape: number[] } {
  const shape = poolOutputShape(xShape, attrs);
  const g = pool3d(xShape, shape, attrs);
  const [id, ih, iw] = g.inSize;
  const inPlane = id * ih * iw;
  const outPlane = g.outSize[0] * g.outSize[1] * g.outSize[2];
  const planes = xShape[0] * xShape[1];
  const data = new Float32Array(planes * outPlane);
  const indices = new Float64Array(planes * outPlane);
  const colMajor = (attrs.storageOrder ?? 0) === 1;
  forEachWindow(planes, g, (plane, out, taps) => {
    let best = 0, bestIndex = -1;
    for (const q of taps) {
      if (!inside(q, [0, 0, 0], g.inSize)) continue;
      const v = x[plane * inPlane + (q[0] * ih + q[1]) * iw + q[2]];
      // A NaN wins and stays, as in numpy and PyTorch (and pool.wgsl).
      if (bestIndex < 0 || (Number.isNaN(v) || v > best) && !Number.isNaN(best)) {
        best = v;
        bestIndex = plane * inPlane +
          (colMajor ? q[0] + q[1] * id + q[2] * id * ih : (q[0] * ih + q[1]) * iw + q[2]);
      }
    }
    data[plane * outPlane + out] = best;
    indices[plane * outPlane + out] = bestIndex;
  });
  return { data, indices, shape };
}

/** Average pooling (float64 sums). The divisor counts window positions inside the input, or
 * with `countIncludePad` inside the explicitly padded input (positions a ceil-mode window
 * reaches past the end padding never count). A window with nothing to count gives NaN. */
export function avgPoolRef(
  x: ArrayLike<number>,
  xShape: readonly number[],
  attrs: PoolAttrs,
): { data: Float32Array; shape: number[] } {
  const shape = poolOutputShape(xShape, attrs);
  const g = pool3d(xShape, shape, attrs);
  const [, ih, iw] = g.inSize;
  const inPlane = g.inSize[0] * ih * iw;
  const outPlane = g.outSize[0] * g.outSize[1] * g.outSize[2];
  const planes = xShape[0] * xShape[1];
  const data = new Float32Array(planes * outPlane);
  const lo = g.padBegin.map((p) => -p);
  const hi = g.inSize.map((s, a) => s + g.padEnd[a]);
  forEachWindow(planes, g, (plane, out, taps) => {
    let sum = 0, count = 0;
    for (const q of taps) {
      if (inside(q, [0, 0, 0], g.inSize)) {
        sum += x[plane * inPlane + (q[0] * ih + q[1]) * iw + q[2]];
        count++;
      } else if (attrs.countIncludePad && inside(q, lo, hi)) {
        count++;
      }
    }
    data[plane * outPlane + out] = count > 0 ? sum / count : NaN;
  });
  return { data, shape };
}
