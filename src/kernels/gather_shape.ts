/** Gather's output shape, shared by its binding (gather.ts), its reference (gather_ref.ts) and
 * the ONNX Gather op. */

/** Output shape of Gather: data.shape[:axis] + indices.shape + data.shape[axis+1:]. */
export function gatherShape(
  dataShape: readonly number[],
  indicesShape: readonly number[],
  axis: number,
): number[] {
  return [...dataShape.slice(0, axis), ...indicesShape, ...dataShape.slice(axis + 1)];
}
