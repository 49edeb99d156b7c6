import type { OpImpl } from "../types.ts";

/** ONNX operators of the conv family, keyed by op type. */
export const convOps: Record<string, OpImpl> = {};
