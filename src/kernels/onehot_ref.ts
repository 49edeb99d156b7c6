/** Host reference for OneHot: indices' shape with a `depth` axis inserted at `axis`. */
import { type CpuTensor, newCpuData, sizeOf } from "../util/tensor.ts";
import { oneHotShape } from "./onehot_shape.ts";

/** out = values[1] where the index (truncated; negative counts from the end) equals the position
 * along the new axis (non-negative, in [0, rank]), values[0] elsewhere; indices outside
 * [-depth, depth) give all values[0] (ONNX). */
export function oneHotRef(
  indices: CpuTensor,
  depth: number,
  values: CpuTensor,
  axis: number,
): CpuTensor {
  const shape = oneHotShape(indices.shape, depth, axis);
  const outer = sizeOf(indices.shape.slice(0, axis));
  const inner = sizeOf(indices.shape.slice(axis));
  const [off, on] = [values.data[0], values.data[1]];
  const out = newCpuData(values.dtype, sizeOf(shape)).fill(off);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let i = Math.trunc(indices.data[o * inner + j]);
      if (i < 0) i += depth;
      if (i >= 0 && i < depth) out[(o * depth + i) * inner + j] = on;
    }
  }
  return { dtype: values.dtype, shape, data: out };
}
