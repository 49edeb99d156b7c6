/** CPU reference of the softmax kernel (float64). */
import { type CpuTensor, cpuTensor } from "../util/tensor.ts";
import { normAxis, rowView } from "./reduce_shape.ts";

export interface SoftmaxRefOptions {
  log?: boolean;
  coerce2d?: boolean;
}

/** Softmax (or LogSoftmax) of `x` along `axis`. */
export function softmaxRef(x: CpuTensor, axis: number, options: SoftmaxRefOptions = {}): CpuTensor {
  const a = normAxis(x.shape, axis, "softmax");
  const { outer, n, inner } = rowView(x.shape, a, options.coerce2d);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let m = -Infinity;
      for (let k = 0; k < n; k++) m = Math.max(m, x.data[base + k * inner]);
      let s = 0;
      for (let k = 0; k < n; k++) s += Math.exp(x.data[base + k * inner] - m);
      const logS = Math.log(s);
      for (let k = 0; k < n; k++) {
        const d = x.data[base + k * inner] - m;
        out[base + k * inner] = options.log ? d - logS : Math.exp(d) / s;
      }
    }
  }
  return cpuTensor(x.dtype, x.shape, out);
}
