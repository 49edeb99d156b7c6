/** Batch orders: one permutation of the training rows per epoch, [epochs, N]. Generated from
 * `rand_seed` with xoshiro128** (seeded through splitmix32) and Fisher-Yates with unbiased
 * bounded draws. This does not reproduce PyTorch's RandomSampler stream; instead every run saves
 * the order it used (order.npy, int64 [epochs, N]) so it can be replayed here or elsewhere. */
import { EngineError } from "../util/errors.ts";
import { int64ToNumbers, type NpyArray, npyArray } from "../util/npy.ts";

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** xoshiro128**: uniform 32-bit words. */
export function xoshiro128(seed: number): () => number {
  const init = splitmix32(seed);
  let a = init(), b = init(), c = init(), d = init();
  if ((a | b | c | d) === 0) a = 1;
  return () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Uniform integer in [0, n) without modulo bias (rejection on the top of the range). */
function below(next: () => number, n: number): number {
  const limit = 0x100000000 - (0x100000000 % n);
  let x: number;
  do x = next(); while (x >= limit);
  return x % n;
}

/** `epochs` independent shuffles of 0..n-1, flattened [epochs * n]. */
export function makeOrder(seed: number, epochs: number, n: number): Int32Array {
  const next = xoshiro128(seed);
  const out = new Int32Array(epochs * n);
  for (let e = 0; e < epochs; e++) {
    const row = out.subarray(e * n, (e + 1) * n);
    for (let i = 0; i < n; i++) row[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = below(next, i + 1);
      const t = row[i];
      row[i] = row[j];
      row[j] = t;
    }
  }
  return out;
}

/** Checks an order's shape and range; rows need not be permutations (replaying a sampler with
 * replacement is allowed). */
export function validateOrder(order: Int32Array, epochs: number, n: number, label: string): void {
  if (order.length !== epochs * n) {
    throw new EngineError(
      `${label}: order has ${order.length} entries, expected epochs x N = ${epochs} x ${n}`,
    );
  }
  for (let i = 0; i < order.length; i++) {
    if (order[i] < 0 || order[i] >= n) {
      throw new EngineError(
        `${label}: order[${Math.floor(i / n)}][${i % n}] = ${order[i]} is not a row of the ` +
          `${n} training rows`,
      );
    }
  }
}

export function orderToNpy(order: Int32Array, epochs: number, n: number): NpyArray {
  return npyArray("int64", [epochs, n], order);
}

/** An order from an .npy array: int64 or int32, shape [epochs, N] (or [N] for one epoch). */
export function orderFromNpy(a: NpyArray, label: string): { order: Int32Array; epochs: number } {
  if (a.dtype !== "int64" && a.dtype !== "int32") {
    throw new EngineError(`${label}: order must be int64 or int32, is ${a.dtype}`);
  }
  if (a.shape.length !== 2 && a.shape.length !== 1) {
    throw new EngineError(`${label}: order must be [epochs, N], has shape [${a.shape}]`);
  }
  const values = a.dtype === "int64" ? int64ToNumbers(a, label) : a.data as Int32Array;
  for (let i = 0; i < values.length; i++) {
    if (values[i] < 0 || values[i] > 0x7fffffff) {
      throw new EngineError(`${label}: order value ${values[i]} at index ${i} is not a row index`);
    }
  }
  return { order: Int32Array.from(values), epochs: a.shape.length === 2 ? a.shape[0] : 1 };
}
