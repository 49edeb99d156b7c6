/** ONNX operators of vision models' heads and older backbones: GridSample, AffineGrid, RoiAlign,
 * LRN, LpPool, MaxUnpool, CenterCropPad, Col2Im, DeformConv. */
import type { OpImpl } from "../types.ts";

export const visionOps: Record<string, OpImpl> = {};
