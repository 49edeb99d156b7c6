/** Host reference of `shaders/amu_logits.wgsl` (float64 sums). */
import type { ClassMatrixLayout } from "./amu_logits_shape.ts";

/** out[r, c] = scale * sum_k A[rows[r], k] * B(k, c) for the given source rows. */
export function amuLogitsRef(
  a: ArrayLike<number>,
  depth: number,
  rows: ArrayLike<number>,
  b: ArrayLike<number>,
  layout: ClassMatrixLayout,
  classes: number,
  scale = 1,
): Float64Array {
  const out = new Float64Array(rows.length * classes);
  for (let r = 0; r < rows.length; r++) {
    const aBase = rows[r] * depth;
    for (let c = 0; c < classes; c++) {
      let s = 0;
      for (let k = 0; k < depth; k++) {
        const bv = layout === "classes-major" ? b[c * depth + k] : b[k * classes + c];
        s += a[aBase + k] * bv;
      }
      out[r * classes + c] = scale * s;
    }
  }
  return out;
}
