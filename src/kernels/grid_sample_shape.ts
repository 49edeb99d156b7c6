/** GridSample's and AffineGrid's options and output shapes, shared by the bindings
 * (grid_sample.ts), the references (grid_sample_ref.ts) and the ONNX ops. The shape functions
 * throw a plain Error saying what does not fit (the callers add the node or kernel). */
import { shapeString } from "../util/tensor.ts";

export type GridSampleMode = "linear" | "nearest" | "cubic";
export type GridPaddingMode = "zeros" | "border" | "reflection";

export interface GridSampleOptions {
  readonly mode: GridSampleMode;
  readonly padding: GridPaddingMode;
  readonly alignCorners: boolean;
}

/** Y's shape [N, C, ...grid's spatial axes] for X [N, C, ...] and grid [N, ..., rank]; throws a
 * plain Error saying what does not fit. */
export function gridSampleShape(
  xShape: readonly number[],
  gridShape: readonly number[],
): number[] {
  const rank = xShape.length - 2;
  if (rank < 1) throw new Error(`X has rank ${xShape.length}; needs N, C and spatial axes`);
  if (gridShape.length !== xShape.length) {
    throw new Error(
      `grid ${shapeString(gridShape)} must have the rank of X ${shapeString(xShape)}`,
    );
  }
  if (gridShape[0] !== xShape[0]) {
    throw new Error(`grid batch ${gridShape[0]} differs from X batch ${xShape[0]}`);
  }
  if (gridShape[gridShape.length - 1] !== rank) {
    throw new Error(`grid's last axis is ${gridShape[gridShape.length - 1]}, expected ${rank}`);
  }
  return [xShape[0], xShape[1], ...gridShape.slice(1, -1)];
}

/** AffineGrid's output shape: [N, H, W, 2] for size [N, C, H, W], [N, D, H, W, 3] for
 * [N, C, D, H, W]; theta must be [N, 2, 3] or [N, 3, 4] accordingly. */
export function affineGridShape(thetaShape: readonly number[], size: readonly number[]): number[] {
  if (size.length !== 4 && size.length !== 5) {
    throw new Error(`size has ${size.length} values; expected 4 (2-D) or 5 (3-D)`);
  }
  if (size.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`size [${size}] must be non-negative integers`);
  }
  const rank = size.length - 2;
  const expected = [size[0], rank, rank + 1];
  if (shapeString(thetaShape) !== shapeString(expected)) {
    throw new Error(`theta is ${shapeString(thetaShape)}, expected ${shapeString(expected)}`);
  }
  return [size[0], ...size.slice(2), rank];
}
