/** Host bindings of the elementwise kernels (shaders/unary.wgsl, shaders/binary.wgsl): unary
 * activations and math functions, Cast, binary and ternary operators with numpy broadcasting,
 * and variadic Sum/Mean/Max/Min chained from binary dispatches. Independent of ONNX: models and
 * the trainer call these directly. Outputs must not share a buffer with an input (WebGPU forbids
 * reading and writing one buffer in a dispatch). The operator catalogue (names, op codes, dtypes,
 * defaults) is elementwise_shape.ts. */
import {
  type Binding,
  createUniform,
  type Dispatch,
  type Gpu,
  GPU_ELEMENT_BYTES,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  STORAGE_USAGE,
  type UniformValues,
} from "../gpu/mod.ts";
import { type DType, NARROW_INTS, shapeString, sizeOf } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import { planBroadcast, type SourceIndex } from "./broadcast.ts";
import {
  BINARY_OPS,
  type BinaryOp,
  binaryOutputDType,
  binarySupports,
  defaultUnaryParams,
  dtypeKind,
  UNARY_OPS,
  type UnaryOp,
  unaryOutputDType,
  type UnaryParams,
  unarySupports,
  type VariadicOp,
} from "./elementwise_shape.ts";
import { broadcastShapes, checkSameSize } from "./shape.ts";

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

// ---------------------------------------------------------------------------------------------
// Unary

/** Bits of `value` as the shader reads it for `dtype` (f32, or i32 for integer tensors). */
function paramBits(value: number, dtype: DType): number {
  const view = new DataView(new ArrayBuffer(4));
  if (kindOf(dtype) === KIND_I32) {
    view.setInt32(0, Math.max(-2147483648, Math.min(2147483647, Math.trunc(value))), true);
  } else view.setFloat32(0, value, true);
  return view.getUint32(0, true);
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
  checkSameSize(`unary ${op}`, x.shape, out.shape);
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
  const uniform = owner.own(createUniform(gpu, "unary", {
    count: words,
    alpha: bits(params.alpha ?? defaults.alpha),
    beta: bits(params.beta ?? defaults.beta),
  }, `unary ${op}`));
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

const MODE_CODE = { identity: 0, block: 1, strided: 2 } as const;

/** The uniform (of shaders/binary.wgsl's Params) and override constants describing how each
 * input broadcasts to `outShape`. */
function broadcastSetup(
  what: string,
  inputs: readonly GpuTensor[],
  outShape: readonly number[],
): { params: UniformValues; modes: number[] } {
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
  const params = {
    count: sizeOf(outShape),
    rank: plan.shape.length,
    inner,
    extent,
    shape: plan.shape,
    strides,
  };
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
  const uniform = owner.own(createUniform(gpu, "binary", params, `binary ${op}`));
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
  const uniform = owner.own(createUniform(gpu, "binary", params, what));
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
  if (op === "mean" && dtypeKind(out.dtype) !== "float") {
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
