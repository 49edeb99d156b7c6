/** ONNX operators: TopK, GatherND, ScatterND, ScatterElements, Trilu, CumSum, OneHot, Einsum, NonMaxSuppression. */
import type { OpImpl } from "../types.ts";

export const indexingOps: Record<string, OpImpl> = {};
