/** The two records `shaders/amu_step.wgsl` shares with the host (pure TS, no GPU): the step state
 * every AMU training kernel reads, and the per-iteration record `finish` writes. */

/** Words in the GPU step state struct. */
export const STEP_STATE_WORDS = 8;

/** Bytes of the step state struct. */
export const STEP_STATE_BYTES = STEP_STATE_WORDS * 4;

/** What every AMU training kernel reads about the current step. */
export interface StepState {
  /** Global step (0-based, over all epochs). */
  step: number;
  /** Iteration within the epoch. */
  iter: number;
  /** Index into the order buffer [epochs, N] where the batch starts. */
  rowStart: number;
  /** Rows in the batch (the last batch of an epoch may be partial). */
  rowCount: number;
  lr: number;
  /** 1 - lr * weight_decay. */
  decay: number;
  /** lr / (1 - beta1^(step + 1)). */
  stepSize: number;
  /** sqrt(1 - beta2^(step + 1)). */
  bc2Sqrt: number;
}

/** Packs a step state as the WGSL struct lays it out. */
export function packStepState(s: StepState): ArrayBuffer {
  const buf = new ArrayBuffer(STEP_STATE_BYTES);
  const dv = new DataView(buf);
  dv.setUint32(0, s.step, true);
  dv.setUint32(4, s.iter, true);
  dv.setUint32(8, s.rowStart, true);
  dv.setUint32(12, s.rowCount, true);
  dv.setFloat32(16, s.lr, true);
  dv.setFloat32(20, s.decay, true);
  dv.setFloat32(24, s.stepSize, true);
  dv.setFloat32(28, s.bc2Sqrt, true);
  return buf;
}

export function unpackStepState(buf: ArrayBuffer): StepState {
  const dv = new DataView(buf);
  return {
    step: dv.getUint32(0, true),
    iter: dv.getUint32(4, true),
    rowStart: dv.getUint32(8, true),
    rowCount: dv.getUint32(12, true),
    lr: dv.getFloat32(16, true),
    decay: dv.getFloat32(20, true),
    stepSize: dv.getFloat32(24, true),
    bc2Sqrt: dv.getFloat32(28, true),
  };
}

/** Floats per iteration record: `finish` writes iterStats[iter] = vec4(loss, loss_merge,
 * loss_aux, correct). */
export const ITER_RECORD_WORDS = 4;

/** Iteration records of an epoch, one entry per iteration. */
export interface IterationRecords {
  /** lambda * loss_merge + (1 - lambda) * loss_aux (batch means). */
  loss: Float32Array;
  lossMerge: Float32Array;
  lossAux: Float32Array;
  /** Rows of the batch whose prediction hit the label (a count). */
  correct: Float32Array;
}

/** The first `count` records of `words` (an iteration-record buffer read back from its start). */
export function unpackIterationRecords(words: Float32Array, count: number): IterationRecords {
  if (words.length < count * ITER_RECORD_WORDS) {
    throw new RangeError(
      `${count} iteration records need ${count * ITER_RECORD_WORDS} floats, got ${words.length}`,
    );
  }
  const records: IterationRecords = {
    loss: new Float32Array(count),
    lossMerge: new Float32Array(count),
    lossAux: new Float32Array(count),
    correct: new Float32Array(count),
  };
  for (let i = 0; i < count; i++) {
    const at = i * ITER_RECORD_WORDS;
    records.loss[i] = words[at];
    records.lossMerge[i] = words[at + 1];
    records.lossAux[i] = words[at + 2];
    records.correct[i] = words[at + 3];
  }
  return records;
}
