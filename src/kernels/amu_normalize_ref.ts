/** Host reference of `shaders/amu_normalize.wgsl`: rows divided by their L2 norm (float64). */
export function l2NormalizeRowsRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < cols; k++) s += x[r * cols + k] ** 2;
    const norm = Math.sqrt(s);
    for (let k = 0; k < cols; k++) out[r * cols + k] = x[r * cols + k] / norm;
  }
  return out;
}
