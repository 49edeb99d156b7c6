/** Reductions over arbitrary axes (shaders/reduce.wgsl), and the row-split heuristic shared by
 * the row-wise kernels (softmax, layernorm, lpnorm, argmax). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  storageType,
} from "../gpu/mod.ts";
import { type DType, shapeString, sizeOf } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import { normAxes, type ReduceOp, reduceShape } from "./reduce_shape.ts";
import { contiguousStrides } from "./shape.ts";

/** Op codes of shaders/reduce.wgsl (`OP` override). */
export const REDUCE_OP_CODES: Record<ReduceOp, number> = {
  sum: 0,
  mean: 1,
  max: 2,
  min: 3,
  prod: 4,
  l1: 5,
  l2: 6,
  sumSquare: 7,
  logSum: 8,
  logSumExp: 9,
};

export const REDUCE_OPS = Object.keys(REDUCE_OP_CODES) as ReduceOp[];

/** How a row-wise kernel shares out work: one invocation per output row (`thread`) or one
 * workgroup per row with a tree reduction (`group`). */
export type RowStrategy = "thread" | "group";

/** Invocations per workgroup for the row-wise kernels (64+ keeps llvmpipe's SIMD lanes busy). */
export const ROW_WG = 64;

/** Either split is correct; this picks the faster. On llvmpipe one invocation per row wins at
 * every size (a workgroup's barriers and per-lane loads cost more than its parallelism gains;
 * docs/engine.md). On GPUs a workgroup per
 * row pays off when rows are long, or too few for one invocation each to fill the device. */
export function chooseRowStrategy(gpu: Gpu, rows: number, rowLength: number): RowStrategy {
  if (gpu.summary.isLlvmpipe) return "thread";
  if (rowLength >= 1024) return "group";
  if (rowLength >= 64 && rows < 1024) return "group";
  return "thread";
}

interface Dims {
  shape: number[];
  strides: number[];
}

/** Splits `shape` into coalesced kept and reduced dims with their input strides. Size-1 dims
 * vanish; neighbouring dims of the same kind merge (row-major makes them one dim). */
export function coalesceReduction(
  shape: readonly number[],
  axes: readonly number[],
): { kept: Dims; reduced: Dims } {
  const reduced = new Set(axes);
  const strides = contiguousStrides(shape);
  const kept: Dims = { shape: [], strides: [] };
  const red: Dims = { shape: [], strides: [] };
  let lastKind: "kept" | "reduced" | undefined;
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const kind = reduced.has(i) ? "reduced" : "kept";
    const dims = kind === "reduced" ? red : kept;
    if (kind === lastKind) {
      // Previous dim of the same kind is directly outside this one: merge.
      dims.shape[dims.shape.length - 1] *= shape[i];
      dims.strides[dims.strides.length - 1] = strides[i];
    } else {
      dims.shape.push(shape[i]);
      dims.strides.push(strides[i]);
    }
    lastKind = kind;
  }
  if (kept.shape.length === 0) kept.shape.push(1), kept.strides.push(0);
  if (red.shape.length === 0) red.shape.push(1), red.strides.push(0);
  return { kept, reduced: red };
}

const MAX_DIMS = 8;

function f32Bits(v: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, v, true);
  return dv.getUint32(0, true);
}

/** Identity of `op` as accumulator bits (the value an empty reduction gives before finishing). */
function identityBits(op: ReduceOp, acc: "f32" | "i32" | "u32"): number {
  const isFloat = acc === "f32";
  switch (op) {
    case "prod":
      return isFloat ? f32Bits(1) : 1;
    case "max":
      return isFloat ? f32Bits(-Infinity) : acc === "i32" ? 0x80000000 : 0;
    case "min":
      return isFloat ? f32Bits(Infinity) : acc === "i32" ? 0x7fffffff : 0xffffffff;
    default:
      return 0;
  }
}

/** Accumulator type: f32 for floats and for integer ops that need log/exp/sqrt. */
function accumulatorType(op: ReduceOp, dtype: DType): "f32" | "i32" | "u32" {
  const t = storageType(dtype);
  if (t === "f32") return "f32";
  if (op === "l2" || op === "logSum" || op === "logSumExp") return "f32";
  return t;
}

export interface ReduceOptions {
  /** Force a work split (tests); default chooses by size. */
  strategy?: RowStrategy;
}

/** Reduces `x` over `axes` into `out` (shape `reduceShape(x.shape, axes, keepdims)`, same
 * dtype). `axes` may be negative, in any order; an empty list reduces nothing (each output is
 * the op applied to one element, ONNX's noop_with_empty_axes). Bool inputs: max/min only. */
export function prepareReduce(
  gpu: Gpu,
  owner: ResourceOwner,
  op: ReduceOp,
  x: GpuTensor,
  out: GpuTensor,
  axes: readonly number[],
  keepdims = true,
  options: ReduceOptions = {},
): Dispatch[] {
  const norm = normAxes(x.shape, axes, `reduce ${op}`);
  const expected = reduceShape(x.shape, norm, keepdims);
  if (sizeOf(expected) !== sizeOf(out.shape)) {
    throw new EngineError(
      `reduce ${op}: output ${shapeString(out.shape)} does not match ${shapeString(expected)}`,
    );
  }
  if (out.dtype !== x.dtype) {
    throw new EngineError(`reduce ${op}: output dtype ${out.dtype} differs from ${x.dtype}`);
  }
  if (x.dtype === "bool" && op !== "max" && op !== "min") {
    throw new EngineError(`reduce ${op}: bool input supports only max and min`);
  }
  const outCount = sizeOf(expected);
  if (outCount === 0) return [];
  const redCount = norm.reduce((n, a) => n * x.shape[a], 1);
  const { kept, reduced } = redCount === 0
    ? { kept: coalesceReduction(x.shape, norm).kept, reduced: { shape: [0], strides: [0] } }
    : coalesceReduction(x.shape, norm);
  if (kept.shape.length > MAX_DIMS || reduced.shape.length > MAX_DIMS) {
    throw new EngineError(`reduce ${op}: ${shapeString(x.shape)} needs more than ${MAX_DIMS} dims`);
  }
  const acc = accumulatorType(op, x.dtype);
  const strategy = options.strategy ?? chooseRowStrategy(gpu, outCount, redCount);
  const uniform = owner.own(createUniform(gpu, "reduce", {
    out_count: outCount,
    red_count: redCount,
    kept_rank: kept.shape.length,
    red_rank: reduced.shape.length,
    identity: identityBits(op, acc),
    max_identity: identityBits("max", acc),
    kept_shape: kept.shape,
    kept_strides: kept.strides,
    red_shape: reduced.shape,
    red_strides: reduced.strides,
  }, `reduce ${op}`));
  const spec = {
    shader: "reduce",
    entryPoint: strategy === "group" ? "per_row" : "per_output",
    constants: {
      OP: REDUCE_OP_CODES[op],
      WG: ROW_WG,
      ROUND_F16: x.dtype === "float16" ? 1 : 0,
      FLOAT_ACC: acc === "f32" ? 1 : 0,
    },
    placeholders: { T: storageType(x.dtype), A: acc },
  };
  const workgroups = strategy === "group" ? outCount : Math.ceil(outCount / ROW_WG);
  return [prepareDispatch(gpu, spec, [x, out, uniform], workgroups)];
}
