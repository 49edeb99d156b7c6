/** Settings and the input check of LRN, shared by the GPU binding (lrn.ts), its CPU reference
 * and the ONNX op. Pure TS. */
import { shapeString } from "../util/tensor.ts";

export interface LrnOptions {
  readonly size: number;
  readonly alpha: number;
  readonly beta: number;
  readonly bias: number;
}

/** X needs N and C axes (a plain Error otherwise; callers add the node name). */
export function checkLrnShape(shape: readonly number[]): void {
  if (shape.length < 2) throw new Error(`X ${shapeString(shape)} needs N and C axes`);
}
