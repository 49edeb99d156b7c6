/** CPU reference for inference-mode batch normalization:
 *   Y = (X - mean) / sqrt(var + epsilon) * scale + B
 * with per-channel parameters (or, for ONNX's old `spatial = 0` form, one parameter set per
 * channel and spatial position); the parameter layout, shared with the GPU binding, is in
 * batchnorm_shape.ts. Pure TS. */
import type { BatchNormLayout } from "./batchnorm_shape.ts";

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
