/** RoiAlign's settings and output shape, shared by the binding (roi_align.ts), the reference
 * (roi_align_ref.ts) and the ONNX op. */
import { shapeString } from "../util/tensor.ts";

export interface RoiAlignOptions {
  readonly mode: "avg" | "max";
  readonly outputHeight: number;
  readonly outputWidth: number;
  /** Samples per bin along each axis; 0: ceil(roi extent / output extent), per region. */
  readonly samplingRatio: number;
  readonly spatialScale: number;
  /** half_pixel shifts coordinates by -0.5 and allows regions under one pixel;
   * output_half_pixel (opset 10's behaviour) does neither and widens regions to >= 1. */
  readonly halfPixel: boolean;
}

/** Y's shape [R, C, output_height, output_width]; throws a plain Error naming what misfits. */
export function roiAlignShape(
  xShape: readonly number[],
  roisShape: readonly number[],
  indicesShape: readonly number[],
  o: RoiAlignOptions,
): number[] {
  if (xShape.length !== 4) throw new Error(`X ${shapeString(xShape)} must be 4-D`);
  if (roisShape.length !== 2 || roisShape[1] !== 4) {
    throw new Error(`rois ${shapeString(roisShape)} must be [num_rois, 4]`);
  }
  if (indicesShape.length !== 1 || indicesShape[0] !== roisShape[0]) {
    throw new Error(
      `batch_indices ${shapeString(indicesShape)} must be [${roisShape[0]}] (one per roi)`,
    );
  }
  return [roisShape[0], xShape[1], o.outputHeight, o.outputWidth];
}
