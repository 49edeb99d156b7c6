/** Host bindings of the elementwise kernels (shaders/unary.wgsl, shaders/binary.wgsl): unary
 * activations and math functions, Cast, binary and ternary operators with numpy broadcasting,
 * and variadic Sum/Mean/Max/Min chained from binary dispatches. Independent of ONNX: models and
 * the trainer call these directly. Outputs must not share a buffer with an input (WebGPU forbids
 * reading and writing one buffer in a dispatch). */
import {
  type Binding,
  createUniform,
  type Dispatch,
  type Gpu,
  GPU_ELEMENT_BYTES,
  type GpuTensor,
  Params,
  prepareDispatch,
  type ResourceOwner,
  STORAGE_USAGE,
} from "../gpu/mod.ts";
import { type DType, NARROW_INTS, shapeString, sizeOf } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import { planBroadcast, type SourceIndex } from "./broadcast.ts";
import { broadcastShapes } from "./shape.ts";

const WG = 256;
/** Output elements per invocation of the broadcasting kernels (RUN in shaders/binary.wgsl). */
const RUN = 8;
/** Merged broadcast rank the binary kernel's uniform holds (MODE_STRIDED). */
export const MAX_BROADCAST_RANK = 8;

/** How the kernels read a dtype's 32-bit words (KIND_* in the shaders). */
const KIND_F32 = 0;
const KIND_I32 = 1;
const KIND_BOOL = 2;

function kindOf(dtype: DType): number {
  switch (dtype) {
    case "float32":
    case "float16":
      return KIND_F32;
    case "int32":
    case "int64":
    case "int8":
    case "uint8":
      return KIND_I32;
    case "bool":
      return KIND_BOOL;
  }
}

/** Integer ops whose results stay within their inputs' range (or are bool): on int8 and uint8
 * tensors (i32 words holding in-range values) they run unchanged. The other integer ops (add,
 * mul, neg, abs, bitwiseNot...) compute in i32 as for int32 and a cast pass then wraps the result
 * to 8 bits, numpy's modular int8/uint8 arithmetic (one more dispatch and an int32 scratch). */
const IN_RANGE: ReadonlySet<string> = new Set([
  "identity",
  "cast",
  "relu",
  "sign",
  "clip",
  "max",
  "min",
  "mod",
  "fmod",
  "bitwiseAnd",
  "bitwiseOr",
  "bitwiseXor",
  "equal",
  "less",
  "greater",
  "lessOrEqual",
  "greaterOrEqual",
]);

function needsWrap(op: string, out: DType): boolean {
  return NARROW_INTS.includes(out) && !IN_RANGE.has(op);
}

/** The same i32 words seen as int32 (int8/uint8 values are sign- or zero-extended words). */
function asInt32(t: GpuTensor): GpuTensor {
  return NARROW_INTS.includes(t.dtype) ? { ...t, dtype: "int32" } : t;
}

/** An owned int32 scratch of `out`'s shape: where a wrapped op computes before the cast. */
function wideScratch(gpu: Gpu, owner: ResourceOwner, out: GpuTensor, label: string): GpuTensor {
  const size = Math.max(16, Math.ceil(sizeOf(out.shape) / 4) * 16);
  const buffer = owner.own(gpu.device.createBuffer({ size, usage: STORAGE_USAGE, label }));
  return { buffer, shape: out.shape, dtype: "int32" };
}

/** How the cast kernel narrows an integer result (NARROW in shaders/unary.wgsl). */
function narrowCode(dtype: DType): number {
  return dtype === "int8" ? 1 : dtype === "uint8" ? 2 : 0;
}

type Kind = "float" | "int" | "bool";
function kindName(dtype: DType): Kind {
  return dtype === "bool" ? "bool" : dtype.startsWith("float") ? "float" : "int";
}

// ---------------------------------------------------------------------------------------------
// Unary

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
} as const satisfies Record<string, { code: number; kinds: readonly Kind[] }>;

export type UnaryOp = keyof typeof UNARY_OPS;

/** Whether `op` accepts input tensors of `dtype`. */
export function unarySupports(op: UnaryOp, dtype: DType): boolean {
  return (UNARY_OPS[op].kinds as readonly Kind[]).includes(kindName(dtype));
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

/** Bits of `value` as the shader reads it for `dtype` (f32, or i32 for integer tensors). */
function paramBits(value: number, dtype: DType): number {
  const view = new DataView(new ArrayBuffer(4));
  if (kindOf(dtype) === KIND_I32) {
    view.setInt32(0, Math.max(-2147483648, Math.min(2147483647, Math.trunc(value))), true);
  } else view.setFloat32(0, value, true);
  return view.getUint32(0, true);
}

function checkSameSize(what: string, x: GpuTensor, out: GpuTensor): void {
  if (sizeOf(x.shape) !== sizeOf(out.shape)) {
    throw new EngineError(
      `${what}: output ${shapeString(out.shape)} does not match input ${shapeString(x.shape)}`,
    );
  }
}

/** out = op(x) elementwise (same element count). float16 outputs are rounded to half. */
export function prepareUnary(
  gpu: Gpu,
  owner: ResourceOwner,
  op: UnaryOp,
  x: GpuTensor,
  out: GpuTensor,
  params: UnaryParams = {},
): Dispatch[] {
  const spec = UNARY_OPS[op];
  if (!unarySupports(op, x.dtype)) {
    throw new EngineError(`unary ${op} does not support ${x.dtype} tensors`);
  }
  if (op !== "cast" && out.dtype !== unaryOutputDType(op, x.dtype)) {
    throw new EngineError(`unary ${op}: output dtype ${out.dtype}, expected ${x.dtype}`);
  }
  checkSameSize(`unary ${op}`, x, out);
  const defaults = defaultUnaryParams(op);
  const count = sizeOf(out.shape);
  if (count === 0) return [];
  if (needsWrap(op, out.dtype)) {
    const wide = wideScratch(gpu, owner, out, `unary ${op} int32`);
    return [
      ...prepareUnary(gpu, owner, op, asInt32(x), wide, params),
      ...prepareCast(gpu, owner, wide, out),
    ];
  }
  // Counts in 4s map vec4<u32> words (one 16-byte access per 4 values: ~4x cheaper on
  // llvmpipe, whose buffer accesses cost per access, not per byte); needs whole-vec4 buffers.
  const vec4 = count % 4 === 0 &&
    [x.buffer, out.buffer].every((b) => b.size >= 16 && b.size % 16 === 0);
  const words = vec4 ? count / 4 : count;
  const isBoolFlag = op === "isInf";
  const bits = (v: number) => isBoolFlag ? (v ? 1 : 0) : paramBits(v, x.dtype);
  const uniform = owner.own(createUniform(
    gpu,
    new Params().u32(
      words,
      bits(params.alpha ?? defaults.alpha),
      bits(params.beta ?? defaults.beta),
    ),
    `unary ${op}`,
  ));
  const constants: Record<string, number> = {
    WG,
    OP: spec.code,
    IN_KIND: kindOf(x.dtype),
    OUT_KIND: kindOf(out.dtype),
    ROUND_F16: out.dtype === "float16" && (op !== "cast" || x.dtype !== "float16") ? 1 : 0,
    NARROW: op === "cast" ? narrowCode(out.dtype) : 0,
  };
  return [prepareDispatch(
    gpu,
    {
      shader: "unary",
      constants,
      placeholders: vec4 ? { WORD: "vec4<u32>", APPLY: "apply4" } : { WORD: "u32", APPLY: "apply" },
    },
    [x, out, uniform],
    Math.ceil(words / WG),
  )];
}

/** out = x converted to out.dtype (ONNX Cast): float -> int truncates toward zero (saturating at
 * the i32 range), -> int8/uint8 then keeps the low 8 bits (two's complement wrap, as numpy's
 * astype and C casts do; ONNX leaves out-of-range results undefined), int -> int8/uint8 wraps,
 * -> bool is `!= 0`, -> float16 rounds to nearest even, int64 <-> int32 keeps the 32-bit value. */
export function prepareCast(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
): Dispatch[] {
  return prepareUnary(gpu, owner, "cast", x, out);
}

// ---------------------------------------------------------------------------------------------
// Binary and ternary

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
} as const satisfies Record<string, { code: number; kinds: readonly Kind[] }>;

export type BinaryOp = keyof typeof BINARY_OPS;

/** Whether `op` accepts a first input of `dtype` (the second must have the same kind, except
 * Pow's exponent, which may be any number type). */
export function binarySupports(op: BinaryOp, dtype: DType): boolean {
  return (BINARY_OPS[op].kinds as readonly Kind[]).includes(kindName(dtype));
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

const MODE_CODE = { identity: 0, block: 1, strided: 2 } as const;

/** Uniform and override constants describing how each input broadcasts to `outShape`. */
function broadcastSetup(
  what: string,
  inputs: readonly GpuTensor[],
  outShape: readonly number[],
): { params: Params; modes: number[] } {
  const full = broadcastShapes(outShape, ...inputs.map((t) => t.shape));
  if (!full || full.length !== outShape.length || full.some((d, i) => d !== outShape[i])) {
    throw new EngineError(
      `${what}: inputs ${inputs.map((t) => shapeString(t.shape)).join(", ")} do not broadcast ` +
        `to output ${shapeString(outShape)}`,
    );
  }
  const plan = planBroadcast(inputs.map((t) => t.shape), outShape);
  const strided = plan.sources.some((s) => s.kind === "strided");
  if (strided && plan.shape.length > MAX_BROADCAST_RANK) {
    throw new EngineError(
      `${what}: broadcast of ${inputs.map((t) => shapeString(t.shape)).join(", ")} needs ` +
        `${plan.shape.length} dims after merging; the kernel supports ${MAX_BROADCAST_RANK}`,
    );
  }
  const inner = [1, 1, 1, 1];
  const extent = [1, 1, 1, 1];
  const strides: number[] = new Array(24).fill(0);
  plan.sources.forEach((s: SourceIndex, k) => {
    if (s.kind === "block") {
      inner[k] = s.inner;
      extent[k] = s.extent;
    } else if (s.kind === "strided") {
      s.strides.forEach((v, d) => strides[k * 8 + d] = v);
    }
  });
  const params = new Params()
    .u32(sizeOf(outShape), plan.shape.length)
    .align16()
    .u32(...inner)
    .u32(...extent)
    .u32Array(plan.shape, 2)
    .u32Array(strides, 6);
  return { params, modes: plan.sources.map((s) => MODE_CODE[s.kind]) };
}

/** out = op(a, b) with numpy broadcasting: `a` and `b` must broadcast to out.shape (which may
 * be larger than their own broadcast, e.g. for chained variadic ops). */
export function prepareBinary(
  gpu: Gpu,
  owner: ResourceOwner,
  op: BinaryOp,
  a: GpuTensor,
  b: GpuTensor,
  out: GpuTensor,
): Dispatch[] {
  const spec = BINARY_OPS[op];
  if (!binarySupports(op, a.dtype)) {
    throw new EngineError(`binary ${op} does not support ${a.dtype} tensors`);
  }
  const sameKind = kindOf(a.dtype) === kindOf(b.dtype);
  if (!sameKind && !(op === "pow" && b.dtype !== "bool")) {
    throw new EngineError(`binary ${op}: mixed input dtypes ${a.dtype} and ${b.dtype}`);
  }
  const outDType = binaryOutputDType(op, a.dtype);
  if (out.dtype !== outDType) {
    throw new EngineError(`binary ${op}: output dtype ${out.dtype}, expected ${outDType}`);
  }
  const count = sizeOf(out.shape);
  if (count === 0) return [];
  if (needsWrap(op, out.dtype)) {
    const wide = wideScratch(gpu, owner, out, `binary ${op} int32`);
    return [
      ...prepareBinary(gpu, owner, op, asInt32(a), asInt32(b), wide),
      ...prepareCast(gpu, owner, wide, out),
    ];
  }
  const { params, modes } = broadcastSetup(`binary ${op}`, [a, b], out.shape);
  const uniform = owner.own(createUniform(gpu, params, `binary ${op}`));
  const constants = {
    WG,
    OP: spec.code,
    A_KIND: kindOf(a.dtype),
    B_KIND: kindOf(b.dtype),
    A_MODE: modes[0],
    B_MODE: modes[1],
    ROUND_F16: out.dtype === "float16" ? 1 : 0,
    RUN,
  };
  return [prepareDispatch(
    gpu,
    { shader: "binary", entryPoint: "binary", constants },
    [out, uniform, a, b],
    Math.ceil(count / (WG * RUN)),
  )];
}

/** Ternary operators: op codes of TERNARY_* in shaders/binary.wgsl. */
const TERNARY_OPS = { where: 0, clamp: 1 } as const;

function prepareTernary(
  gpu: Gpu,
  owner: ResourceOwner,
  what: keyof typeof TERNARY_OPS,
  inputs: [GpuTensor, GpuTensor, GpuTensor],
  out: GpuTensor,
): Dispatch[] {
  const count = sizeOf(out.shape);
  if (count === 0) return [];
  const { params, modes } = broadcastSetup(what, inputs, out.shape);
  const uniform = owner.own(createUniform(gpu, params, what));
  const constants = {
    WG,
    OP: TERNARY_OPS[what],
    A_KIND: kindOf(inputs[0].dtype),
    A_MODE: modes[0],
    B_MODE: modes[1],
    C_MODE: modes[2],
    RUN,
  };
  const bindings: Binding[] = [out, uniform, ...inputs];
  return [prepareDispatch(
    gpu,
    { shader: "binary", entryPoint: "ternary", constants },
    bindings,
    Math.ceil(count / (WG * RUN)),
  )];
}

/** out = condition ? x : y (ONNX Where) with numpy broadcasting of all three. */
export function prepareWhere(
  gpu: Gpu,
  owner: ResourceOwner,
  condition: GpuTensor,
  x: GpuTensor,
  y: GpuTensor,
  out: GpuTensor,
): Dispatch[] {
  if (condition.dtype !== "bool") {
    throw new EngineError(`where: condition is ${condition.dtype}, expected bool`);
  }
  if (x.dtype !== y.dtype || out.dtype !== x.dtype) {
    throw new EngineError(`where: dtypes ${x.dtype}, ${y.dtype} -> ${out.dtype} differ`);
  }
  return prepareTernary(gpu, owner, "where", [condition, x, y], out);
}

/** out = min(max(x, lo), hi) with broadcasting (ONNX Clip with bounds known only at run time;
 * like numpy, hi wins when lo > hi). */
export function prepareClamp(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  lo: GpuTensor,
  hi: GpuTensor,
  out: GpuTensor,
): Dispatch[] {
  if (x.dtype === "bool" || lo.dtype !== x.dtype || hi.dtype !== x.dtype || out.dtype !== x.dtype) {
    throw new EngineError(`clamp: dtypes ${x.dtype}, ${lo.dtype}, ${hi.dtype} -> ${out.dtype}`);
  }
  return prepareTernary(gpu, owner, "clamp", [x, lo, hi], out);
}

// ---------------------------------------------------------------------------------------------
// Variadic

export type VariadicOp = "sum" | "mean" | "max" | "min";

const VARIADIC_STEP: Record<VariadicOp, BinaryOp> = {
  sum: "add",
  mean: "add",
  max: "max",
  min: "min",
};

/** out = op(inputs[0], inputs[1], ...) with numpy broadcasting (ONNX Sum/Mean/Max/Min), as a
 * chain of binary dispatches that ping-pong between `out` and one owned scratch buffer (a
 * dispatch cannot read and write the same buffer), arranged so the last step lands in `out`.
 * Mean scales the sum by 1/n in a final unary step. */
export function prepareVariadic(
  gpu: Gpu,
  owner: ResourceOwner,
  op: VariadicOp,
  inputs: readonly GpuTensor[],
  out: GpuTensor,
): Dispatch[] {
  if (inputs.length === 0) throw new EngineError(`${op}: needs at least one input`);
  if (inputs.some((t) => t.dtype !== out.dtype)) {
    throw new EngineError(
      `${op}: input dtypes ${inputs.map((t) => t.dtype).join(", ")} -> ${out.dtype} differ`,
    );
  }
  if (op === "mean" && kindName(out.dtype) !== "float") {
    throw new EngineError(`mean: ${out.dtype} tensors are not supported`);
  }
  const count = sizeOf(out.shape);
  if (count === 0) return [];
  if (inputs.length === 1) {
    if (sizeOf(inputs[0].shape) === count) {
      return prepareUnary(gpu, owner, "identity", inputs[0], out);
    }
    return prepareBinary(gpu, owner, op === "min" ? "min" : "max", inputs[0], inputs[0], out);
  }
  // Binary steps, plus the final scale for mean; each must write a buffer its input is not in.
  const steps = inputs.length - 1 + (op === "mean" ? 1 : 0);
  const scratch: GpuTensor | undefined = steps > 1
    ? {
      buffer: owner.own(gpu.device.createBuffer({
        size: Math.max(16, count * GPU_ELEMENT_BYTES),
        usage: STORAGE_USAGE,
        label: `${op} scratch`,
      })),
      shape: out.shape,
      dtype: out.dtype,
    }
    : undefined;
  // Step s (1-based) writes `out` when steps - s is even, so the last step writes `out`.
  const target = (s: number): GpuTensor => (steps - s) % 2 === 0 ? out : scratch!;
  const dispatches: Dispatch[] = [];
  let acc = inputs[0];
  for (let k = 1; k < inputs.length; k++) {
    const dst = target(k);
    dispatches.push(...prepareBinary(gpu, owner, VARIADIC_STEP[op], acc, inputs[k], dst));
    acc = dst;
  }
  if (op === "mean") {
    dispatches.push(
      ...prepareUnary(gpu, owner, "affine", acc, out, { alpha: 1 / inputs.length, beta: 0 }),
    );
  }
  return dispatches;
}
