/** CPU reference for group normalization (InstanceNormalization is the case of one channel per
 * group), and the layout the GPU binding shares with it. Pure TS. */

/** How X [N, C, ...spatial] splits into normalised rows and where the parameters apply. */
export interface GroupNormLayout {
  /** N. */
  readonly batch: number;
  /** C. */
  readonly channels: number;
  /** G: C is split into G groups of adjacent channels, each normalised as one row. */
  readonly groups: number;
  /** Values per channel (the product of the spatial axes; 1 without any). */
  readonly plane: number;
  /** Scale and bias hold one value per channel (true) or per group (false). */
  readonly perChannel: boolean;
}

/** The layout of X's shape with `groups` groups; throws a plain Error when it does not fit
 * (callers add the node name). */
export function groupNormLayout(
  shape: readonly number[],
  groups: number,
  perChannel: boolean,
): GroupNormLayout {
  if (shape.length < 2) throw new Error(`input rank ${shape.length}: needs N, C, ...`);
  const [batch, channels] = shape;
  if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
    throw new Error(`${groups} groups must divide the ${channels} channels`);
  }
  let plane = 1;
  for (const d of shape.slice(2)) plane *= d;
  return { batch, channels, groups, plane, perChannel };
}

/** Values scale and bias must hold for `layout`. */
export function groupNormParamCount(layout: GroupNormLayout): number {
  return layout.perChannel ? layout.channels : layout.groups;
}

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
