import type { OpImpl } from "../types.ts";

/** ONNX operators of the matmul family, keyed by op type. */
export const matmulOps: Record<string, OpImpl> = {};
