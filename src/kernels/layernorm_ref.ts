/** CPU reference of the layernorm kernel (float64). */
import { type CpuTensor, cpuTensor } from "../util/tensor.ts";
import { normAxis, rowView } from "./reduce_shape.ts";

/** Scale/bias element for normalised element `k` of a row of `n`: the parameter covers the
 * trailing dims of the normalised shape (`k % count`). */
function broadcastParam(p: CpuTensor | undefined, k: number, fallback: number): number {
  if (!p) return fallback;
  return p.data[k % p.data.length];
}

export interface LayerNormRefResult {
  y: CpuTensor;
  /** Shape x.shape[:axis] + [1] * (rank - axis). */
  mean: CpuTensor;
  invStdDev: CpuTensor;
}

/** LayerNormalization over dims `axis..rank-1`: y = (x - mean) / sqrt(var + eps) * scale + bias;
 * scale and bias cover the normalised shape or a suffix of it. */
export function layerNormRef(
  x: CpuTensor,
  scale: CpuTensor,
  bias: CpuTensor | undefined,
  axis: number,
  epsilon: number,
): LayerNormRefResult {
  const a = normAxis(x.shape, axis, "layernorm");
  const { outer, n } = rowView(x.shape, a, true);
  const y = new Float64Array(x.data.length);
  const means = new Float64Array(outer);
  const invs = new Float64Array(outer);
  for (let r = 0; r < outer; r++) {
    const base = r * n;
    let s = 0;
    for (let k = 0; k < n; k++) s += x.data[base + k];
    const mean = s / n;
    let v = 0;
    for (let k = 0; k < n; k++) v += (x.data[base + k] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + epsilon);
    for (let k = 0; k < n; k++) {
      y[base + k] = (x.data[base + k] - mean) * inv * broadcastParam(scale, k, 1) +
        broadcastParam(bias, k, 0);
    }
    means[r] = mean;
    invs[r] = inv;
  }
  const statShape = x.shape.map((d, i) => (i < a ? d : 1));
  return {
    y: cpuTensor(x.dtype, x.shape, y),
    mean: cpuTensor("float32", statShape, means),
    invStdDev: cpuTensor("float32", statShape, invs),
  };
}
