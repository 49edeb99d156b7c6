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

/** Rows grouped by class (ascending within a class): CSR offsets [C + 1] and row list [N]. */
export function rowsByClass(
  labels: ArrayLike<number>,
  classes: number,
): { start: Uint32Array; rows: Uint32Array } {
  const start = new Uint32Array(classes + 1);
  for (let i = 0; i < labels.length; i++) start[labels[i] + 1]++;
  for (let c = 0; c < classes; c++) start[c + 1] += start[c];
  const fill = start.slice(0, classes);
  const rows = new Uint32Array(labels.length);
  for (let i = 0; i < labels.length; i++) rows[fill[labels[i]]++] = i;
  return { start, rows };
}
