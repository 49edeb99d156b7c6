/** CPU reference for inference-mode batch normalization:
 *   Y = (X - mean) / sqrt(var + epsilon) * scale + B
 * with per-channel parameters (or, for ONNX's old `spatial = 0` form, one parameter set per
 * channel and spatial position). Pure TS. */

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

/** Folds the four parameter vectors into Y = X * scale' + shift' (float64 arithmetic). */
export function foldBatchNorm(
  scale: ArrayLike<number>,
  bias: ArrayLike<number>,
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  epsilon: number,
): { scale: Float32Array; shift: Float32Array } {
  const n = scale.length;
  const s = new Float32Array(n), t = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = scale[i] / Math.sqrt(variance[i] + epsilon);
    s[i] = a;
    t[i] = bias[i] - mean[i] * a;
  }
  return { scale: s, shift: t };
}

export function batchNormRef(
  x: ArrayLike<number>,
  layout: BatchNormLayout,
  scale: ArrayLike<number>,
  bias: ArrayLike<number>,
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  epsilon: number,
): Float32Array {
  for (
    const [name, v] of [["scale", scale], ["B", bias], ["mean", mean], ["var", variance]] as const
  ) {
    if (v.length !== layout.params) {
      throw new Error(`${name} has ${v.length} values, expected ${layout.params}`);
    }
  }
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const p = Math.floor(i / layout.inner) % layout.params;
    y[i] = (x[i] - mean[p]) / Math.sqrt(variance[p] + epsilon) * scale[p] + bias[p];
  }
  return y;
}
