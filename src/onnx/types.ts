/** The contract between the ONNX executor and the operator implementations in `ops/`. */
import type { CpuTensor, DType } from "../util/tensor.ts";
import type { Dispatch, Gpu, GpuTensor, ResourceOwner, StatusSlot } from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import type { TuneOptions, VariantCache } from "../kernels/variants.ts";
import { tryNormalizeAxis } from "../kernels/shape.ts";

/** A decoded attribute value: INT/FLOAT -> number, STRING -> string, INTS/FLOATS -> number[],
 * STRINGS -> string[], TENSOR -> CpuTensor, GRAPH(S) -> unsupported (kept as raw). */
export type AttrValue = number | string | number[] | string[] | CpuTensor | { graph: unknown };

/** Domain of the engine's own operators: the fused nodes that src/onnx/fuse.ts makes, registered
 * as `engine.<opType>`. */
export const ENGINE_DOMAIN = "engine";

export interface OnnxNode {
  /** Node name, or a generated `<opType>_<index>` when the file has none. */
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  /** Input value names; "" marks an omitted optional input. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: ReadonlyMap<string, AttrValue>;
}

/** Static facts about a value at plan time. `value` is set when the value is known on the CPU
 * (initializers, Constant outputs, folded shape arithmetic). */
export interface TensorInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly value?: CpuTensor;
}

/** Thrown for a node whose inputs or attributes are invalid; names the node. */
export class NodeError extends EngineError {
  constructor(node: OnnxNode, message: string) {
    super(`node '${node.name}' (${node.opType}): ${message}`);
    this.name = "NodeError";
  }
}

/** Context for shape inference and CPU evaluation. */
export interface OpContext {
  readonly node: OnnxNode;
  /** Opset version of the node's domain (default domain for ONNX ops). */
  readonly opset: number;
}

/** Storage precision of matmul/conv operands chosen for a model: "f16" allows kernels that
 * have a half-precision operand path to use it (float32 accumulation); "f32" keeps operands
 * exact. */
export type ComputePrecision = "f32" | "f16";

/** Context for preparing GPU work for one node at fixed shapes. */
export interface GpuOpContext extends OpContext, ResourceOwner {
  readonly gpu: Gpu;
  /** Infos of the node's inputs (values set where known at plan time). */
  readonly inputInfos: readonly (TensorInfo | undefined)[];
  /** Infos of the node's outputs. */
  readonly outputInfos: readonly TensorInfo[];
  /** The model's operand precision (default "f32"). */
  readonly precision?: ComputePrecision;
  /** Measured kernel choices to consult (default: the process-wide `variantCache`). */
  readonly variantCache?: VariantCache;
  /** This node's status slot (src/gpu/status.ts), for kernels that meet invalid data on the GPU
   * (an index outside its table): the plan reads it back with the results and raises
   * `explain(offending value)` as an error naming the node. Absent outside a plan. */
  statusSlot?(explain: (value: number) => string): StatusSlot;
  // own(resource): keeps a resource made while preparing (uniform, scratch buffer, packed-weight
  // texture) alive for the plan's lifetime; the executor destroys it with the plan.
}

/** Context for measuring kernel variants of one node before it is prepared. */
export interface TuneOpContext extends OpContext {
  readonly gpu: Gpu;
  readonly inputInfos: readonly (TensorInfo | undefined)[];
  readonly outputInfos: readonly TensorInfo[];
  readonly precision: ComputePrecision;
  /** Measuring settings to pass to the kernels' tuners (`cache`: the model's). */
  readonly tuning: TuneOptions;
}

/** One kernel problem a node's `tune` looked up or measured. */
export interface KernelTuning {
  readonly kernel: string;
  readonly problem: string;
  readonly chosen: string;
  /** The choice was already cached (nothing measured). */
  readonly cached: boolean;
  /** Measured per-invocation times (ms) of the default and the chosen variant. */
  readonly defaultMs?: number;
  readonly chosenMs?: number;
}

export interface OpImpl {
  /** Input indices whose values must be known at plan time (shapes, axes, pads, scales...).
   * They are never uploaded; the executor reports a clear error when one is not constant. */
  readonly constInputs?: readonly number[];
  /** Output i is a view of input 0's buffer with a new shape (Reshape, Squeeze, Identity...):
   * no GPU work, no copy. */
  readonly view?: boolean;
  /** Output shapes depend on input values (NonMaxSuppression): unless its inputs are constants
   * (then it is folded), the node and everything downstream of it run on the host after the
   * GPU part, with `cpu` (src/onnx/host_tail.ts). */
  readonly hostTail?: boolean;
  /** Output dtypes and shapes from input infos. May also set `value` when the output is known
   * from shapes alone (Shape, Size). Throws NodeError on invalid input. */
  infer(ctx: OpContext, inputs: readonly (TensorInfo | undefined)[]): TensorInfo[];
  /** CPU reference: used to fold constant sub-graphs at plan time and as the tests' oracle. */
  cpu(ctx: OpContext, inputs: readonly (CpuTensor | undefined)[]): CpuTensor[];
  /** Records the GPU work computing `outputs` (already allocated by the executor) from `inputs`
   * (undefined for omitted inputs and for `constInputs`). Not called for views. */
  gpu?(
    ctx: GpuOpContext,
    inputs: readonly (GpuTensor | undefined)[],
    outputs: readonly GpuTensor[],
  ): Dispatch[];
  /** Optional: measures this node's kernel variants on `ctx.gpu` and caches the fastest, so that
   * `gpu` (which consults the cache) prepares it. Called before `gpu` when the model is planned
   * with kernel tuning; must give `gpu` the same problem it will prepare. */
  tune?(ctx: TuneOpContext): Promise<readonly KernelTuning[]>;
}

// ---- attribute accessors (all name the node in their errors) ----

export function attrInt(node: OnnxNode, name: string, fallback?: number): number {
  const v = node.attrs.get(name);
  if (v === undefined) {
    if (fallback === undefined) throw new NodeError(node, `missing attribute '${name}'`);
    return fallback;
  }
  if (typeof v !== "number") throw new NodeError(node, `attribute '${name}' is not a number`);
  return v;
}

export const attrFloat = attrInt;

export function attrInts(node: OnnxNode, name: string, fallback?: number[]): number[] {
  const v = node.attrs.get(name);
  if (v === undefined) {
    if (fallback === undefined) throw new NodeError(node, `missing attribute '${name}'`);
    return fallback;
  }
  if (!Array.isArray(v)) throw new NodeError(node, `attribute '${name}' is not a list`);
  return v as number[];
}

export const attrFloats = attrInts;

export function attrString(node: OnnxNode, name: string, fallback?: string): string {
  const v = node.attrs.get(name);
  if (v === undefined) {
    if (fallback === undefined) throw new NodeError(node, `missing attribute '${name}'`);
    return fallback;
  }
  if (typeof v !== "string") throw new NodeError(node, `attribute '${name}' is not a string`);
  return v;
}

export function attrTensor(node: OnnxNode, name: string): CpuTensor | undefined {
  const v = node.attrs.get(name);
  if (v === undefined) return undefined;
  if (typeof v !== "object" || Array.isArray(v) || !("data" in v)) {
    throw new NodeError(node, `attribute '${name}' is not a tensor`);
  }
  return v as CpuTensor;
}

/** Normalises a possibly negative axis against `rank`, naming the node when out of range. */
export function normAxis(node: OnnxNode, axis: number, rank: number): number {
  const a = tryNormalizeAxis(axis, rank);
  if (a === undefined) throw new NodeError(node, `axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Values of a constant input as plain numbers (int64 shape tensors, axes, pads...). */
export function constValues(
  node: OnnxNode,
  info: TensorInfo | undefined,
  what: string,
): number[] | undefined {
  if (!info) return undefined;
  if (!info.value) throw new NodeError(node, `${what} must be known before running (a constant)`);
  return Array.from(info.value.data as ArrayLike<number>);
}
