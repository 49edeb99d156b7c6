/** Options and shape rules of the matmul family, shared by the GPU binding (matmul.ts), its CPU
 * reference and the ONNX MatMul/Gemm ops. Pure TS. */
import { broadcastShapes } from "./shape.ts";
import { shapeString } from "../util/tensor.ts";

/** Epilogue activations the matmul kernels can fuse (applied after alpha/beta/bias). */
export type MatmulActivation = "none" | "relu" | "gelu" | "quick_gelu";

export interface MatmulOptions {
  /** Use A's last two axes transposed ([..., K, M] stored). */
  transA?: boolean;
  /** Use B's last two axes transposed ([..., N, K] stored, as PyTorch Linear / Gemm transB=1). */
  transB?: boolean;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Scale of the bias (default 1; ignored without a bias). */
  beta?: number;
  /** Fused activation applied last (default "none"). */
  activation?: MatmulActivation;
}

/** The problem a matmul solves, derived from the operand shapes. */
export interface MatmulShape {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** Broadcast batch axes of the output. */
  readonly batch: readonly number[];
  /** Output shape: [...batch, m, n]. */
  readonly out: readonly number[];
}

/** Shape rules for op(A) @ op(B) with rank >= 2 operands; throws a RangeError naming the
 * shapes when they do not fit (callers wrap it with the node or tensor name). */
export function matmulShape(
  aShape: readonly number[],
  bShape: readonly number[],
  transA = false,
  transB = false,
): MatmulShape {
  if (aShape.length < 2 || bShape.length < 2) {
    throw new RangeError(
      `matmul operands need rank >= 2, got A ${shapeString(aShape)} and B ${shapeString(bShape)}`,
    );
  }
  const ra = aShape.length, rb = bShape.length;
  const m = transA ? aShape[ra - 1] : aShape[ra - 2];
  const ka = transA ? aShape[ra - 2] : aShape[ra - 1];
  const kb = transB ? bShape[rb - 1] : bShape[rb - 2];
  const n = transB ? bShape[rb - 2] : bShape[rb - 1];
  if (ka !== kb) {
    throw new RangeError(
      `matmul inner dimensions differ: A ${shapeString(aShape)}${
        transA ? "^T" : ""
      } has K=${ka}, ` +
        `B ${shapeString(bShape)}${transB ? "^T" : ""} has K=${kb}`,
    );
  }
  const batch = broadcastShapes(aShape.slice(0, -2), bShape.slice(0, -2));
  if (!batch) {
    throw new RangeError(
      `matmul batch axes do not broadcast: A ${shapeString(aShape)}, B ${shapeString(bShape)}`,
    );
  }
  return { m, n, k: ka, batch, out: [...batch, m, n] };
}
