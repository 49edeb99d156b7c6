/** Host (float64) reference of `shaders/tip_cache.wgsl`: Tip-Adapter's cache logits, the
 * Tip-Adapter-F row gradient, and the (beta, alpha) grid's hit counts. */
import { argmaxRef } from "./amu_rows_ref.ts";

/** cache[c] = sum over entries n of class c of exp(-(beta - beta * a[n])), for one row. */
export function cacheLogitsRef(
  a: ArrayLike<number>,
  entryLabels: Int32Array,
  classes: number,
  beta: number,
): Float64Array {
  const out = new Float64Array(classes);
  for (let n = 0; n < entryLabels.length; n++) {
    out[entryLabels[n]] += Math.exp(-(beta - beta * a[n]));
  }
  return out;
}

export interface TipRowResult {
  loss: number;
  hit: boolean;
  /** dloss/dA of this row for a batch of `batch` rows (the mean's 1 / B included). */
  dA: Float64Array;
}

/** One Tip-Adapter-F training row: affinities `a` [N], CLIP logits `clip` [C], label `y`. */
export function tipTrainRowRef(
  a: ArrayLike<number>,
  clip: ArrayLike<number>,
  y: number,
  entryLabels: Int32Array,
  beta: number,
  alpha: number,
  batch: number,
): TipRowResult {
  const C = clip.length;
  const cache = cacheLogitsRef(a, entryLabels, C, beta);
  const logits = new Float64Array(C);
  for (let c = 0; c < C; c++) logits[c] = clip[c] + cache[c] * alpha;
  const m = Math.max(...logits);
  let total = 0;
  for (let c = 0; c < C; c++) total += Math.exp(logits[c] - m);
  const dcache = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    dcache[c] = (Math.exp(logits[c] - m) / total - (c === y ? 1 : 0)) * alpha / batch;
  }
  const dA = new Float64Array(entryLabels.length);
  for (let n = 0; n < dA.length; n++) {
    dA[n] = dcache[entryLabels[n]] * Math.exp(-(beta - beta * a[n])) * beta;
  }
  return { loss: Math.log(total) - (logits[y] - m), hit: argmaxRef(logits) === y, dA };
}

/** Hit counts [betas, alphas] of rows with affinities `a` [rows, N] and CLIP logits [rows, C]. */
export function tipGridRef(
  a: ArrayLike<number>,
  clip: ArrayLike<number>,
  labels: Int32Array,
  entryLabels: Int32Array,
  classes: number,
  betas: ArrayLike<number>,
  alphas: ArrayLike<number>,
): Int32Array {
  const N = entryLabels.length, C = classes;
  const hits = new Int32Array(betas.length * alphas.length);
  const logits = new Float64Array(C);
  for (let r = 0; r < labels.length; r++) {
    const aRow = Array.prototype.slice.call(a, r * N, (r + 1) * N) as number[];
    for (let i = 0; i < betas.length; i++) {
      const cache = cacheLogitsRef(aRow, entryLabels, C, betas[i]);
      for (let j = 0; j < alphas.length; j++) {
        for (let c = 0; c < C; c++) logits[c] = clip[r * C + c] + cache[c] * alphas[j];
        if (argmaxRef(logits) === labels[r]) hits[i * alphas.length + j]++;
      }
    }
  }
  return hits;
}
