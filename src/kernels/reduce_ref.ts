/** CPU reference of the reduce kernel (float64 accumulation); also the ONNX Reduce* ops' `cpu`
 * (constant folding). */
import { type CpuTensor, cpuTensor, sizeOf } from "../util/tensor.ts";
import { normAxes, type ReduceOp, reduceShape } from "./reduce_shape.ts";

function isIntegral(t: CpuTensor): boolean {
  return t.dtype === "int32" || t.dtype === "int64" || t.dtype === "bool";
}

function identity(op: ReduceOp): number {
  switch (op) {
    case "prod":
      return 1;
    case "max":
    case "logSumExp":
      return -Infinity;
    case "min":
      return Infinity;
    default:
      return 0;
  }
}

/** For every input element (row-major), the index of the output element it reduces into. */
function outputIndexOf(shape: readonly number[], axes: readonly number[]): Int32Array {
  const reduced = new Set(axes);
  const outStrides = new Array<number>(shape.length).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (!reduced.has(i)) {
      outStrides[i] = s;
      s *= shape[i];
    }
  }
  const n = sizeOf(shape);
  const map = new Int32Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  let o = 0;
  for (let i = 0; i < n; i++) {
    map[i] = o;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]++;
      o += outStrides[d];
      if (idx[d] < shape[d]) break;
      o -= outStrides[d] * idx[d];
      idx[d] = 0;
    }
  }
  return map;
}

/** Reduces `x` over `axes` (empty: nothing reduced, each output is the op on one element). */
export function reduceRef(
  op: ReduceOp,
  x: CpuTensor,
  axes: readonly number[],
  keepdims = true,
): CpuTensor {
  const norm = normAxes(x.shape, axes, `reduce ${op}`);
  const outShape = reduceShape(x.shape, norm, keepdims);
  const outCount = sizeOf(outShape);
  const count = norm.reduce((n, a) => n * x.shape[a], 1);
  const map = outputIndexOf(x.shape, norm);
  const data = x.data;
  const acc = new Float64Array(outCount).fill(identity(op));
  const maxima = new Float64Array(outCount).fill(-Infinity);
  if (op === "logSumExp") {
    for (let i = 0; i < data.length; i++) maxima[map[i]] = Math.max(maxima[map[i]], data[i]);
    acc.fill(0);
  }
  for (let i = 0; i < data.length; i++) {
    const o = map[i];
    const v = data[i];
    switch (op) {
      case "max":
        acc[o] = Math.max(acc[o], v);
        break;
      case "min":
        acc[o] = Math.min(acc[o], v);
        break;
      case "prod":
        acc[o] *= v;
        break;
      case "l1":
        acc[o] += Math.abs(v);
        break;
      case "l2":
      case "sumSquare":
        acc[o] += v * v;
        break;
      case "logSumExp":
        acc[o] += Math.exp(v - maxima[o]);
        break;
      default:
        acc[o] += v;
    }
  }
  const out = new Float64Array(outCount);
  for (let o = 0; o < outCount; o++) {
    let r = acc[o];
    switch (op) {
      case "mean":
        r = r / count;
        break;
      case "l2":
        r = Math.sqrt(r);
        break;
      case "logSum":
        r = Math.log(r);
        break;
      case "logSumExp":
        r = Math.abs(maxima[o]) === Infinity ? maxima[o] : Math.log(r) + maxima[o];
        break;
    }
    out[o] = isIntegral(x) ? Math.trunc(r) + 0 : r; // + 0: no -0 in integers
  }
  return cpuTensor(x.dtype, outShape, out);
}
