/** The class index `shaders/amu_init.wgsl` reads (pure TS, no GPU). */

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
