/** Host reference of `shaders/amu_init.wgsl` (float64): W0[c] = sum of class c's rows / (N / C). */
export function amuInitWeightsRef(
  x: ArrayLike<number>,
  labels: ArrayLike<number>,
  dim: number,
  classes: number,
): Float64Array {
  const n = labels.length;
  const w = new Float64Array(classes * dim);
  for (let i = 0; i < n; i++) {
    const c = labels[i];
    for (let k = 0; k < dim; k++) w[c * dim + k] += x[i * dim + k];
  }
  const perClass = n / classes;
  for (let i = 0; i < w.length; i++) w[i] /= perClass;
  return w;
}
