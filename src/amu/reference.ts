/** AMU-Tuning training on the CPU in float64, composed from the kernels' host references: the
 * oracle the GPU trainer is tested against at arbitrary sizes (and itself checked against the
 * float64 fixture traces). Slow by design (plain loops); for small problems only. */
import type { AmuFeatures } from "../models/features.ts";
import { l2NormalizeRowsRef } from "../kernels/amu_normalize_ref.ts";
import { amuLogitsRef } from "../kernels/amu_logits_ref.ts";
import { uncertaintyFactorRef } from "../kernels/amu_factor_ref.ts";
import { amuEvalRowsRef, amuTrainRowsRef } from "../kernels/amu_rows_ref.ts";
import { HIT_AUX, HIT_CLIP, HIT_FUSED } from "../kernels/amu_rows_shape.ts";
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
  const C = f.clipWeights.cols, D = f.trainAux.cols;
  const trainAux = l2NormalizeRowsRef(f.trainAux.data, N, D);
  const testAux = l2NormalizeRowsRef(f.testAux.data, T, D);
  const train = clipSide(config, f, f.trainClip.data, N);
  const test = clipSide(config, f, f.testClip.data, T);
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
  let t = 0;
  for (let e = 0; e < config.epochs; e++) {
    for (let it = 0; it < iters; it++, t++) {
      const rows = batchRows(order, e, it, N, config.batchSize);
      const lr = cosineLr(config.lr, t, total);
      const r = referenceStep(
        config,
        trainAux,
        D,
        C,
        rows,
        train,
        f.trainLabels,
        { w, m, v },
        lr,
        t,
      );
      out.loss.push(r.loss);
      out.lossMerge.push(r.lossMerge);
      out.lossAux.push(r.lossAux);
      out.correct.push(r.correct);
      out.lr.push(lr);
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

/** Training rows of iteration `it` of epoch `e` (the batch's slice of the epoch's order). */
function batchRows(
  order: ArrayLike<number>,
  e: number,
  it: number,
  rows: number,
  batchSize: number,
): number[] {
  const out: number[] = [];
  for (let i = it * batchSize; i < Math.min(rows, (it + 1) * batchSize); i++) {
    out.push(order[e * rows + i]);
  }
  return out;
}

/** CLIP logits [rows, C] and uncertainty factors of training rows, by row index. */
interface ClipSide {
  logits: Float64Array;
  factor: ArrayLike<number>;
}

/** The CLIP side of `rows` rows of CLIP features: L2-normalised, times the text weights and the
 * logit scale, and each row's uncertainty factor. */
function clipSide(config: AmuConfig, f: AmuFeatures, clip: Float32Array, rows: number): ClipSide {
  const C = f.clipWeights.cols, Dc = f.clipWeights.rows;
  const logits = amuLogitsRef(
    l2NormalizeRowsRef(clip, rows, Dc),
    Dc,
    range(rows),
    f.clipWeights.data,
    "depth-major",
    C,
    config.logitScale,
  );
  const factor = uncertaintyFactorRef(logits, rows, C, config.uncertainty, config.uncertaintyPower);
  return { logits, factor };
}

/** One training step in place on (w, m, v): fused and auxiliary cross-entropy of the batch,
 * the head's weight gradient and an AdamW update at learning rate `lr`, step `t` (0-based).
 * `clip` holds the rows' logits and factors at their row index (`rowIndex` maps a training row
 * to it; identity by default). */
function referenceStep(
  config: AmuConfig,
  trainAux: Float64Array,
  D: number,
  C: number,
  rows: readonly number[],
  clip: ClipSide,
  labels: ArrayLike<number>,
  state: { w: Float64Array; m: Float64Array; v: Float64Array },
  lr: number,
  t: number,
  rowIndex: (row: number) => number = (row) => row,
): { loss: number; lossMerge: number; lossAux: number; correct: number } {
  const B = rows.length;
  const z = amuLogitsRef(trainAux, D, rows, state.w, "classes-major", C);
  const clipRows = new Float64Array(B * C);
  rows.forEach((r, b) => {
    const i = rowIndex(r);
    clipRows.set(clip.logits.subarray(i * C, (i + 1) * C), b * C);
  });
  const res = amuTrainRowsRef(
    z,
    clipRows,
    rows.map((r) => clip.factor[rowIndex(r)]),
    rows.map((r) => labels[r]),
    C,
    config.alpha,
    config.lambdaMerge,
  );
  const [loss, lossMerge, lossAux, correct] = stepFinishRef(
    res.lossMerge,
    res.lossAux,
    res.correct,
    config.lambdaMerge,
  );
  const x = new Float64Array(B * D);
  rows.forEach((r, b) => x.set(trainAux.subarray(r * D, (r + 1) * D), b * D));
  const g = amuWeightGradRef(res.dz, x, B, C, D);
  adamwStepRef(state.w, state.m, state.v, g, lr, t + 1, {
    beta1: config.adamBeta1,
    beta2: config.adamBeta2,
    eps: config.adamEps,
    weightDecay: config.weightDecay,
  });
  return { loss, lossMerge, lossAux, correct };
}

/** The losses of the first `steps` iterations in float64, with CLIP logits computed only for
 * the rows those batches read: a check of the GPU trainer at sizes where a whole reference run
 * would take hours (the benchmark's full-size problem). */
export function referenceFirstSteps(
  config: AmuConfig,
  f: AmuFeatures,
  order: ArrayLike<number>,
  steps: number,
): number[] {
  const N = f.trainAux.rows;
  const C = f.clipWeights.cols, D = f.trainAux.cols, Dc = f.clipWeights.rows;
  const iters = itersPerEpoch(N, config.batchSize);
  const total = iters * config.epochs;
  const batches = Array.from(
    { length: steps },
    (_, t) => batchRows(order, Math.floor(t / iters), t % iters, N, config.batchSize),
  );
  // The rows read, each once, and their CLIP side.
  const used = [...new Set(batches.flat())];
  const index = new Map(used.map((r, i) => [r, i]));
  const clipData = new Float32Array(used.length * Dc);
  used.forEach((r, i) => clipData.set(f.trainClip.data.subarray(r * Dc, (r + 1) * Dc), i * Dc));
  const clip = clipSide(config, f, clipData, used.length);
  const trainAux = l2NormalizeRowsRef(f.trainAux.data, N, D);
  const state = {
    w: amuInitWeightsRef(trainAux, f.trainLabels, D, C),
    m: new Float64Array(C * D),
    v: new Float64Array(C * D),
  };
  return batches.map((rows, t) =>
    referenceStep(
      config,
      trainAux,
      D,
      C,
      rows,
      clip,
      f.trainLabels,
      state,
      cosineLr(config.lr, t, total),
      t,
      (r) => index.get(r)!,
    ).loss
  );
}
