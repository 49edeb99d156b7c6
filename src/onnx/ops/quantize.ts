/** ONNX operators: QuantizeLinear, DequantizeLinear and the QLinear family. */
import type { OpImpl } from "../types.ts";

export const quantizeOps: Record<string, OpImpl> = {};
