/** Host reference of `shaders/amu_update.wgsl`: the head's weight gradient and PyTorch's AdamW
 * step, in float64. */
import type { AdamHyper } from "./amu_update_shape.ts";

/** g[c, k] = sum_b dz[b, c] * x[b, k] for dz [B, C] and gathered features x [B, D]. */
export function amuWeightGradRef(
  dz: ArrayLike<number>,
  x: ArrayLike<number>,
  batch: number,
  classes: number,
  dim: number,
): Float64Array {
  const g = new Float64Array(classes * dim);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < classes; c++) {
      const d = dz[b * classes + c];
      for (let k = 0; k < dim; k++) g[c * dim + k] += d * x[b * dim + k];
    }
  }
  return g;
}

/** One AdamW step in place at 1-based step `t` with learning rate `lr` (PyTorch order:
 * decoupled decay, moments, bias-corrected update). */
export function adamwStepRef(
  w: Float64Array,
  m: Float64Array,
  v: Float64Array,
  g: ArrayLike<number>,
  lr: number,
  t: number,
  h: AdamHyper,
): void {
  const stepSize = lr / (1 - h.beta1 ** t);
  const bc2Sqrt = Math.sqrt(1 - h.beta2 ** t);
  for (let i = 0; i < w.length; i++) {
    w[i] *= 1 - lr * h.weightDecay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
    w[i] -= stepSize * m[i] / (Math.sqrt(v[i]) / bc2Sqrt + h.eps);
  }
}
