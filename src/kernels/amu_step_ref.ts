/** Host reference of `shaders/amu_step.wgsl`: the step state of global step t, and the reduction
 * of a batch's row losses into one iteration's record. */
import type { StepState } from "./amu_step_shape.ts";

/** Step state of global step t; `schedule` is the [steps, 4] table the GPU copies from. */
export function stepStateRef(
  t: number,
  rowsPerEpoch: number,
  batchSize: number,
  itersPerEpoch: number,
  schedule: Float32Array,
): StepState {
  const epoch = Math.floor(t / itersPerEpoch);
  const iter = t % itersPerEpoch;
  const first = iter * batchSize;
  return {
    step: t,
    iter,
    rowStart: epoch * rowsPerEpoch + first,
    rowCount: Math.min(batchSize, rowsPerEpoch - first),
    lr: schedule[t * 4],
    decay: schedule[t * 4 + 1],
    stepSize: schedule[t * 4 + 2],
    bc2Sqrt: schedule[t * 4 + 3],
  };
}

/** (loss, loss_merge, loss_aux, correct) of a batch from per-row merge/aux losses and hits. */
export function stepFinishRef(
  lossMerge: ArrayLike<number>,
  lossAux: ArrayLike<number>,
  correct: ArrayLike<number>,
  lambda: number,
): [number, number, number, number] {
  const n = lossMerge.length;
  let merge = 0, aux = 0, hits = 0;
  for (let b = 0; b < n; b++) {
    merge += lossMerge[b];
    aux += lossAux[b];
    hits += correct[b];
  }
  merge /= n;
  aux /= n;
  return [lambda * merge + (1 - lambda) * aux, merge, aux, hits];
}
