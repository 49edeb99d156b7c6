/** Host references for GridSample and AffineGrid, written after onnx/reference/ops
 * (op_grid_sample.py, op_affine_grid.py): per output point, the grid's normalised coordinate is
 * mapped to an input coordinate, out-of-range coordinates are clamped or reflected per padding
 * mode, and the taps of the interpolation read the input with the same padding rule. The N-d
 * interpolation is the product of per-axis 1-D weights (the reference nests 1-D interpolations,
 * which is the same sum), so the GPU kernel (grid_sample.ts) can follow this per axis. */
import { type CpuTensor, newCpuData, roundToF16, sizeOf } from "../util/tensor.ts";
import { roundHalfEven } from "./elementwise_ref.ts";
import { affineGridShape, type GridSampleOptions, gridSampleShape } from "./grid_sample_shape.ts";
import { unravel } from "./shape.ts";

/** Input coordinate of normalised coordinate `g` on an axis of `len` positions. */
export function denormalize(g: number, len: number, alignCorners: boolean): number {
  return alignCorners ? (g + 1) / 2 * (len - 1) : ((g + 1) * len - 1) / 2;
}

/** Reflects `x` into [lo, hi] (the reference's _gs_reflect). An empty range (a length-1 axis
 * with align_corners, where the reference divides by zero) reflects everything onto lo. */
export function reflect(x: number, lo: number, hi: number): number {
  const range = hi - lo;
  if (range <= 0) return lo;
  if (x < lo) {
    const dx = lo - x;
    const n = Math.trunc(dx / range);
    const r = dx - n * range;
    return n % 2 === 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const dx = x - hi;
    const n = Math.trunc(dx / range);
    const r = dx - n * range;
    return n % 2 === 0 ? hi - r : lo + r;
  }
  return x;
}

/** Cubic convolution weights (a = -0.75) of the four taps around fractional offset `t`. */
export function cubicWeights(t: number): [number, number, number, number] {
  const a = -0.75;
  const x = Math.abs(t);
  return [
    ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a,
    ((a + 2) * x - (a + 3)) * x * x + 1,
    ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1,
    ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a,
  ];
}

/** The taps of one axis: input positions (-1: outside, reads zero) and weights. */
export function axisTaps(
  g: number,
  len: number,
  o: GridSampleOptions,
): { index: number[]; weight: number[] } {
  // Borders of the valid coordinate range: pixel centres with align_corners, edges otherwise.
  const lo = o.alignCorners ? 0 : -0.5;
  const hi = o.alignCorners ? len - 1 : len - 0.5;
  let x = denormalize(g, len, o.alignCorners);
  if (o.mode === "nearest") x = roundHalfEven(x);
  if (x < lo || x > hi) {
    if (o.padding === "border") x = Math.min(Math.max(x, 0), len - 1);
    else if (o.padding === "reflection") x = reflect(x, lo, hi);
  }
  const at = (i: number): number => {
    if (o.padding === "zeros") return i >= 0 && i < len ? i : -1;
    if (o.padding === "border") return Math.min(Math.max(i, 0), len - 1);
    return Math.trunc(reflect(i, lo, hi));
  };
  if (o.mode === "nearest") return { index: [at(Math.trunc(x))], weight: [1] };
  const x0 = Math.floor(x);
  const t = x - x0;
  if (o.mode === "linear") return { index: [at(x0), at(x0 + 1)], weight: [1 - t, t] };
  return { index: [at(x0 - 1), at(x0), at(x0 + 1), at(x0 + 2)], weight: cubicWeights(t) };
}

/** GridSample: X [N, C, ...spatial] sampled at grid [N, ...out, rank] (coordinates in x, y(, z)
 * order: the last spatial axis first). Computed in float64, rounded to X's dtype. */
export function gridSampleRef(x: CpuTensor, grid: CpuTensor, o: GridSampleOptions): CpuTensor {
  const shape = gridSampleShape(x.shape, grid.shape);
  const rank = x.shape.length - 2;
  const [n, c] = x.shape;
  const inDims = x.shape.slice(2);
  const inPlane = sizeOf(inDims);
  const outPlane = sizeOf(shape.slice(2));
  const data = newCpuData(x.dtype, sizeOf(shape));
  for (let b = 0; b < n; b++) {
    for (let p = 0; p < outPlane; p++) {
      const gBase = (b * outPlane + p) * rank;
      // Axis a (0 = outermost spatial) reads grid component rank - 1 - a.
      const taps = inDims.map((len, a) =>
        axisTaps(Number(grid.data[gBase + rank - 1 - a]), len, o)
      );
      for (let ch = 0; ch < c; ch++) {
        const base = (b * c + ch) * inPlane;
        let sum = 0;
        const visit = (a: number, offset: number, w: number): void => {
          if (a === rank) {
            sum += w * Number(x.data[base + offset]);
            return;
          }
          const t = taps[a];
          for (let k = 0; k < t.index.length; k++) {
            if (t.index[k] < 0) continue;
            visit(a + 1, offset * inDims[a] + t.index[k], w * t.weight[k]);
          }
        };
        visit(0, 0, 1);
        data[(b * c + ch) * outPlane + p] = x.dtype === "float16" ? roundToF16(sum) : sum;
      }
    }
  }
  return { dtype: x.dtype, shape, data };
}

/** Normalised coordinate of position `i` of `len` (the reference's arange-built base grid). */
export function baseCoordinate(i: number, len: number, alignCorners: boolean): number {
  if (alignCorners) return len === 1 ? -1 : -1 + (2 * i) / (len - 1);
  return -1 + (2 * i + 1) / len;
}

/** AffineGrid: grid[n, (d,) h, w] = theta[n] @ [x_w, y_h, (z_d,) 1]. */
export function affineGridRef(
  theta: CpuTensor,
  size: readonly number[],
  alignCorners: boolean,
): CpuTensor {
  const shape = affineGridShape(theta.shape, size);
  const rank = size.length - 2;
  const spatial = size.slice(2);
  const points = sizeOf(spatial);
  const data = newCpuData(theta.dtype, sizeOf(shape));
  const idx = new Array<number>(rank).fill(0);
  for (let b = 0; b < size[0]; b++) {
    for (let p = 0; p < points; p++) {
      unravel(p, spatial, idx);
      // Homogeneous base point in x, y(, z) order: the last spatial axis first.
      const base = [
        ...idx.map((_, k) => {
          const a = rank - 1 - k;
          return baseCoordinate(idx[a], spatial[a], alignCorners);
        }),
        1,
      ];
      for (let r = 0; r < rank; r++) {
        let s = 0;
        for (let k = 0; k <= rank; k++) {
          s += Number(theta.data[(b * rank + r) * (rank + 1) + k]) * base[k];
        }
        data[(b * points + p) * rank + r] = theta.dtype === "float16" ? roundToF16(s) : s;
      }
    }
  }
  return { dtype: theta.dtype, shape, data };
}
