import type { OpImpl } from "../types.ts";

/** ONNX operators of the shape family, keyed by op type. */
export const shapeOps: Record<string, OpImpl> = {};
