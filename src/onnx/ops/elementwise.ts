/** ONNX elementwise operators: unary math and activations, Clip, Cast/CastLike, binary arithmetic
 * and comparisons with numpy broadcasting (and the pre-opset-7 `broadcast`/`axis` form), PRelu,
 * variadic Sum/Mean/Max/Min and Where. Each maps onto the kernels of src/kernels/elementwise.ts;
 * the CPU path runs the matching references of src/kernels/elementwise_ref.ts. */
import { type CpuTensor, cpuTensor, type DType, intRange, shapeString } from "../../util/tensor.ts";
import { createStorageBuffer, type GpuTensor, toGpuArray } from "../../gpu/mod.ts";
import { broadcastShapes } from "../../kernels/shape.ts";
import {
  prepareBinary,
  prepareCast,
  prepareClamp,
  prepareUnary,
  prepareVariadic,
  prepareWhere,
} from "../../kernels/elementwise.ts";
import {
  type BinaryOp,
  binaryOutputDType,
  binarySupports,
  type UnaryOp,
  unaryOutputDType,
  type UnaryParams,
  unarySupports,
  type VariadicOp,
} from "../../kernels/elementwise_shape.ts";
import {
  binaryRef,
  castRef,
  unaryRef,
  variadicRef,
  whereRef,
} from "../../kernels/elementwise_ref.ts";
import { UnsupportedFeatureError } from "../graph.ts";
import { engineDType, ONNX_TYPE, onnxTypeName } from "../tensor_proto.ts";
import {
  attrFloat,
  attrInt,
  attrString,
  NodeError,
  type OnnxNode,
  type OpContext,
  type OpImpl,
  type TensorInfo,
} from "../types.ts";
import { onNode, required, type Shaped } from "./common.ts";

/** The same data under another shape (same element count). */
function withShape<T extends Shaped>(t: T, shape: readonly number[]): T {
  return { ...t, shape: [...shape] };
}

function broadcastOrThrow(node: OnnxNode, shapes: readonly (readonly number[])[]): number[] {
  const out = broadcastShapes(...shapes);
  if (!out) {
    throw new NodeError(
      node,
      `input shapes ${shapes.map(shapeString).join(", ")} do not broadcast together`,
    );
  }
  return out;
}

// ---- unary ----

type ParamsOf = (node: OnnxNode) => UnaryParams;

/** An operator computing `op(x)` with parameters read from the node's attributes. */
function unary(op: UnaryOp | ((node: OnnxNode) => UnaryOp), params?: ParamsOf): OpImpl {
  const resolve = (node: OnnxNode) => typeof op === "function" ? op(node) : op;
  const check = (node: OnnxNode, x: Shaped): UnaryOp => {
    const k = resolve(node);
    if (!unarySupports(k, x.dtype)) throw new NodeError(node, `${x.dtype} input is not supported`);
    return k;
  };
  return {
    infer({ node }, inputs) {
      const x = required(node, inputs, 0);
      return [{ dtype: unaryOutputDType(check(node, x), x.dtype), shape: x.shape }];
    },
    cpu({ node }, inputs) {
      const x = required(node, inputs, 0);
      const k = check(node, x);
      return [onNode(node, () => unaryRef(k, x, params?.(node)))];
    },
    gpu(ctx, inputs, [out]) {
      const x = required(ctx.node, inputs, 0);
      return prepareUnary(ctx.gpu, ctx, check(ctx.node, x), x, out, params?.(ctx.node));
    },
  };
}

const alphaAttr = (fallback: number): ParamsOf => (node) => ({
  alpha: attrFloat(node, "alpha", fallback),
});

function geluKind(node: OnnxNode): UnaryOp {
  const approximate = attrString(node, "approximate", "none");
  if (approximate === "none") return "gelu";
  if (approximate === "tanh") return "geluTanh";
  throw new NodeError(node, `unknown approximate '${approximate}' (expected none or tanh)`);
}

// ---- Clip ----

// Opset < 11 bounds default to the float range (numeric_limits<float>::lowest/max).
const FLOAT_MAX = 3.4028234663852886e38;

/** Clip bounds given as attributes (opset < 11) or constant inputs (undefined: not constant). */
function clipConstBounds(
  ctx: OpContext,
  inputs: readonly (Shaped & { value?: CpuTensor } | undefined)[],
): UnaryParams | undefined {
  if (ctx.opset < 11) {
    return {
      alpha: attrFloat(ctx.node, "min", -FLOAT_MAX),
      beta: attrFloat(ctx.node, "max", FLOAT_MAX),
    };
  }
  const bound = (i: number): number | undefined | null => {
    const t = inputs[i];
    if (!t) return undefined; // omitted: no bound
    if (!t.value) return null; // computed at run time
    if (t.value.data.length !== 1) {
      throw new NodeError(ctx.node, `input ${i} must be a scalar, got ${shapeString(t.shape)}`);
    }
    return t.value.data[0];
  };
  const lo = bound(1);
  const hi = bound(2);
  if (lo === null || hi === null) return undefined;
  return { alpha: lo ?? -Infinity, beta: hi ?? Infinity };
}

function checkClipInputs(node: OnnxNode, inputs: readonly (Shaped | undefined)[]): Shaped {
  const x = required(node, inputs, 0);
  if (x.dtype === "bool") throw new NodeError(node, "bool input is not supported");
  for (const i of [1, 2]) {
    const t = inputs[i];
    if (t && t.dtype !== x.dtype) {
      throw new NodeError(node, `input ${i} is ${t.dtype} but the input is ${x.dtype}`);
    }
    if (t && t.shape.reduce((p, d) => p * d, 1) !== 1) {
      throw new NodeError(node, `input ${i} must be a scalar, got ${shapeString(t.shape)}`);
    }
  }
  return x;
}

const Clip: OpImpl = {
  infer({ node }, inputs) {
    const x = checkClipInputs(node, inputs);
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  cpu(ctx, inputs) {
    const x = checkClipInputs(ctx.node, inputs);
    const infos = inputs.map((t) => t && { ...t, value: t });
    const bounds = clipConstBounds(ctx, infos)!;
    return [onNode(ctx.node, () => unaryRef("clip", x as CpuTensor, bounds))];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    const bounds = clipConstBounds(ctx, ctx.inputInfos);
    if (bounds) return prepareUnary(ctx.gpu, ctx, "clip", x, out, bounds);
    // A bound computed at run time: clamp against tensors, filling an omitted one with the
    // type's extreme value.
    const extreme = (i: number, value: number): GpuTensor => {
      const t = inputs[i];
      if (t) return t;
      const host = cpuTensor(x.dtype, [], [value]);
      const buffer = ctx.own(createStorageBuffer(ctx.gpu, toGpuArray(host), "clip bound"));
      return { buffer, shape: [], dtype: x.dtype };
    };
    // Integer extremes per dtype (int64 runs as i32); int8/uint8 must get their own, which the
    // 8-bit host tensor holds without wrapping.
    const range = intRange(x.dtype === "int64" ? "int32" : x.dtype);
    const lo = extreme(1, range ? range.min : -Infinity);
    const hi = extreme(2, range ? range.max : Infinity);
    return prepareClamp(ctx.gpu, ctx, x, lo, hi, out);
  },
};

// ---- Cast / CastLike ----

function castTarget(node: OnnxNode): DType {
  const to = node.attrs.get("to");
  let code: number | undefined;
  if (typeof to === "number") code = to;
  else if (typeof to === "string") {
    // Opset 1 names the type: "FLOAT", "FLOAT16", "INT64"...
    const names: Record<string, number> = {
      FLOAT: ONNX_TYPE.FLOAT,
      DOUBLE: ONNX_TYPE.DOUBLE,
      INT32: ONNX_TYPE.INT32,
      INT64: ONNX_TYPE.INT64,
      BOOL: ONNX_TYPE.BOOL,
      FLOAT16: ONNX_TYPE.FLOAT16,
      INT8: ONNX_TYPE.INT8,
      UINT8: ONNX_TYPE.UINT8,
    };
    code = names[to.toUpperCase()];
    if (code === undefined) {
      throw new UnsupportedFeatureError(node, `cast to ${to} is not supported`);
    }
  } else throw new NodeError(node, "missing attribute 'to'");
  // float64 runs as float32, as the loader stores it (a graph input or output of float64 is
  // refused when the model loads); int8/uint8 wrap (see prepareCast); other targets (bfloat16,
  // 16-bit and 4-bit ints, float8) would need their own rounding, so they stay unsupported
  // rather than silently wrong.
  const dtype = code === ONNX_TYPE.DOUBLE ? "float32" : engineDType(code);
  if (!dtype) {
    throw new UnsupportedFeatureError(node, `cast to ${onnxTypeName(code)} is not supported`);
  }
  return dtype;
}

function castOp(
  target: (node: OnnxNode, inputs: readonly (Shaped | undefined)[]) => DType,
): OpImpl {
  return {
    infer({ node }, inputs) {
      const x = required(node, inputs, 0);
      return [{ dtype: target(node, inputs), shape: x.shape }];
    },
    cpu({ node }, inputs) {
      const x = required(node, inputs, 0);
      return [castRef(x, target(node, inputs))];
    },
    gpu(ctx, inputs, [out]) {
      return prepareCast(ctx.gpu, ctx, required(ctx.node, inputs, 0), out);
    },
  };
}

// ---- binary ----

/** Operators with the pre-opset-7 broadcast attributes. */
const LEGACY_BROADCAST_BEFORE = 7;

/** The shape input 1 is read with: before opset 7 `broadcast=1` aligns B's dims with A's from
 * `axis` (default: trailing), otherwise the shapes must match; from opset 7 numpy rules. */
function effectiveShapeB(ctx: OpContext, a: Shaped, b: Shaped): readonly number[] {
  const node = ctx.node;
  if (ctx.opset >= LEGACY_BROADCAST_BEFORE || !node.attrs.has("broadcast")) return b.shape;
  if (attrInt(node, "broadcast", 0) === 0) return b.shape;
  const rankA = a.shape.length;
  const rankB = b.shape.length;
  const axis = attrInt(node, "axis", rankA - rankB);
  const start = axis < 0 ? axis + rankA : axis;
  if (start < 0 || start + rankB > rankA) {
    throw new NodeError(
      node,
      `legacy broadcast of ${shapeString(b.shape)} at axis ${axis} into ${shapeString(a.shape)}`,
    );
  }
  return [...new Array(start).fill(1), ...b.shape, ...new Array(rankA - start - rankB).fill(1)];
}

function checkBinary(node: OnnxNode, op: BinaryOp, a: Shaped, b: Shaped): DType {
  if (!binarySupports(op, a.dtype)) {
    throw new NodeError(node, `${a.dtype} inputs are not supported`);
  }
  // Only Pow's exponent may have its own (numeric) type.
  if (op === "pow" ? b.dtype === "bool" : a.dtype !== b.dtype) {
    throw new NodeError(node, `input dtypes ${a.dtype} and ${b.dtype} do not match`);
  }
  return binaryOutputDType(op, a.dtype);
}

/** Pre-opset-7 PRelu: a 1-D slope of C values applies per channel (dim 1). */
function effectiveSlope(ctx: OpContext, x: Shaped, slope: Shaped): readonly number[] {
  if (ctx.opset >= 7 || slope.shape.length !== 1 || x.shape.length < 3) return slope.shape;
  if (slope.shape[0] !== x.shape[1]) return slope.shape;
  return [slope.shape[0], ...new Array(x.shape.length - 2).fill(1)];
}

function binary(op: BinaryOp | ((node: OnnxNode) => BinaryOp)): OpImpl {
  const resolve = (node: OnnxNode) => typeof op === "function" ? op(node) : op;
  /** Output dtype and shape, and the shape input 1 is read with. */
  const plan = (ctx: OpContext, a: Shaped, b: Shaped) => {
    const k = resolve(ctx.node);
    const dtype = checkBinary(ctx.node, k, a, b);
    const shapeB = k === "prelu" ? effectiveSlope(ctx, a, b) : effectiveShapeB(ctx, a, b);
    const shape = broadcastOrThrow(ctx.node, [a.shape, shapeB]);
    if (k === "prelu" && shape.length !== a.shape.length) {
      throw new NodeError(ctx.node, `slope ${shapeString(b.shape)} is larger than the input`);
    }
    return { op: k, dtype, shape, shapeB };
  };
  return {
    infer(ctx, inputs) {
      const p = plan(ctx, required(ctx.node, inputs, 0), required(ctx.node, inputs, 1));
      return [{ dtype: p.dtype, shape: p.shape }];
    },
    cpu(ctx, inputs) {
      const a = required(ctx.node, inputs, 0);
      const b = required(ctx.node, inputs, 1);
      const p = plan(ctx, a, b);
      return [onNode(ctx.node, () => binaryRef(p.op, a, withShape(b, p.shapeB), p.shape))];
    },
    gpu(ctx, inputs, [out]) {
      const a = required(ctx.node, inputs, 0);
      const b = required(ctx.node, inputs, 1);
      const p = plan(ctx, a, b);
      return prepareBinary(ctx.gpu, ctx, p.op, a, withShape(b, p.shapeB), out);
    },
  };
}

function modKind(node: OnnxNode): BinaryOp {
  return attrInt(node, "fmod", 0) === 1 ? "fmod" : "mod";
}

// ---- variadic ----

function variadic(op: VariadicOp): OpImpl {
  const check = <T extends Shaped>(node: OnnxNode, inputs: readonly (T | undefined)[]) => {
    if (inputs.length === 0) throw new NodeError(node, "needs at least one input");
    const all = inputs.map((_, i) => required(node, inputs, i));
    const dtype = all[0].dtype;
    if (all.some((t) => t.dtype !== dtype)) {
      throw new NodeError(node, `input dtypes ${all.map((t) => t.dtype).join(", ")} differ`);
    }
    if (dtype === "bool" || (op === "mean" && !dtype.startsWith("float"))) {
      throw new NodeError(node, `${dtype} inputs are not supported`);
    }
    return { all, dtype, shape: broadcastOrThrow(node, all.map((t) => t.shape)) };
  };
  return {
    infer({ node }, inputs) {
      const { dtype, shape } = check(node, inputs);
      return [{ dtype, shape }];
    },
    cpu({ node }, inputs) {
      const { all } = check(node, inputs);
      return [onNode(node, () => variadicRef(op, all))];
    },
    gpu(ctx, inputs, [out]) {
      const { all } = check(ctx.node, inputs);
      return prepareVariadic(ctx.gpu, ctx, op, all, out);
    },
  };
}

// ---- Where ----

function checkWhere(node: OnnxNode, inputs: readonly (Shaped | undefined)[]): TensorInfo {
  const c = required(node, inputs, 0);
  const x = required(node, inputs, 1);
  const y = required(node, inputs, 2);
  if (c.dtype !== "bool") throw new NodeError(node, `condition is ${c.dtype}, expected bool`);
  if (x.dtype !== y.dtype) throw new NodeError(node, `X is ${x.dtype} but Y is ${y.dtype}`);
  return { dtype: x.dtype, shape: broadcastOrThrow(node, [c.shape, x.shape, y.shape]) };
}

const Where: OpImpl = {
  infer({ node }, inputs) {
    return [checkWhere(node, inputs)];
  },
  cpu({ node }, inputs) {
    checkWhere(node, inputs);
    return [whereRef(inputs[0]!, inputs[1]!, inputs[2]!)];
  },
  gpu(ctx, inputs, [out]) {
    checkWhere(ctx.node, inputs);
    return prepareWhere(ctx.gpu, ctx, inputs[0]!, inputs[1]!, inputs[2]!, out);
  },
};

/** ONNX operators of the elementwise family, keyed by op type. */
export const elementwiseOps: Record<string, OpImpl> = {
  // unary math
  Abs: unary("abs"),
  Neg: unary("neg"),
  Sqrt: unary("sqrt"),
  Exp: unary("exp"),
  Log: unary("log"),
  Erf: unary("erf"),
  Reciprocal: unary("reciprocal"),
  Floor: unary("floor"),
  Ceil: unary("ceil"),
  Round: unary("round"),
  Sign: unary("sign"),
  Sin: unary("sin"),
  Cos: unary("cos"),
  Tan: unary("tan"),
  Asin: unary("asin"),
  Acos: unary("acos"),
  Atan: unary("atan"),
  Sinh: unary("sinh"),
  Cosh: unary("cosh"),
  Asinh: unary("asinh"),
  Acosh: unary("acosh"),
  Atanh: unary("atanh"),
  IsNaN: unary("isNaN"),
  IsInf: unary("isInf", (node) => ({
    alpha: attrInt(node, "detect_negative", 1),
    beta: attrInt(node, "detect_positive", 1),
  })),
  Not: unary("not"),
  BitwiseNot: unary("bitwiseNot"),
  // activations
  Relu: unary("relu"),
  LeakyRelu: unary("leakyRelu", alphaAttr(0.01)),
  Sigmoid: unary("sigmoid"),
  Tanh: unary("tanh"),
  Gelu: unary(geluKind),
  Softplus: unary("softplus"),
  Softsign: unary("softsign"),
  HardSigmoid: unary("hardSigmoid", (node) => ({
    alpha: attrFloat(node, "alpha", 0.2),
    beta: attrFloat(node, "beta", 0.5),
  })),
  HardSwish: unary("hardSwish"),
  Elu: unary("elu", alphaAttr(1)),
  Selu: unary("selu", (node) => ({
    alpha: attrFloat(node, "alpha", 1.67326319217681884765625),
    beta: attrFloat(node, "gamma", 1.05070102214813232421875),
  })),
  Celu: unary("celu", alphaAttr(1)),
  ThresholdedRelu: unary("thresholdedRelu", alphaAttr(1)),
  Shrink: unary("shrink", (node) => ({
    alpha: attrFloat(node, "lambd", 0.5),
    beta: attrFloat(node, "bias", 0),
  })),
  Mish: unary("mish"),
  Swish: unary("swish", alphaAttr(1)),
  Clip,
  Cast: castOp((node) => castTarget(node)),
  CastLike: castOp((node, inputs) => required(node, inputs, 1).dtype),
  // binary
  Add: binary("add"),
  Sub: binary("sub"),
  Mul: binary("mul"),
  Div: binary("div"),
  Pow: binary("pow"),
  Mod: binary(modKind),
  Equal: binary("equal"),
  Less: binary("less"),
  Greater: binary("greater"),
  LessOrEqual: binary("lessOrEqual"),
  GreaterOrEqual: binary("greaterOrEqual"),
  And: binary("and"),
  Or: binary("or"),
  Xor: binary("xor"),
  BitwiseAnd: binary("bitwiseAnd"),
  BitwiseOr: binary("bitwiseOr"),
  BitwiseXor: binary("bitwiseXor"),
  PRelu: binary("prelu"),
  // variadic
  Sum: variadic("sum"),
  Mean: variadic("mean"),
  Max: variadic("max"),
  Min: variadic("min"),
  Where,
};
