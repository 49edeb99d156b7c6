/** ONNX operators: ConvTranspose. */
import type { OpImpl } from "../types.ts";

export const convTransposeOps: Record<string, OpImpl> = {};
