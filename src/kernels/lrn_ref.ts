/** Host reference for LRN (local response normalisation across channels), as
 * onnx/reference/ops/op_lrn.py: y = x / (bias + alpha / size * sum of x^2 over the channels
 * [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)]) ^ beta. */
import { type CpuTensor, newCpuData, roundToF16, sizeOf } from "../util/tensor.ts";
import { checkLrnShape, type LrnOptions } from "./lrn_shape.ts";

export function lrnRef(x: CpuTensor, o: LrnOptions): CpuTensor {
  checkLrnShape(x.shape);
  const [n, c] = x.shape;
  const inner = sizeOf(x.shape.slice(2));
  const before = Math.floor((o.size - 1) / 2);
  const after = Math.ceil((o.size - 1) / 2);
  const data = newCpuData(x.dtype, sizeOf(x.shape));
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < inner; i++) {
        let sum = 0;
        for (let k = Math.max(0, ch - before); k <= Math.min(c - 1, ch + after); k++) {
          const v = Number(x.data[(b * c + k) * inner + i]);
          sum += v * v;
        }
        const at = (b * c + ch) * inner + i;
        const y = Number(x.data[at]) / Math.pow(o.bias + (o.alpha / o.size) * sum, o.beta);
        data[at] = x.dtype === "float16" ? roundToF16(y) : y;
      }
    }
  }
  return { dtype: x.dtype, shape: [...x.shape], data };
}
