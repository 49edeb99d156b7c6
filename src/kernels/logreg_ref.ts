/** Host (float64) reference of `shaders/logreg.wgsl`. */

/** Per row of z [rows, K]: cross-entropy against `labels`, and softmax(z) - onehot(y). */
export function logregRowsRef(
  z: ArrayLike<number>,
  labels: Int32Array,
  classes: number,
): { loss: Float64Array; g: Float64Array } {
  const rows = labels.length, K = classes;
  const loss = new Float64Array(rows);
  const g = new Float64Array(rows * K);
  for (let i = 0; i < rows; i++) {
    let m = -Infinity;
    for (let c = 0; c < K; c++) m = Math.max(m, z[i * K + c]);
    let s = 0;
    for (let c = 0; c < K; c++) s += Math.exp(z[i * K + c] - m);
    const y = labels[i];
    loss[i] = Math.log(s) - (z[i * K + y] - m);
    for (let c = 0; c < K; c++) g[i * K + c] = Math.exp(z[i * K + c] - m) / s - (c === y ? 1 : 0);
  }
  return { loss, g };
}

/** g^T @ x: [K, depth] from g [rows, K] and x [rows, depth]. */
export function logregWeightGradRef(
  g: ArrayLike<number>,
  x: ArrayLike<number>,
  rows: number,
  classes: number,
  depth: number,
): Float64Array {
  const out = new Float64Array(classes * depth);
  for (let i = 0; i < rows; i++) {
    for (let c = 0; c < classes; c++) {
      const gi = g[i * classes + c];
      for (let k = 0; k < depth; k++) out[c * depth + k] += gi * x[i * depth + k];
    }
  }
  return out;
}
