/** Host references for Pad and Tile, with the mode mappings written as the definitions read
 * (reflection folded step by step) rather than the kernel's closed forms. */
import { type CpuData, type CpuTensor, newCpuData, sizeOf } from "../util/tensor.ts";
import { gatherElements } from "./copy_ref.ts";
import { paddedShape, type PadMode } from "./pad_shape.ts";
import { contiguousStrides, unravel } from "./shape.ts";

/** Source coordinate of padded coordinate `s` on an axis of size `n`, or -1 for constant
 * padding. */
export function padSource(s: number, n: number, mode: PadMode): number {
  if (s >= 0 && s < n) return s;
  switch (mode) {
    case "constant":
      return -1;
    case "edge":
      return s < 0 ? 0 : n - 1;
    case "wrap":
      return ((s % n) + n) % n;
    case "reflect":
      if (n === 1) return 0;
      while (s < 0 || s >= n) s = s < 0 ? -s : 2 * (n - 1) - s;
      return s;
  }
}

/** x padded by `begin`/`end` elements on every axis (negative values crop). */
export function padRef(
  x: CpuTensor,
  begin: readonly number[],
  end: readonly number[],
  mode: PadMode,
  value = 0,
): CpuTensor {
  const shape = paddedShape(x.shape, begin, end);
  const strides = contiguousStrides(x.shape);
  const n = sizeOf(shape);
  const data: CpuData = newCpuData(x.dtype, n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    unravel(i, shape, idx);
    let j = 0;
    let inside = true;
    for (let d = 0; d < shape.length && inside; d++) {
      const s = padSource(idx[d] - begin[d], x.shape[d], mode);
      if (s < 0) inside = false;
      else j += s * strides[d];
    }
    data[i] = inside ? x.data[j] : value;
  }
  return { dtype: x.dtype, shape, data };
}

/** x repeated `repeats[d]` times along every axis. */
export function tileRef(x: CpuTensor, repeats: readonly number[]): CpuTensor {
  const strides = contiguousStrides(x.shape);
  const shape = x.shape.map((n, d) => n * repeats[d]);
  return gatherElements(x, shape, (idx) => {
    let j = 0;
    for (let d = 0; d < idx.length; d++) j += (idx[d] % x.shape[d]) * strides[d];
    return j;
  });
}
