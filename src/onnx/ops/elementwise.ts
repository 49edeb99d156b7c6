import type { OpImpl } from "../types.ts";

/** ONNX operators of the elementwise family, keyed by op type. */
export const elementwiseOps: Record<string, OpImpl> = {};
