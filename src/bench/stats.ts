/** Statistics of repeated timings (pure). */
import type { Stats } from "./types.ts";

/** Median, range and relative half-range of per-invocation times. Throws on no samples. */
export function summarize(samples: readonly number[]): Stats {
  if (samples.length === 0) throw new Error("summarize: no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const min = sorted[0], max = sorted[sorted.length - 1];
  const spread = median > 0 ? (max - min) / 2 / median : 0;
  return { median, min, max, spread, samples: [...samples] };
}

/** Invocations per timed run so that one run lasts about `targetMs` (short kernels are
 * repeated so that fence and submit overheads do not dominate), within [1, maxReps]. */
export function chooseReps(singleMs: number, targetMs: number, maxReps: number): number {
  if (!(singleMs > 0)) return maxReps;
  return Math.max(1, Math.min(maxReps, Math.ceil(targetMs / singleMs)));
}

/** Timed runs that fit `budgetMs` (runs of `runMs` each), between `minRuns` and `runs`. */
export function chooseRuns(runMs: number, runs: number, minRuns: number, budgetMs: number): number {
  if (!(runMs > 0)) return runs;
  return Math.max(Math.min(minRuns, runs), Math.min(runs, Math.floor(budgetMs / runMs)));
}

/** `a / b` as the table prints it, or undefined when either side is missing. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !(b > 0) || !Number.isFinite(a)) return undefined;
  return a / b;
}

/** GFLOP/s for `flops` per invocation at `ms` per invocation. */
export function gflops(flops: number | undefined, ms: number | undefined): number | undefined {
  if (flops === undefined || ms === undefined || !(ms > 0)) return undefined;
  return flops / (ms * 1e6);
}

/** GB/s for `bytes` per invocation at `ms` per invocation. */
export function gbps(bytes: number | undefined, ms: number | undefined): number | undefined {
  if (bytes === undefined || ms === undefined || !(ms > 0)) return undefined;
  return bytes / (ms * 1e6);
}
