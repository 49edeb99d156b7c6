/** ONNX operators: InstanceNormalization, GroupNormalization. */
import type { OpImpl } from "../types.ts";

export const normalizationOps: Record<string, OpImpl> = {};
