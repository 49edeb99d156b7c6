/** Reference checks (pure): a float64 CPU reference at some output positions, compared with any
 * runner's output before its time counts. Large outputs are checked at sampled positions (a
 * full float64 reference of a 2048^3 matmul would take longer than the benchmark). */
import { erf } from "../util/math.ts";
import { seededRandom } from "../util/random.ts";
import type { CheckResult } from "./types.ts";

/** Expected values at flat output positions. */
export interface Reference {
  /** Flat element count of the whole output. */
  readonly length: number;
  readonly indices: readonly number[];
  readonly values: Float64Array;
  readonly tolerance: number;
  /** "mixed" (default): per-value error absolute below magnitude 1, relative above.
   * "absolute": |got - expected| against `tolerance` (a bound already scaled to the output, as
   * the model tests' `1e-4 * max|ref| + 1e-5`). */
  readonly metric?: "mixed" | "absolute";
}

/** Default tolerance for float32 results against float64 (mixed error, see CheckResult). Loose
 * enough for reordered float32 sums over K = 3072, tight enough to catch any indexing bug. */
export const F32_TOLERANCE = 1e-3;

/** Builds a reference by evaluating `expected(index)` at each position. */
export function referenceAt(
  length: number,
  indices: readonly number[],
  expected: (index: number) => number,
  tolerance = F32_TOLERANCE,
): Reference {
  const values = new Float64Array(indices.length);
  indices.forEach((flat, i) => values[i] = expected(flat));
  return { length, indices, values, tolerance };
}

/** Mixed error of one value: absolute below magnitude 1, relative above. */
export function mixedError(got: number, expected: number): number {
  return Math.abs(got - expected) / Math.max(1, Math.abs(expected));
}

export function checkOutput(ref: Reference, output: ArrayLike<number>): CheckResult {
  if (output.length < ref.length) {
    return {
      maxError: Infinity,
      tolerance: ref.tolerance,
      ok: false,
      note: `output has ${output.length} values, expected ${ref.length}`,
    };
  }
  let maxError = 0;
  const absolute = ref.metric === "absolute";
  for (let i = 0; i < ref.indices.length; i++) {
    const got = output[ref.indices[i]], expected = ref.values[i];
    const e = absolute ? Math.abs(got - expected) : mixedError(got, expected);
    if (!(e <= maxError)) maxError = e; // NaN sticks
    if (Number.isNaN(e)) break;
  }
  const ok = maxError <= ref.tolerance;
  return {
    maxError,
    tolerance: ref.tolerance,
    ok,
    note: ok ? undefined : `max error ${maxError.toExponential(2)} > ${ref.tolerance}`,
  };
}

/** `count` distinct-ish positions in [0, total), seeded; always includes the first and last. */
export function sampleIndices(total: number, count: number, seed: number): number[] {
  if (total <= count) return Array.from({ length: total }, (_, i) => i);
  const r = seededRandom(seed);
  const out = [0, total - 1];
  while (out.length < count) out.push(Math.floor(r() * total));
  return out;
}

/** Every position of the given rows of a [rows, rowLength] view. */
export function rowIndices(rows: readonly number[], rowLength: number): number[] {
  const out: number[] = [];
  for (const row of rows) for (let j = 0; j < rowLength; j++) out.push(row * rowLength + j);
  return out;
}

/** `n` uniform values in [lo, hi), seeded. */
export function randomData(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** GELU with the exact erf form. */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}
