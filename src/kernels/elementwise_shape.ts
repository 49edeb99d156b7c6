/** The elementwise operator catalogue, shared by the bindings (elementwise.ts), the references
 * (elementwise_ref.ts) and the ONNX ops: each operator's name, its op code in the shader, the
 * kinds of tensor it accepts, its output dtype and its parameter defaults. Pure TS. */
import type { DType } from "../util/tensor.ts";

/** The kinds of tensor an operator may accept. */
export type DTypeKind = "float" | "int" | "bool";

/** The kind of a tensor of `dtype`. */
export function dtypeKind(dtype: DType): DTypeKind {
  return dtype === "bool" ? "bool" : dtype.startsWith("float") ? "float" : "int";
}

/** Unary operators: op code (OP_* in shaders/unary.wgsl) and the input kinds it accepts. */
export const UNARY_OPS = {
  identity: { code: 0, kinds: ["float", "int", "bool"] },
  abs: { code: 1, kinds: ["float", "int"] },
  neg: { code: 2, kinds: ["float", "int"] },
  sqrt: { code: 3, kinds: ["float"] },
  exp: { code: 4, kinds: ["float"] },
  log: { code: 5, kinds: ["float"] },
  erf: { code: 6, kinds: ["float"] },
  sigmoid: { code: 7, kinds: ["float"] },
  tanh: { code: 8, kinds: ["float"] },
  relu: { code: 9, kinds: ["float", "int"] },
  leakyRelu: { code: 10, kinds: ["float"] },
  gelu: { code: 11, kinds: ["float"] },
  geluTanh: { code: 12, kinds: ["float"] },
  reciprocal: { code: 13, kinds: ["float"] },
  floor: { code: 14, kinds: ["float"] },
  ceil: { code: 15, kinds: ["float"] },
  round: { code: 16, kinds: ["float"] },
  sin: { code: 17, kinds: ["float"] },
  cos: { code: 18, kinds: ["float"] },
  softplus: { code: 19, kinds: ["float"] },
  hardSigmoid: { code: 20, kinds: ["float"] },
  clip: { code: 21, kinds: ["float", "int"] },
  sign: { code: 22, kinds: ["float", "int"] },
  affine: { code: 23, kinds: ["float"] },
  not: { code: 24, kinds: ["bool"] },
  cast: { code: 25, kinds: ["float", "int", "bool"] },
  tan: { code: 26, kinds: ["float"] },
  asin: { code: 27, kinds: ["float"] },
  acos: { code: 28, kinds: ["float"] },
  atan: { code: 29, kinds: ["float"] },
  sinh: { code: 30, kinds: ["float"] },
  cosh: { code: 31, kinds: ["float"] },
  asinh: { code: 32, kinds: ["float"] },
  acosh: { code: 33, kinds: ["float"] },
  atanh: { code: 34, kinds: ["float"] },
  elu: { code: 35, kinds: ["float"] },
  selu: { code: 36, kinds: ["float"] },
  celu: { code: 37, kinds: ["float"] },
  softsign: { code: 38, kinds: ["float"] },
  hardSwish: { code: 39, kinds: ["float"] },
  mish: { code: 40, kinds: ["float"] },
  thresholdedRelu: { code: 41, kinds: ["float"] },
  isNaN: { code: 42, kinds: ["float"] },
  isInf: { code: 43, kinds: ["float"] },
  shrink: { code: 44, kinds: ["float"] },
  swish: { code: 45, kinds: ["float"] },
  bitwiseNot: { code: 46, kinds: ["int"] },
  square: { code: 47, kinds: ["float", "int"] },
} as const satisfies Record<string, { code: number; kinds: readonly DTypeKind[] }>;

export type UnaryOp = keyof typeof UNARY_OPS;

/** Whether `op` accepts input tensors of `dtype`. */
export function unarySupports(op: UnaryOp, dtype: DType): boolean {
  return (UNARY_OPS[op].kinds as readonly DTypeKind[]).includes(dtypeKind(dtype));
}

/** Operator parameters (meaning per op, defaults are the ONNX attribute defaults):
 * leakyRelu alpha; hardSigmoid alpha, beta; clip alpha = min, beta = max; affine alpha * x + beta;
 * elu/celu/thresholdedRelu/swish alpha; selu alpha, beta = gamma; shrink alpha = lambd, beta =
 * bias; isInf alpha = detect negative, beta = detect positive (non-zero = yes). */
export interface UnaryParams {
  alpha?: number;
  beta?: number;
}

/** The output dtype `op` produces from `dtype` (cast: pass the target as `out.dtype`). */
export function unaryOutputDType(op: UnaryOp, dtype: DType): DType {
  return op === "isNaN" || op === "isInf" ? "bool" : dtype;
}

/** Default parameters of the ops that take some (the ONNX attribute defaults). */
export function defaultUnaryParams(op: UnaryOp): Required<UnaryParams> {
  switch (op) {
    case "leakyRelu":
      return { alpha: 0.01, beta: 0 };
    case "hardSigmoid":
      return { alpha: 0.2, beta: 0.5 };
    case "clip": // no bound (integer tensors: saturated to the i32 range on the GPU)
      return { alpha: -Infinity, beta: Infinity };
    case "affine":
      return { alpha: 1, beta: 0 };
    case "selu":
      return { alpha: 1.67326319217681884765625, beta: 1.05070102214813232421875 };
    case "shrink":
      return { alpha: 0.5, beta: 0 };
    case "isInf":
      return { alpha: 1, beta: 1 };
    case "elu":
    case "celu":
    case "thresholdedRelu":
    case "swish":
      return { alpha: 1, beta: 0 };
    default:
      return { alpha: 0, beta: 0 };
  }
}

/** Binary operators: op code (OP_* in shaders/binary.wgsl) and the kinds of `a` they accept. */
export const BINARY_OPS = {
  add: { code: 0, kinds: ["float", "int"] },
  sub: { code: 1, kinds: ["float", "int"] },
  mul: { code: 2, kinds: ["float", "int"] },
  div: { code: 3, kinds: ["float", "int"] },
  pow: { code: 4, kinds: ["float", "int"] },
  mod: { code: 5, kinds: ["float", "int"] },
  fmod: { code: 6, kinds: ["float", "int"] },
  max: { code: 7, kinds: ["float", "int"] },
  min: { code: 8, kinds: ["float", "int"] },
  equal: { code: 9, kinds: ["float", "int", "bool"] },
  less: { code: 10, kinds: ["float", "int"] },
  greater: { code: 11, kinds: ["float", "int"] },
  lessOrEqual: { code: 12, kinds: ["float", "int"] },
  greaterOrEqual: { code: 13, kinds: ["float", "int"] },
  and: { code: 14, kinds: ["bool"] },
  or: { code: 15, kinds: ["bool"] },
  xor: { code: 16, kinds: ["bool"] },
  prelu: { code: 17, kinds: ["float", "int"] },
  bitwiseAnd: { code: 18, kinds: ["int"] },
  bitwiseOr: { code: 19, kinds: ["int"] },
  bitwiseXor: { code: 20, kinds: ["int"] },
} as const satisfies Record<string, { code: number; kinds: readonly DTypeKind[] }>;

export type BinaryOp = keyof typeof BINARY_OPS;

/** Whether `op` accepts a first input of `dtype` (the second must have the same kind, except
 * Pow's exponent, which may be any number type). */
export function binarySupports(op: BinaryOp, dtype: DType): boolean {
  return (BINARY_OPS[op].kinds as readonly DTypeKind[]).includes(dtypeKind(dtype));
}

const COMPARISONS: ReadonlySet<BinaryOp> = new Set([
  "equal",
  "less",
  "greater",
  "lessOrEqual",
  "greaterOrEqual",
]);

/** The output dtype of `op` on inputs of dtype `a` (comparisons give bool; Pow keeps the base's
 * type whatever the exponent's). */
export function binaryOutputDType(op: BinaryOp, a: DType): DType {
  return COMPARISONS.has(op) ? "bool" : a;
}

/** ONNX Sum, Mean, Max and Min over any number of inputs. */
export type VariadicOp = "sum" | "mean" | "max" | "min";
