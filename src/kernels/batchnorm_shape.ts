/** How batch normalization's parameters map onto its input, shared by the GPU binding
 * (batchnorm.ts), its CPU reference and the ONNX ops. Pure TS. */

/** How parameters map onto X [N, C, ...spatial]: element i uses parameter
 * `floor(i / inner) % params`. Per channel: inner = spatial size, params = C. */
export interface BatchNormLayout {
  readonly inner: number;
  readonly params: number;
}

/** Layout for X's shape: per channel, or per (channel, position) when `perPosition`. */
export function batchNormLayout(xShape: readonly number[], perPosition = false): BatchNormLayout {
  const c = xShape.length > 1 ? xShape[1] : 1;
  let spatial = 1;
  for (let a = 2; a < xShape.length; a++) spatial *= xShape[a];
  return perPosition ? { inner: 1, params: c * spatial } : { inner: spatial, params: c };
}
