/** CPU reference for group normalization (InstanceNormalization is the case of one channel per
 * group); the layout, shared with the GPU binding, is in groupnorm_shape.ts. Pure TS. */
import type { GroupNormLayout } from "./groupnorm_shape.ts";

/** y = (x - mean) / sqrt(var + epsilon) * scale[p] + bias[p] per row (N, group), mean and
 * (biased) variance over the row's values, p the channel or the group; float64, returned as
 * float32. */
export function groupNormRef(
  x: ArrayLike<number>,
  layout: GroupNormLayout,
  scale: ArrayLike<number>,
  bias: ArrayLike<number>,
  epsilon: number,
): Float32Array {
  const { batch, channels, groups, plane, perChannel } = layout;
  const cpg = channels / groups;
  const rowLen = cpg * plane;
  const y = new Float32Array(batch * channels * plane);
  for (let row = 0; row < batch * groups; row++) {
    const base = row * rowLen;
    let s = 0;
    for (let k = 0; k < rowLen; k++) s += x[base + k];
    const mean = s / rowLen;
    let v = 0;
    for (let k = 0; k < rowLen; k++) v += (x[base + k] - mean) ** 2;
    const invStd = 1 / Math.sqrt(v / rowLen + epsilon);
    const g = row % groups;
    for (let ci = 0; ci < cpg; ci++) {
      const p = perChannel ? g * cpg + ci : g;
      for (let k = ci * plane; k < (ci + 1) * plane; k++) {
        y[base + k] = (x[base + k] - mean) * invStd * scale[p] + bias[p];
      }
    }
  }
  return y;
}
