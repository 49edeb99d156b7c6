/** CPU reference for max and average pooling over 1-3 spatial axes (strides, pads, dilations,
 * ceil mode, count_include_pad, MaxPool's argmax indices); the geometry, shared with the GPU
 * binding, is in pool_shape.ts. Global pools are pools whose window is the whole spatial
 * extent. Pure TS. */
import { type Pool3d, pool3d, type PoolAttrs, poolOutputShape } from "./pool_shape.ts";

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
