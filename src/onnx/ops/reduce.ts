import type { OpImpl } from "../types.ts";

/** ONNX operators of the reduce family, keyed by op type. */
export const reduceOps: Record<string, OpImpl> = {};
