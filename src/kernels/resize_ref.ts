/** Host reference of Resize: the per-axis sampling tables of resize_shape.ts applied one axis at
 * a time in float64, rounded once to the output dtype. */
import { type CpuTensor, cpuTensor, sizeOf } from "../util/tensor.ts";
import {
  axisSpecs,
  type AxisTable,
  axisTable,
  checkResizeDtype,
  isIdentityTable,
  type ResizeOptions,
} from "./resize_shape.ts";

/** Applies one axis table to row-major `src` of `shape` along `axis` (float64 arithmetic). */
export function applyAxisTable(
  src: Float64Array,
  shape: readonly number[],
  axis: number,
  t: AxisTable,
  extrapolationValue: number,
): Float64Array {
  let outer = 1;
  for (let d = 0; d < axis; d++) outer *= shape[d];
  let inner = 1;
  for (let d = axis + 1; d < shape.length; d++) inner *= shape[d];
  const dst = new Float64Array(outer * t.outLen * inner);
  for (let b = 0; b < outer; b++) {
    const srcRow = b * t.inLen * inner;
    for (let o = 0; o < t.outLen; o++) {
      const dstRow = (b * t.outLen + o) * inner;
      if (t.fill[o]) {
        dst.fill(extrapolationValue, dstRow, dstRow + inner);
        continue;
      }
      for (let k = 0; k < t.count[o]; k++) {
        const w = t.weight[o * t.taps + k];
        const from = srcRow + t.index[o * t.taps + k] * inner;
        for (let i = 0; i < inner; i++) dst[dstRow + i] += w * src[from + i];
      }
    }
  }
  return dst;
}

/** Host reference of a resize of `x` to `outShape` (float64 accumulation, one rounding to the
 * output dtype at the end; integer outputs truncate toward zero like numpy's astype). */
export function resizeRef(
  x: CpuTensor,
  outShape: readonly number[],
  opts: ResizeOptions,
): CpuTensor {
  checkResizeDtype(x.dtype);
  const specs = axisSpecs(x.shape, outShape, opts);
  let data: Float64Array = Float64Array.from(x.data as ArrayLike<number>);
  const shape = [...x.shape];
  if (sizeOf(outShape) > 0) {
    for (let d = 0; d < specs.length; d++) {
      const table = axisTable(specs[d], opts);
      if (isIdentityTable(table)) continue;
      data = applyAxisTable(data, shape, d, table, opts.extrapolationValue ?? 0);
      shape[d] = specs[d].outLen;
    }
  } else data = new Float64Array(0);
  if (x.dtype === "int32" || x.dtype === "int64") {
    for (let i = 0; i < data.length; i++) data[i] = Math.trunc(data[i]);
  }
  return cpuTensor(x.dtype, outShape, data);
}
