/** Host references for Trilu and EyeLike: masks over the last two axes, element (r, c) lying on
 * diagonal c - r. */
import { type CpuTensor, type DType, newCpuData } from "../util/tensor.ts";

/** x with elements off the kept band zeroed: diagonals >= k (upper) or <= k (lower). */
export function triluRef(x: CpuTensor, k: number, upper: boolean): CpuTensor {
  const rank = x.shape.length;
  if (rank < 2) throw new RangeError("trilu: input needs rank >= 2");
  const rows = x.shape[rank - 2], cols = x.shape[rank - 1];
  const out = newCpuData(x.dtype, x.data.length);
  for (let t = 0; t < out.length; t++) {
    const d = (t % cols) - (Math.floor(t / cols) % rows);
    if (upper ? d >= k : d <= k) out[t] = x.data[t];
  }
  return { dtype: x.dtype, shape: [...x.shape], data: out };
}

/** A [rows, cols] matrix of `dtype` with ones on diagonal k. */
export function eyeRef(dtype: DType, rows: number, cols: number, k: number): CpuTensor {
  const out = newCpuData(dtype, rows * cols);
  for (let r = 0; r < rows; r++) {
    const c = r + k;
    if (c >= 0 && c < cols) out[r * cols + c] = 1;
  }
  return { dtype, shape: [rows, cols], data: out };
}
