/** CPU references of the elementwise kernels (pure TS): the oracle of the kernel tests and the
 * ONNX ops' `cpu` (constant folding). Floats are computed in float64 and rounded once to the
 * output dtype (half precision for float16); int32 wraps like the GPU's i32; int64 (held as
 * float64 numbers) does not wrap; bool is 0/1. */
import { type CpuData, type CpuTensor, cpuTensor, type DType, sizeOf } from "../util/tensor.ts";
import { erf } from "../util/math.ts";
import {
  type BinaryOp,
  binaryOutputDType,
  defaultUnaryParams,
  type UnaryOp,
  unaryOutputDType,
  type UnaryParams,
  type VariadicOp,
} from "./elementwise_shape.ts";
import { broadcastShapes, broadcastStrides } from "./shape.ts";

const INT32_MIN = -2147483648;
/** Largest float32 below 2^31: where WGSL's float -> i32 conversion saturates. */
const INT32_MAX_FROM_FLOAT = 2147483520;

/** Host tensor of `dtype` from float64 values (rounded to the dtype; int32 wraps). */
function tensorFrom(dtype: DType, shape: readonly number[], values: Float64Array): CpuTensor {
  switch (dtype) {
    case "float32":
      return { dtype, shape: [...shape], data: Float32Array.from(values) };
    case "float16":
      return cpuTensor(dtype, shape, values);
    case "int32":
      return { dtype, shape: [...shape], data: Int32Array.from(values, (v) => v | 0) };
    case "int64":
      return { dtype, shape: [...shape], data: values.map((v) => v + 0) }; // no -0
    case "bool":
      return { dtype, shape: [...shape], data: Uint8Array.from(values, (v) => (v ? 1 : 0)) };
    case "int8": // typed-array stores wrap modulo 2^8, as the cast kernel does
      return { dtype, shape: [...shape], data: Int8Array.from(values) };
    case "uint8":
      return { dtype, shape: [...shape], data: Uint8Array.from(values) };
  }
}

function numbers(data: CpuData): ArrayLike<number> {
  return data as ArrayLike<number>;
}

/** Round half to even, as ONNX Round, numpy's rint and WGSL's round (which keep the sign of a
 * zero result: -0.3 rounds to -0). Also the rounding of the quantize and grid sample references. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v); // rounds .5 up
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

function softplus(v: number): number {
  return Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)));
}

function unaryFloat(op: UnaryOp, v: number, alpha: number, beta: number): number {
  switch (op) {
    case "identity":
    case "cast":
      return v;
    case "abs":
      return Math.abs(v);
    case "neg":
      return -v;
    case "sqrt":
      return Math.sqrt(v);
    case "exp":
      return Math.exp(v);
    case "log":
      return Math.log(v);
    case "erf":
      return erf(v);
    case "sigmoid":
      return sigmoid(v);
    case "tanh":
      return Math.tanh(v);
    case "relu":
      return Math.max(v, 0);
    case "leakyRelu":
      return v < 0 ? alpha * v : v;
    case "gelu":
      return 0.5 * v * (1 + erf(v / Math.SQRT2));
    case "geluTanh":
      return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
    case "reciprocal":
      return 1 / v;
    case "floor":
      return Math.floor(v);
    case "ceil":
      return Math.ceil(v);
    case "round":
      return roundHalfEven(v);
    case "sin":
      return Math.sin(v);
    case "cos":
      return Math.cos(v);
    case "softplus":
      return softplus(v);
    case "hardSigmoid":
      return Math.max(0, Math.min(1, alpha * v + beta));
    case "clip":
      return Math.min(Math.max(v, alpha), beta);
    case "sign":
      return Math.sign(v);
    case "affine":
      return alpha * v + beta;
    case "tan":
      return Math.tan(v);
    case "asin":
      return Math.asin(v);
    case "acos":
      return Math.acos(v);
    case "atan":
      return Math.atan(v);
    case "sinh":
      return Math.sinh(v);
    case "cosh":
      return Math.cosh(v);
    case "asinh":
      return Math.asinh(v);
    case "acosh":
      return Math.acosh(v);
    case "atanh":
      return Math.atanh(v);
    case "elu":
      return v < 0 ? alpha * Math.expm1(v) : v;
    case "selu":
      return beta * (v <= 0 ? alpha * Math.expm1(v) : v);
    case "celu":
      return Math.max(0, v) + Math.min(0, alpha * Math.expm1(v / alpha));
    case "softsign":
      return v / (1 + Math.abs(v));
    case "hardSwish":
      return v * Math.max(0, Math.min(1, v / 6 + 0.5));
    case "mish":
      return v * Math.tanh(softplus(v));
    case "thresholdedRelu":
      return v > alpha ? v : 0;
    case "isNaN":
      return Number.isNaN(v) ? 1 : 0;
    case "isInf":
      return (v === -Infinity && alpha !== 0) || (v === Infinity && beta !== 0) ? 1 : 0;
    case "shrink":
      return v < -alpha ? v + beta : v > alpha ? v - beta : 0;
    case "swish":
      return v * sigmoid(alpha * v);
    case "square":
      return v * v;
    case "not":
    case "bitwiseNot":
      break;
  }
  throw new RangeError(`unary ${op} is not defined for floats`);
}

function unaryInt(op: UnaryOp, v: number, alpha: number, beta: number, int32: boolean): number {
  switch (op) {
    case "identity":
    case "cast":
      return v;
    case "abs":
      return Math.abs(v);
    case "neg":
      return -v;
    case "relu":
      return Math.max(v, 0);
    case "clip":
      return Math.min(Math.max(v, alpha), beta);
    case "sign":
      return Math.sign(v);
    case "bitwiseNot":
      return ~v;
    case "square":
      return int32 ? Math.imul(v, v) : v * v;
    default:
      throw new RangeError(`unary ${op} is not defined for integers`);
  }
}

/** Reference of `prepareUnary` (not Cast: see castRef). */
export function unaryRef(op: UnaryOp, x: CpuTensor, params: UnaryParams = {}): CpuTensor {
  if (op === "cast") throw new RangeError("use castRef for cast");
  const defaults = defaultUnaryParams(op);
  const alpha = params.alpha ?? defaults.alpha;
  const beta = params.beta ?? defaults.beta;
  const src = numbers(x.data);
  const n = src.length;
  const out = new Float64Array(n);
  if (x.dtype === "bool") {
    if (op !== "not" && op !== "identity") throw new RangeError(`unary ${op} on bool`);
    for (let i = 0; i < n; i++) out[i] = op === "not" ? 1 - src[i] : src[i];
  } else if (x.dtype === "float32" || x.dtype === "float16") {
    // Parameters are f32 on the GPU.
    const a = Math.fround(alpha);
    const b = Math.fround(beta);
    for (let i = 0; i < n; i++) out[i] = unaryFloat(op, src[i], a, b);
  } else {
    const int32 = x.dtype === "int32";
    for (let i = 0; i < n; i++) out[i] = unaryInt(op, src[i], alpha, beta, int32);
  }
  return tensorFrom(unaryOutputDType(op, x.dtype), x.shape, out);
}

/** Reference of `prepareCast`: float -> int truncates toward zero (int32 saturates as WGSL
 * does, at -2^31 and 2147483520; NaN -> 0), -> int8/uint8 then wraps modulo 2^8 (ints wrap
 * directly), -> bool is `!= 0` (NaN -> true), -> float16 rounds to nearest even, int64 -> int32
 * wraps. */
export function castRef(x: CpuTensor, dtype: DType): CpuTensor {
  const src = numbers(x.data);
  const out = new Float64Array(src.length);
  const fromFloat = x.dtype === "float32" || x.dtype === "float16";
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    switch (dtype) {
      case "float32":
      case "float16":
        out[i] = v;
        break;
      case "bool":
        out[i] = v !== 0 ? 1 : 0; // NaN !== 0
        break;
      case "int32":
      case "int8": // tensorFrom wraps the int32 value to 8 bits
      case "uint8":
        out[i] = fromFloat
          ? (Number.isNaN(v)
            ? 0
            : Math.max(INT32_MIN, Math.min(INT32_MAX_FROM_FLOAT, Math.trunc(v))))
          : v | 0;
        break;
      case "int64":
        out[i] = fromFloat ? (Number.isNaN(v) ? 0 : Math.trunc(v)) : v;
        break;
    }
  }
  return tensorFrom(dtype, x.shape, out);
}

// ---- binary ----

/** Integer power by repeated squaring (int32 wraps). Negative exponents give the integer part of
 * the true result: only bases +-1 are non-zero. */
function intPow(x: number, e: number, int32: boolean): number {
  if (e < 0) return x === 1 ? 1 : x === -1 ? (e % 2 === 0 ? 1 : -1) : 0;
  let result = 1;
  let base = x;
  let k = e;
  while (k > 0) {
    if (k % 2 === 1) result = int32 ? Math.imul(result, base) : result * base;
    base = int32 ? Math.imul(base, base) : base * base;
    k = Math.floor(k / 2);
  }
  return result;
}

function powRef(x: number, y: number, baseIsInt: boolean, int32: boolean): number {
  if (!baseIsInt) return Math.pow(x, y); // handles negative bases with integral exponents
  if (Number.isInteger(y)) return intPow(x, y, int32);
  const v = Math.trunc(Math.pow(x, y));
  return Number.isNaN(v) ? 0 : v;
}

function binaryValue(op: BinaryOp, x: number, y: number, dtype: DType): number {
  const isFloat = dtype === "float32" || dtype === "float16";
  const int32 = dtype === "int32";
  switch (op) {
    case "add":
      return x + y;
    case "sub":
      return x - y;
    case "mul":
      return int32 ? Math.imul(x, y) : x * y;
    case "div":
      if (isFloat) return x / y;
      if (y === 0) return x; // as WGSL defines it
      return Math.trunc(x / y);
    case "pow":
      return powRef(x, y, !isFloat, int32);
    case "mod": {
      if (isFloat) return x - y * Math.floor(x / y);
      if (y === 0) return 0;
      const r = x % y;
      return r !== 0 && (r < 0) !== (y < 0) ? r + y : r;
    }
    case "fmod":
      if (!isFloat && y === 0) return 0;
      return x % y;
    case "max":
      return Math.max(x, y);
    case "min":
      return Math.min(x, y);
    case "equal":
      return x === y ? 1 : 0;
    case "less":
      return x < y ? 1 : 0;
    case "greater":
      return x > y ? 1 : 0;
    case "lessOrEqual":
      return x <= y ? 1 : 0;
    case "greaterOrEqual":
      return x >= y ? 1 : 0;
    case "and":
      return x && y ? 1 : 0;
    case "or":
      return x || y ? 1 : 0;
    case "xor":
      return (x ? 1 : 0) ^ (y ? 1 : 0);
    case "prelu":
      return x < 0 ? (int32 ? Math.imul(x, y) : x * y) : x;
    case "bitwiseAnd":
      return x & y;
    case "bitwiseOr":
      return x | y;
    case "bitwiseXor":
      return x ^ y;
  }
}

/** Element offsets of each input for every output element (numpy broadcasting). */
function broadcastOffsets(
  shapes: readonly (readonly number[])[],
  outShape: readonly number[],
): Int32Array[] {
  const n = sizeOf(outShape);
  const rank = outShape.length;
  const strides = shapes.map((s) => broadcastStrides(s, outShape));
  const offsets = shapes.map(() => new Int32Array(n));
  const coord = new Array<number>(rank).fill(0);
  const cur = shapes.map(() => 0);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < shapes.length; k++) offsets[k][i] = cur[k];
    // Advance the multi-index, updating each input's offset incrementally.
    for (let d = rank - 1; d >= 0; d--) {
      coord[d]++;
      for (let k = 0; k < shapes.length; k++) cur[k] += strides[k][d];
      if (coord[d] < outShape[d]) break;
      for (let k = 0; k < shapes.length; k++) cur[k] -= strides[k][d] * outShape[d];
      coord[d] = 0;
    }
  }
  return offsets;
}

function broadcastOrThrow(what: string, shapes: readonly (readonly number[])[]): number[] {
  const out = broadcastShapes(...shapes);
  if (!out) {
    throw new RangeError(
      `${what}: shapes ${shapes.map((s) => `[${s.join(",")}]`).join(", ")} do not broadcast`,
    );
  }
  return out;
}

/** Reference of `prepareBinary`; the output shape is the broadcast of the inputs unless given. */
export function binaryRef(
  op: BinaryOp,
  a: CpuTensor,
  b: CpuTensor,
  outShape?: readonly number[],
): CpuTensor {
  const shape = outShape ?? broadcastOrThrow(op, [a.shape, b.shape]);
  const [ia, ib] = broadcastOffsets([a.shape, b.shape], shape);
  const av = numbers(a.data);
  const bv = numbers(b.data);
  const out = new Float64Array(ia.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = binaryValue(op, av[ia[i]], bv[ib[i]], a.dtype);
  }
  return tensorFrom(binaryOutputDType(op, a.dtype), shape, out);
}

/** Reference of `prepareWhere`. */
export function whereRef(condition: CpuTensor, x: CpuTensor, y: CpuTensor): CpuTensor {
  const shape = broadcastOrThrow("where", [condition.shape, x.shape, y.shape]);
  const [ic, ix, iy] = broadcastOffsets([condition.shape, x.shape, y.shape], shape);
  const cv = numbers(condition.data);
  const xv = numbers(x.data);
  const yv = numbers(y.data);
  const out = new Float64Array(ic.length);
  for (let i = 0; i < out.length; i++) out[i] = cv[ic[i]] ? xv[ix[i]] : yv[iy[i]];
  return tensorFrom(x.dtype, shape, out);
}

/** Reference of `prepareClamp`: min(max(x, lo), hi) with broadcasting. */
export function clampRef(x: CpuTensor, lo: CpuTensor, hi: CpuTensor): CpuTensor {
  const shape = broadcastOrThrow("clamp", [x.shape, lo.shape, hi.shape]);
  const [ix, il, ih] = broadcastOffsets([x.shape, lo.shape, hi.shape], shape);
  const xv = numbers(x.data);
  const lv = numbers(lo.data);
  const hv = numbers(hi.data);
  const out = new Float64Array(ix.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(Math.max(xv[ix[i]], lv[il[i]]), hv[ih[i]]);
  return tensorFrom(x.dtype, shape, out);
}

/** Reference of `prepareVariadic`: a left fold of binary steps in the output shape, then 1/n
 * for mean (so float16 rounds at the same points as the GPU chain). */
export function variadicRef(op: VariadicOp, inputs: readonly CpuTensor[]): CpuTensor {
  if (inputs.length === 0) throw new RangeError(`${op}: needs at least one input`);
  const shape = broadcastOrThrow(op, inputs.map((t) => t.shape));
  const step: BinaryOp = op === "max" ? "max" : op === "min" ? "min" : "add";
  let acc = inputs.length === 1 ? binaryRef("max", inputs[0], inputs[0], shape) : inputs[0];
  for (let k = 1; k < inputs.length; k++) acc = binaryRef(step, acc, inputs[k], shape);
  if (op === "mean" && inputs.length > 1) {
    acc = unaryRef("affine", acc, { alpha: 1 / inputs.length, beta: 0 });
  }
  return acc;
}
