/** AMU-Tuning training on the CPU in float64, composed from the kernels' host references: the
 * oracle the GPU trainer is tested against at arbitrary sizes (and itself checked against the
 * float64 fixture traces). Slow by design (plain loops); for small problems only. */
import type { AmuFeatures } from "../data/feature_cache.ts";
import { l2NormalizeRowsRef } from "../kernels/amu_normalize_ref.ts";
import { amuLogitsRef } from "../kernels/amu_logits_ref.ts";
import { uncertaintyFactorRef } from "../kernels/amu_factor_ref.ts";
import {
  amuEvalRowsRef,
  amuTrainRowsRef,
  HIT_AUX,
  HIT_CLIP,
  HIT_FUSED,
} from "../kernels/amu_rows_ref.ts";
import { adamwStepRef, amuWeightGradRef } from "../kernels/amu_update_ref.ts";
import { amuInitWeightsRef } from "../kernels/amu_init_ref.ts";
import { stepFinishRef } from "../kernels/amu_step_ref.ts";
import { type AmuConfig, itersPerEpoch } from "./config.ts";
import { cosineLr } from "./schedule.ts";

export interface ReferenceRun {
  initWeight: Float64Array;
  /** Per iteration over all epochs. */
  loss: number[];
  lossMerge: number[];
  lossAux: number[];
  correct: number[];
  lr: number[];
  epochWeights: Float64Array[];
  epochTestAcc: number[];
  epochAuxAcc: number[];
  epochTestLoss: number[];
  zeroShotAcc: number;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

export function trainAmuReference(
  config: AmuConfig,
  f: AmuFeatures,
  order: ArrayLike<number>,
): ReferenceRun {
  const N = f.trainAux.rows, T = f.testAux.rows;
  const C = f.clipWeights.cols, D = f.trainAux.cols, Dc = f.clipWeights.rows;
  const trainAux = l2NormalizeRowsRef(f.trainAux.data, N, D);
  const testAux = l2NormalizeRowsRef(f.testAux.data, T, D);
  const clipSide = (clip: Float32Array, rows: number) => {
    const logits = amuLogitsRef(
      l2NormalizeRowsRef(clip, rows, Dc),
      Dc,
      range(rows),
      f.clipWeights.data,
      "depth-major",
      C,
      config.logitScale,
    );
    const factor = uncertaintyFactorRef(
      logits,
      rows,
      C,
      config.uncertainty,
      config.uncertaintyPower,
    );
    return { logits, factor };
  };
  const train = clipSide(f.trainClip.data, N);
  const test = clipSide(f.testClip.data, T);
  const w = amuInitWeightsRef(trainAux, f.trainLabels, D, C);
  const m = new Float64Array(C * D);
  const v = new Float64Array(C * D);
  const iters = itersPerEpoch(N, config.batchSize);
  const total = iters * config.epochs;
  const out: ReferenceRun = {
    initWeight: w.slice(),
    loss: [],
    lossMerge: [],
    lossAux: [],
    correct: [],
    lr: [],
    epochWeights: [],
    epochTestAcc: [],
    epochAuxAcc: [],
    epochTestLoss: [],
    zeroShotAcc: 0,
  };
  const hyper = {
    beta1: config.adamBeta1,
    beta2: config.adamBeta2,
    eps: config.adamEps,
    weightDecay: config.weightDecay,
  };
  let t = 0;
  for (let e = 0; e < config.epochs; e++) {
    for (let it = 0; it < iters; it++, t++) {
      const rows: number[] = [];
      for (let i = it * config.batchSize; i < Math.min(N, (it + 1) * config.batchSize); i++) {
        rows.push(order[e * N + i]);
      }
      const B = rows.length;
      const z = amuLogitsRef(trainAux, D, rows, w, "classes-major", C);
      const clip = new Float64Array(B * C);
      rows.forEach((r, b) => clip.set(train.logits.subarray(r * C, (r + 1) * C), b * C));
      const res = amuTrainRowsRef(
        z,
        clip,
        rows.map((r) => train.factor[r]),
        rows.map((r) => f.trainLabels[r]),
        C,
        config.alpha,
        config.lambdaMerge,
      );
      const [loss, merge, aux, hits] = stepFinishRef(
        res.lossMerge,
        res.lossAux,
        res.correct,
        config.lambdaMerge,
      );
      out.loss.push(loss);
      out.lossMerge.push(merge);
      out.lossAux.push(aux);
      out.correct.push(hits);
      const x = new Float64Array(B * D);
      rows.forEach((r, b) => x.set(trainAux.subarray(r * D, (r + 1) * D), b * D));
      const g = amuWeightGradRef(res.dz, x, B, C, D);
      const lr = cosineLr(config.lr, t, total);
      out.lr.push(lr);
      adamwStepRef(w, m, v, g, lr, t + 1, hyper);
    }
    out.epochWeights.push(w.slice());
    const z = amuLogitsRef(testAux, D, range(T), w, "classes-major", C);
    const ev = amuEvalRowsRef(z, test.logits, test.factor, f.testLabels, C, config.alpha);
    let fused = 0, auxHits = 0, lm = 0, la = 0, clipHits = 0;
    for (let r = 0; r < T; r++) {
      if (ev.hits[r] & HIT_FUSED) fused++;
      if (ev.hits[r] & HIT_AUX) auxHits++;
      if (ev.hits[r] & HIT_CLIP) clipHits++;
      lm += ev.lossMerge[r];
      la += ev.lossAux[r];
    }
    out.epochTestAcc.push(100 * fused / T);
    out.epochAuxAcc.push(100 * auxHits / T);
    out.epochTestLoss.push(config.lambdaMerge * lm / T + (1 - config.lambdaMerge) * la / T);
    out.zeroShotAcc = 100 * clipHits / T;
  }
  return out;
}
