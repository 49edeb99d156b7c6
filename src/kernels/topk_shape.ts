/** TopK's output shape, shared by its binding (topk.ts), its reference (topk_ref.ts) and the ONNX
 * op. */

/** Output shape: the input's with the axis replaced by k. */
export function topKShape(shape: readonly number[], axis: number, k: number): number[] {
  return shape.map((n, d) => (d === axis ? k : n));
}
