/** Host reference for TopK: the k largest (or smallest) elements along an axis, sorted, ties
 * broken by the lower index (ONNX). Floats order totally as the GPU kernel orders them: NaN above
 * +inf, -0 equal to +0. */
import { type CpuTensor, newCpuData, sizeOf } from "../util/tensor.ts";
import { topKShape } from "./topk_shape.ts";

/** Sort key of a value: NaN above everything, numbers as themselves (so -0 equals +0). */
function sortKey(v: number): number {
  return Number.isNaN(v) ? Infinity : v;
}

/** [values, int64 indices] of the top k along `axis` (non-negative, 0 <= k <= shape[axis]). */
export function topKRef(
  x: CpuTensor,
  axis: number,
  k: number,
  largest: boolean,
): [CpuTensor, CpuTensor] {
  const n = x.shape[axis];
  if (k < 0 || k > n) throw new RangeError(`topK: k ${k} outside [0, ${n}]`);
  const outer = sizeOf(x.shape.slice(0, axis));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const shape = topKShape(x.shape, axis, k);
  const values = newCpuData(x.dtype, sizeOf(shape));
  const indices = new Float64Array(sizeOf(shape));
  const order = new Array<number>(n);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const at = (i: number) => x.data[(o * n + i) * inner + j];
      for (let i = 0; i < n; i++) order[i] = i;
      order.sort((a, b) => {
        const ka = sortKey(at(a)), kb = sortKey(at(b));
        // Infinity vs a NaN key: NaN's key is +Infinity, so a real +inf ties with NaN; rank NaN
        // above it as the GPU does.
        const na = Number.isNaN(at(a)) ? 1 : 0, nb = Number.isNaN(at(b)) ? 1 : 0;
        const diff = ka === kb ? na - nb : ka < kb ? -1 : 1;
        if (diff !== 0) return largest ? -diff : diff;
        return a - b;
      });
      for (let r = 0; r < k; r++) {
        const dst = (o * k + r) * inner + j;
        values[dst] = at(order[r]);
        indices[dst] = order[r];
      }
    }
  }
  return [
    { dtype: x.dtype, shape, data: values },
    { dtype: "int64", shape: [...shape], data: indices },
  ];
}
