/** Host references for the line kernels (shaders/scan.wgsl): CumSum and Hardmax along an axis. */
import { type CpuTensor, newCpuData, roundToF16, sizeOf } from "../util/tensor.ts";

/** Calls `line(base, n, inner)` for every line along `axis` of `shape` (viewed as
 * [outer, n, inner]). */
function forLines(
  shape: readonly number[],
  axis: number,
  line: (base: number, n: number, inner: number) => void,
): void {
  const n = shape[axis];
  const outer = sizeOf(shape.slice(0, axis));
  const inner = sizeOf(shape.slice(axis + 1));
  for (let o = 0; o < outer; o++) for (let j = 0; j < inner; j++) line(o * n * inner + j, n, inner);
}

/** Running sums along `axis` (non-negative). */
export function cumsumRef(
  x: CpuTensor,
  axis: number,
  exclusive: boolean,
  reverse: boolean,
): CpuTensor {
  const out = newCpuData(x.dtype, x.data.length);
  const round = x.dtype === "float16"
    ? (v: number) => roundToF16(Math.fround(v))
    : x.dtype === "float32"
    ? Math.fround
    : (v: number) => v | 0;
  forLines(x.shape, axis, (base, n, inner) => {
    let acc = 0;
    for (let m = 0; m < n; m++) {
      const at = base + (reverse ? n - 1 - m : m) * inner;
      const before = acc;
      // Accumulate in the storage precision, as the GPU does (float16: rounded every step).
      acc = round(acc + x.data[at]);
      out[at] = exclusive ? before : acc;
    }
  });
  return { dtype: x.dtype, shape: [...x.shape], data: out };
}

/** 1 at the first maximum of every line along `axis` (non-negative), 0 elsewhere. */
export function hardmaxRef(x: CpuTensor, axis: number): CpuTensor {
  const out = newCpuData(x.dtype, x.data.length);
  forLines(x.shape, axis, (base, n, inner) => {
    let best = 0;
    for (let m = 1; m < n; m++) {
      if (x.data[base + m * inner] > x.data[base + best * inner]) best = m;
    }
    if (n > 0) out[base + best * inner] = 1;
  });
  return { dtype: x.dtype, shape: [...x.shape], data: out };
}
