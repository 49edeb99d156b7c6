/** CPU reference of the matmul family (its shape rules, shared with the GPU binding, are in
 * matmul_shape.ts).
 *
 * out[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * bias[b]), where op() optionally transposes
 * the last two axes, the batch axes (all but the last two) broadcast numpy-style, and `bias` is
 * broadcast (right-aligned, numpy rules, one-directional) to the output shape [...batch, M, N].
 * Sums accumulate in float64 so the reference is the oracle for float32 GPU results. */
import { broadcastStrides } from "./shape.ts";
import { type MatmulActivation, type MatmulOptions, matmulShape } from "./matmul_shape.ts";
import { erf } from "../util/math.ts";
import { type CpuTensor, cpuTensor, type DType, sizeOf } from "../util/tensor.ts";

/** The fused activations, in float64. */
export function applyActivation(act: MatmulActivation, v: number): number {
  switch (act) {
    case "none":
      return v;
    case "relu":
      // NaN stays NaN, as ONNX Relu and the GPU keep it.
      return v < 0 ? 0 : v;
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
