/** The cache index `shaders/tip_cache.wgsl` reads (pure TS, no GPU). */
import { EngineError } from "../util/errors.ts";

/** [classStart (C + 1) | entries grouped by class, ascending (N) | class of each entry (N)]: how
 * the kernels find a class's cache entries (the one-hot `values` matrix, stored sparsely). */
export function buildCacheIndex(entryLabels: Int32Array, classes: number): Uint32Array {
  const N = entryLabels.length;
  const out = new Uint32Array(classes + 1 + 2 * N);
  for (let n = 0; n < N; n++) {
    const c = entryLabels[n];
    if (!(c >= 0 && c < classes)) {
      throw new EngineError(`cache entry ${n} has label ${c}, outside the ${classes} classes`);
    }
    out[c + 1]++;
    out[classes + 1 + N + n] = c;
  }
  for (let c = 0; c < classes; c++) out[c + 1] += out[c];
  const next = out.slice(0, classes);
  for (let n = 0; n < N; n++) out[classes + 1 + next[entryLabels[n]]++] = n;
  return out;
}
