/** The AMU session's epoch statistics buffer, read back once per epoch: the epoch's iteration
 * records (amu_step's `finish` writes record `iter` from the buffer's start) followed by the test
 * evaluation's totals (amu_rows' `totals_main` writes them from its `outOffset`, which is this
 * layout's `totalsOffset`). Every writer and reader takes the positions from here. */
import { EVAL_TOTALS_WORDS, type EvalTotals, unpackEvalTotals } from "../kernels/amu_rows.ts";
import {
  ITER_RECORD_WORDS,
  type IterationRecords,
  unpackIterationRecords,
} from "../kernels/amu_step.ts";

/** The totals' slot, rounded up to whole vec4s so every part of the buffer is 16-byte aligned. */
const TOTALS_SLOT_WORDS = Math.ceil(EVAL_TOTALS_WORDS / 4) * 4;

export interface EpochStatsLayout {
  /** Iteration records held (the iterations of one epoch). */
  readonly iters: number;
  /** Float index where the totals start: the totals kernel's `outOffset`. */
  readonly totalsOffset: number;
  /** Bytes of the totals' slot, from byte `totalsOffset * 4` (to read the totals alone). */
  readonly totalsBytes: number;
  /** Bytes of the whole buffer. */
  readonly bytes: number;
}

export function epochStatsLayout(iters: number): EpochStatsLayout {
  const totalsOffset = iters * ITER_RECORD_WORDS;
  return {
    iters,
    totalsOffset,
    totalsBytes: TOTALS_SLOT_WORDS * 4,
    bytes: (totalsOffset + TOTALS_SLOT_WORDS) * 4,
  };
}

export interface EpochStats {
  records: IterationRecords;
  totals: EvalTotals;
}

/** The first `iterEnd` iteration records and the totals, from a read-back of the whole buffer. */
export function unpackEpochStats(
  layout: EpochStatsLayout,
  bytes: ArrayBuffer,
  iterEnd: number,
): EpochStats {
  if (bytes.byteLength < layout.bytes) {
    throw new RangeError(
      `epoch stats: ${bytes.byteLength} bytes read, the layout has ${layout.bytes}`,
    );
  }
  if (!(Number.isInteger(iterEnd) && iterEnd >= 0 && iterEnd <= layout.iters)) {
    throw new RangeError(`epoch stats: iteration ${iterEnd} outside 0..${layout.iters}`);
  }
  const words = new Float32Array(bytes);
  return {
    records: unpackIterationRecords(words, iterEnd),
    totals: unpackEvalTotals(words.subarray(layout.totalsOffset)),
  };
}

/** The totals, from a read-back of the totals' slot alone. */
export function unpackTotalsSlot(bytes: ArrayBuffer): EvalTotals {
  return unpackEvalTotals(new Float32Array(bytes));
}
