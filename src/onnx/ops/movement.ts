import type { OpImpl } from "../types.ts";

/** ONNX operators of the movement family, keyed by op type. */
export const movementOps: Record<string, OpImpl> = {};
