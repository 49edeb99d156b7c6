/** CPU reference of the argmax kernel. */
import { type CpuTensor, cpuTensor } from "../util/tensor.ts";
import { normAxis, reduceShape, rowView } from "./reduce_shape.ts";

export interface ArgRefOptions {
  /** ArgMin instead of ArgMax. */
  min?: boolean;
  keepdims?: boolean;
  /** On ties, the last index instead of the first. */
  selectLastIndex?: boolean;
}

/** ArgMax/ArgMin along `axis`, as an int64 tensor. */
export function argRef(x: CpuTensor, axis: number, options: ArgRefOptions = {}): CpuTensor {
  const a = normAxis(x.shape, axis, options.min ? "argmin" : "argmax");
  const { outer, n, inner } = rowView(x.shape, a);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let best = 0;
      let bestV = x.data[base];
      for (let k = 1; k < n; k++) {
        const v = x.data[base + k * inner];
        // A NaN beats every number and ties with NaN (numpy's argmax/argmin).
        const nan = Number.isNaN(v), bestNan = Number.isNaN(bestV);
        const better = nan || bestNan ? nan && !bestNan : options.min ? v < bestV : v > bestV;
        const tie = nan && bestNan || v === bestV;
        if (better || (options.selectLastIndex && tie)) {
          best = k;
          bestV = v;
        }
      }
      out[o * inner + i] = best;
    }
  }
  return cpuTensor("int64", reduceShape(x.shape, [a], options.keepdims ?? true), out);
}
