/** Transpose's default permutation and DepthToSpace's channel orders, shared by the binding
 * (transpose.ts), the reference (transpose_ref.ts) and the ONNX ops. */

/** The default Transpose permutation (axes reversed). */
export function reversedPerm(rank: number): number[] {
  return Array.from({ length: rank }, (_, d) => rank - 1 - d);
}

/** DepthToSpace's channel order: depth-column-row or column-row-depth. */
export type DepthToSpaceMode = "DCR" | "CRD";
