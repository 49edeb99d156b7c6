/** How group normalization (and InstanceNormalization, one channel per group) views its input,
 * shared by the GPU binding (groupnorm.ts), its CPU reference and the ONNX ops. Pure TS. */

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
