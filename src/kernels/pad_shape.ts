/** Pad's modes and output shape, shared by its binding (pad.ts), its reference (pad_ref.ts) and
 * the ONNX Pad and Tile ops. */

export type PadMode = "constant" | "reflect" | "edge" | "wrap";

/** Output shape of a pad: begin[d] + dim + end[d] (negative pads crop). */
export function paddedShape(
  shape: readonly number[],
  begin: readonly number[],
  end: readonly number[],
): number[] {
  return shape.map((n, d) => n + begin[d] + end[d]);
}
