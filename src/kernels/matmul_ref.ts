/** CPU reference of the matmul family, and the shape rules the GPU binding shares with it.
 *
 * out[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * bias[b]), where op() optionally transposes
 * the last two axes, the batch axes (all but the last two) broadcast numpy-style, and `bias` is
 * broadcast (right-aligned, numpy rules, one-directional) to the output shape [...batch, M, N].
 * Sums accumulate in float64 so the reference is the oracle for float32 GPU results. */
import { broadcastShapes } from "./shape.ts";
import { type CpuTensor, cpuTensor, type DType, shapeString, sizeOf } from "../util/tensor.ts";

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

/** Row-major strides of `shape` seen through a broadcast to `target` (right-aligned): axes that
 * are missing or of size 1 where the target is larger get stride 0. Throws if `shape` does not
 * broadcast one-directionally to `target`. */
export function broadcastStrides(shape: readonly number[], target: readonly number[]): number[] {
  if (shape.length > target.length) {
    throw new RangeError(`cannot broadcast ${shapeString(shape)} to ${shapeString(target)}`);
  }
  const strides = new Array<number>(target.length).fill(0);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const t = i + target.length - shape.length;
    if (shape[i] === target[t]) strides[t] = shape[i] === 1 ? 0 : step;
    else if (shape[i] !== 1) {
      throw new RangeError(`cannot broadcast ${shapeString(shape)} to ${shapeString(target)}`);
    }
    step *= shape[i];
  }
  return strides;
}

/** erf(x) to ~1e-15 (series near 0, continued-fraction tail otherwise); the reference of the
 * fused GELU epilogue. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf x = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax, sum = ax;
    for (let n = 1; n < 60; n++) {
      term *= -ax * ax / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * sum * 2 / Math.sqrt(Math.PI);
  }
  if (ax > 6) return Math.sign(x);
  // erfc x = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) (Lentz-free, fixed depth)
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + (n / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** The fused activations, in float64. */
export function applyActivation(act: MatmulActivation, v: number): number {
  switch (act) {
    case "none":
      return v;
    case "relu":
      return v > 0 ? v : 0;
    case "gelu":
      return 0.5 * v * (1 + erf(v / Math.SQRT2));
    case "quick_gelu":
      return v / (1 + Math.exp(-1.702 * v));
  }
}

/** CPU reference: act(alpha * op(A) @ op(B) + beta * bias), batched with broadcasting, both
 * operands of rank >= 2 (the ONNX MatMul op reshapes 1-D operands before calling it). The output
 * has A's dtype; float16 results are rounded to half, integer results truncated. */
export function matmulRef(
  a: CpuTensor,
  b: CpuTensor,
  options: MatmulOptions & { bias?: CpuTensor } = {},
): CpuTensor {
  const { transA = false, transB = false, alpha = 1, beta = 1, activation = "none" } = options;
  const shape = matmulShape(a.shape, b.shape, transA, transB);
  const { m, n, k, batch } = shape;
  const aStrides = broadcastStrides(a.shape.slice(0, -2), batch);
  const bStrides = broadcastStrides(b.shape.slice(0, -2), batch);
  const bias = options.bias;
  const biasStrides = bias ? broadcastStrides(bias.shape, shape.out) : [];
  const [biasRow, biasCol] = biasStrides.slice(-2);
  const sAm = transA ? 1 : k, sAk = transA ? m : 1;
  const sBk = transB ? 1 : n, sBn = transB ? k : 1;
  const batchCount = sizeOf(batch);
  const out = new Float64Array(batchCount * m * n);
  const ad = a.data, bd = b.data;
  for (let z = 0; z < batchCount; z++) {
    // Offsets of this batch entry in A, B and the bias (broadcast axes contribute 0).
    let aOff = 0, bOff = 0, biasOff = 0;
    for (let d = batch.length - 1, rest = z; d >= 0; d--) {
      const idx = rest % batch[d];
      rest = Math.floor(rest / batch[d]);
      aOff += idx * aStrides[d] * m * k;
      bOff += idx * bStrides[d] * k * n;
      biasOff += idx * (biasStrides[d] ?? 0);
    }
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          s += Number(ad[aOff + i * sAm + p * sAk]) * Number(bd[bOff + p * sBk + j * sBn]);
        }
        let v = alpha * s;
        if (bias) v += beta * Number(bias.data[biasOff + i * biasRow + j * biasCol]);
        out[(z * m + i) * n + j] = applyActivation(activation, v);
      }
    }
  }
  return castResult(a.dtype, shape.out, out);
}

function castResult(dtype: DType, shape: readonly number[], values: Float64Array): CpuTensor {
  if (dtype === "int32" || dtype === "int64") {
    return cpuTensor(dtype, shape, values.map(Math.trunc));
  }
  if (dtype === "bool") throw new RangeError("matmul of bool tensors is not defined");
  return cpuTensor(dtype, shape, values); // float16: cpuTensor rounds to half
}
