/** CPU reference of the lpnorm kernel (float64). */
import { type CpuTensor, cpuTensor } from "../util/tensor.ts";
import { normAxis, rowView } from "./reduce_shape.ts";

/** LpNormalization (p = 1 or 2) along `axis`: x / ||x||_p (0 for an all-zero row). */
export function lpNormRef(x: CpuTensor, axis: number, p: 1 | 2): CpuTensor {
  const a = normAxis(x.shape, axis, "lpnorm");
  const { outer, n, inner } = rowView(x.shape, a);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let s = 0;
      for (let k = 0; k < n; k++) {
        const v = x.data[base + k * inner];
        s += p === 1 ? Math.abs(v) : v * v;
      }
      const norm = p === 1 ? s : Math.sqrt(s);
      for (let k = 0; k < n; k++) {
        out[base + k * inner] = norm === 0 ? 0 : x.data[base + k * inner] / norm;
      }
    }
  }
  return cpuTensor(x.dtype, x.shape, out);
}
