/** OneHot's output shape, shared by its binding (onehot.ts), its reference (onehot_ref.ts) and
 * the ONNX op. */

/** The indices' shape with a `depth` axis inserted at `axis` (non-negative, in [0, rank]). */
export function oneHotShape(
  indicesShape: readonly number[],
  depth: number,
  axis: number,
): number[] {
  return [...indicesShape.slice(0, axis), depth, ...indicesShape.slice(axis)];
}
