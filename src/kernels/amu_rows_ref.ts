/** Host reference of `shaders/amu_rows.wgsl` (float64): per-row standardisation, fusion with the
 * CLIP logits, the two cross-entropies, their gradient with respect to the head's raw logits, and
 * the evaluation's hits. Inputs are already gathered: row b of each array is batch row b. */
import { HIT_AUX, HIT_CLIP, HIT_FUSED } from "./amu_rows_shape.ts";

export interface RowForward {
  /** Standardised head logits a [C]. */
  a: Float64Array;
  /** clip + factor * a * alpha [C]. */
  fused: Float64Array;
  mean: number;
  std: number;
  lossMerge: number;
  lossAux: number;
  /** softmax(fused), softmax(a). */
  pFused: Float64Array;
  pAux: Float64Array;
  argFused: number;
  argAux: number;
}

/** Index of the largest value, lowest index on ties (torch.argmax). */
export function argmaxRef(x: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < x.length; c++) if (x[c] > x[best]) best = c;
  return best;
}

function softmaxAndCe(x: Float64Array, y: number): { p: Float64Array; loss: number } {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  let s = 0;
  for (const v of x) s += Math.exp(v - m);
  const logS = Math.log(s);
  const p = x.map((v) => Math.exp(v - m - logS));
  return { p, loss: logS - (x[y] - m) };
}

/** Forward pass of one row. */
export function amuRowForwardRef(
  z: ArrayLike<number>,
  clip: ArrayLike<number>,
  factor: number,
  label: number,
  alpha: number,
): RowForward {
  const C = z.length;
  let s = 0;
  for (let c = 0; c < C; c++) s += z[c];
  const mean = s / C;
  let ss = 0;
  for (let c = 0; c < C; c++) ss += (z[c] - mean) ** 2;
  const std = Math.sqrt(ss / (C - 1));
  const a = new Float64Array(C);
  const fused = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    a[c] = (z[c] - mean) / std;
    fused[c] = clip[c] + factor * a[c] * alpha;
  }
  const f = softmaxAndCe(fused, label);
  const x = softmaxAndCe(a, label);
  return {
    a,
    fused,
    mean,
    std,
    lossMerge: f.loss,
    lossAux: x.loss,
    pFused: f.p,
    pAux: x.p,
    argFused: argmaxRef(fused),
    argAux: argmaxRef(a),
  };
}

export interface TrainRowsResult {
  /** d(batch-mean loss)/dz [B, C]. */
  dz: Float64Array;
  lossMerge: Float64Array;
  lossAux: Float64Array;
  /** 1 where the fused argmax is the label. */
  correct: Float64Array;
}

/** Forward and backward of a batch: z, clip [B, C]; factors, labels [B]. */
export function amuTrainRowsRef(
  z: ArrayLike<number>,
  clip: ArrayLike<number>,
  factors: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
  alpha: number,
  lambda: number,
): TrainRowsResult {
  const B = labels.length;
  const C = classes;
  const dz = new Float64Array(B * C);
  const lossMerge = new Float64Array(B);
  const lossAux = new Float64Array(B);
  const correct = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const zr = Array.prototype.slice.call(z, b * C, (b + 1) * C) as number[];
    const lr = Array.prototype.slice.call(clip, b * C, (b + 1) * C) as number[];
    const y = labels[b];
    const fw = amuRowForwardRef(zr, lr, factors[b], y, alpha);
    lossMerge[b] = fw.lossMerge;
    lossAux[b] = fw.lossAux;
    correct[b] = fw.argFused === y ? 1 : 0;
    const g = new Float64Array(C);
    let gs = 0, gas = 0;
    for (let c = 0; c < C; c++) {
      const hit = c === y ? 1 : 0;
      g[c] = (lambda / B) * (fw.pFused[c] - hit) * alpha * factors[b] +
        ((1 - lambda) / B) * (fw.pAux[c] - hit);
      gs += g[c];
      gas += g[c] * fw.a[c];
    }
    for (let c = 0; c < C; c++) {
      dz[b * C + c] = (g[c] - gs / C) / fw.std - fw.a[c] * gas / ((C - 1) * fw.std);
    }
  }
  return { dz, lossMerge, lossAux, correct };
}

export interface EvalRowsResult {
  lossMerge: Float64Array;
  lossAux: Float64Array;
  hits: Uint32Array;
}

/** Evaluation of rows: z, clip [R, C]; factors, labels [R]. */
export function amuEvalRowsRef(
  z: ArrayLike<number>,
  clip: ArrayLike<number>,
  factors: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
  alpha: number,
): EvalRowsResult {
  const R = labels.length;
  const C = classes;
  const out: EvalRowsResult = {
    lossMerge: new Float64Array(R),
    lossAux: new Float64Array(R),
    hits: new Uint32Array(R),
  };
  for (let r = 0; r < R; r++) {
    const zr = Array.prototype.slice.call(z, r * C, (r + 1) * C) as number[];
    const lr = Array.prototype.slice.call(clip, r * C, (r + 1) * C) as number[];
    const y = labels[r];
    const fw = amuRowForwardRef(zr, lr, factors[r], y, alpha);
    out.lossMerge[r] = fw.lossMerge;
    out.lossAux[r] = fw.lossAux;
    out.hits[r] = (fw.argFused === y ? HIT_FUSED : 0) | (fw.argAux === y ? HIT_AUX : 0) |
      (argmaxRef(lr) === y ? HIT_CLIP : 0);
  }
  return out;
}
