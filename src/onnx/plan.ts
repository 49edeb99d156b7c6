/** A Plan: the GPU buffers and recorded dispatches of a graph for one set of input shapes,
 * built from the CPU analysis (src/onnx/analyze.ts) in phases that read top to bottom
 * (`Plan.#build`): storages, activation buffers, inputs and constants, dispatches, outputs. */
import type { CpuTensor } from "../util/tensor.ts";
import {
  type Dispatch,
  flaggedSlots,
  type Gpu,
  type GpuTensor,
  sizeClass,
  STATUS_WORDS,
  type StatusSlot,
  textureBytes,
} from "../gpu/mod.ts";
import {
  type ComputePrecision,
  type GpuOpContext,
  NodeError,
  normAxis,
  type OnnxNode,
  type TensorInfo,
} from "./types.ts";
import type { VariantCache } from "../kernels/variants.ts";
import { type Graph, isDefaultDomain } from "./graph.ts";
import { onNode } from "./ops/common.ts";
import type { Analysis, Step } from "./analyze.ts";
import { assignStorages, shareActivations, type StorageLayout } from "./plan_buffers.ts";

/** Estimated GPU memory of a plan, in bytes. */
export interface PlanMemory {
  /** Pooled activation buffers (after lifetime-based reuse). */
  readonly activations: number;
  /** Buffers holding graph inputs. */
  readonly inputs: number;
  /** Constants uploaded for this plan (folded values, valued inputs). */
  readonly constants: number;
  /** Model weights this plan reads (shared by all plans of the model). */
  readonly weights: number;
  /** Uniforms and scratch buffers kept by operators. */
  readonly scratch: number;
  /** Weights repacked by operators for their kernels (textures), per plan; like `weights`, they
   * do not grow with the batch. */
  readonly packedWeights: number;
  readonly total: number;
}

/** Model-level cache of uploaded initializers (shared by all plans of a model). */
export interface ConstantUploader {
  /** A buffer holding a constant's data. With `perPlan` false the value is the initializer
   * `name`, uploaded once and kept for the model's lifetime; with `perPlan` true it is a value
   * of one plan (folded, or a valued input) and the plan destroys the buffer. */
  upload(name: string, value: CpuTensor, perPlan: boolean): GPUBuffer;
}

/** A graph output after a run: from a GPU buffer, or known at plan time. */
export type PlanOutput =
  | { readonly kind: "gpu"; readonly tensor: GpuTensor }
  | { readonly kind: "value"; readonly value: CpuTensor };

/** Model-wide settings every node of a plan is prepared with. */
export interface PlanSettings {
  /** Operand precision of matmul/conv kernels (default "f32"). */
  readonly precision?: ComputePrecision;
  /** Measured kernel choices the kernels consult (default: the process-wide one). */
  readonly variantCache?: VariantCache;
}

/** A graph input whose values are a Gather's indices (directly or through casts and reshapes):
 * checked on the host before upload, so a bad token id is refused before any GPU work. */
export interface IndexInput {
  readonly input: string;
  readonly node: OnnxNode;
  readonly axis: number;
  readonly axisDim: number;
}

/** Ops that pass index values through unchanged (in value, if not in shape). */
const INDEX_PASSTHROUGH = new Set([
  "Cast",
  "Reshape",
  "Flatten",
  "Squeeze",
  "Unsqueeze",
  "Identity",
]);

/** The graph inputs that feed Gather/GatherElements indices (see IndexInput). */
export function indexInputs(graph: Graph, steps: readonly Step[]): IndexInput[] {
  const producer = new Map<string, OnnxNode>();
  for (const n of graph.nodes) for (const o of n.outputs) producer.set(o, n);
  const inputNames = new Set(graph.inputs.map((i) => i.name));
  const out: IndexInput[] = [];
  for (const step of steps) {
    const { node } = step;
    if (!isDefaultDomain(node.domain) || !["Gather", "GatherElements"].includes(node.opType)) {
      continue;
    }
    const data = step.inputs[0];
    if (!data) continue;
    let name = node.inputs[1];
    for (let p = producer.get(name); p && INDEX_PASSTHROUGH.has(p.opType); p = producer.get(name)) {
      name = p.inputs[0];
    }
    if (!inputNames.has(name)) continue;
    const rank = data.shape.length;
    const raw = node.attrs.get("axis");
    // Gather's infer has checked the axis against the data's rank.
    const axis = typeof raw === "number" ? normAxis(node, raw, rank) : 0;
    out.push({ input: name, node, axis, axisDim: data.shape[axis] });
  }
  return out;
}

/** A node that reports invalid data in a status slot, and how to say what was wrong. */
export interface StatusCheck {
  readonly node: OnnxNode;
  readonly explain: (value: number) => string;
}

/** A node the plan runs on the GPU, with the tensors its dispatches read and write (validate
 * mode reads them back node by node: src/onnx/validate.ts). */
export interface PlannedNode {
  readonly step: Step;
  /** The node's inputs on the GPU; undefined for omitted inputs and for constant inputs, which
   * the operator reads at plan time (`step.inputs[i].value`). */
  readonly inputs: readonly (GpuTensor | undefined)[];
  readonly outputs: readonly GpuTensor[];
  /** Its dispatches are `plan.dispatches.slice(firstDispatch, firstDispatch + dispatchCount)`. */
  readonly firstDispatch: number;
  readonly dispatchCount: number;
}

/** GPU memory that operators keep while their nodes are prepared. */
interface OperatorMemory {
  /** Uniforms and scratch buffers. */
  scratch: number;
  /** Textures of repacked weights. */
  packed: number;
}

const NO_MEMORY: PlanMemory = {
  activations: 0,
  inputs: 0,
  constants: 0,
  weights: 0,
  scratch: 0,
  packedWeights: 0,
  total: 0,
};

/** GPU resources and recorded dispatches for one set of input shapes (and valued inputs). */
export class Plan {
  readonly dispatches: Dispatch[] = [];
  /** The node each dispatch belongs to (parallel to `dispatches`; for profiles). */
  readonly dispatchNodes: OnnxNode[] = [];
  /** Every node with GPU work, in order, with its tensors (views, which do none, are left out). */
  readonly nodes: PlannedNode[] = [];
  /** Graph inputs the GPU reads, by name: callers write input data into these buffers. */
  readonly inputBuffers = new Map<string, GpuTensor>();
  readonly outputs = new Map<string, PlanOutput>();
  /** Nodes that report invalid data through a status slot (slot = index here), and the buffer
   * holding the slots (src/gpu/status.ts); undefined when no node reports. */
  readonly statusChecks: StatusCheck[] = [];
  /** Graph inputs holding Gather indices, checked on the host before each run. */
  indexInputs: readonly IndexInput[] = [];
  #status: GPUBuffer | undefined;
  #memory: PlanMemory = NO_MEMORY;
  #owned: (GPUBuffer | GPUTexture)[] = [];
  #pooled: GPUBuffer[] = [];
  #staging: GPUBuffer | undefined;
  #disposed = false;

  private constructor(readonly gpu: Gpu, readonly key: string, readonly steps: number) {}

  /** Allocates buffers (reusing activation memory across lifetimes) and records every dispatch.
   * WebGPU validation errors while recording are reported naming the node. */
  static async create(
    gpu: Gpu,
    graph: Graph,
    analysis: Analysis,
    constants: ConstantUploader,
    key: string,
    settings: PlanSettings = {},
  ): Promise<Plan> {
    const plan = new Plan(gpu, key, analysis.steps.length);
    try {
      await plan.#build(graph, analysis, constants, settings);
    } catch (e) {
      plan.dispose();
      throw e;
    }
    return plan;
  }

  async #build(
    graph: Graph,
    analysis: Analysis,
    uploader: ConstantUploader,
    settings: PlanSettings,
  ): Promise<void> {
    this.indexInputs = indexInputs(graph, analysis.steps);
    const layout = assignStorages(graph, analysis);
    const activations = this.#allocateActivations(layout, analysis.steps.length);
    const io = this.#bindInputsAndConstants(graph, analysis.infos, layout, uploader);
    const operators = await this.#recordDispatches(analysis.steps, layout, settings);
    this.#bindOutputs(graph, analysis.infos, layout);
    this.#memory = {
      activations,
      inputs: io.inputs,
      constants: io.constants,
      weights: io.weights,
      scratch: operators.scratch,
      packedWeights: operators.packed,
      total: activations + io.inputs + io.constants + io.weights + operators.scratch +
        operators.packed,
    };
  }

  /** Acquires the shared activation buffers and points every slot storage at its buffer.
   * Returns their bytes. */
  #allocateActivations(layout: StorageLayout, stepCount: number): number {
    const { buffers, placement } = shareActivations(layout, stepCount);
    let bytes = 0;
    for (const b of buffers) {
      b.buffer = this.gpu.pool.acquire(b.bytes, "activation");
      this.#pooled.push(b.buffer);
      bytes += b.buffer.size;
    }
    for (const [st, b] of placement) st.buffer = b.buffer;
    return bytes;
  }

  /** Gives graph inputs pooled buffers (`inputBuffers`) and constants uploaded ones: model
   * weights through the model's cache, values of this plan (folded, valued inputs) owned here.
   * Returns the bytes of each kind. */
  #bindInputsAndConstants(
    graph: Graph,
    infos: ReadonlyMap<string, TensorInfo>,
    layout: StorageLayout,
    uploader: ConstantUploader,
  ): { inputs: number; constants: number; weights: number } {
    let inputs = 0, constants = 0, weights = 0;
    const weightsSeen = new Set<GPUBuffer>();
    for (const [name, st] of layout.storages) {
      if (st.buffer) continue;
      const info = infos.get(name)!;
      if (st.kind === "input") {
        st.buffer = this.gpu.pool.acquire(st.bytes, `input '${name}'`);
        this.#pooled.push(st.buffer);
        inputs += st.buffer.size;
        this.inputBuffers.set(name, { buffer: st.buffer, shape: info.shape, dtype: info.dtype });
      } else if (st.kind === "const") {
        const isWeight = graph.constants.get(name) === info.value;
        st.buffer = uploader.upload(name, info.value!, !isWeight);
        if (isWeight) {
          if (!weightsSeen.has(st.buffer)) weights += st.buffer.size;
          weightsSeen.add(st.buffer);
        } else {
          this.#owned.push(st.buffer);
          constants += st.buffer.size;
        }
      }
    }
    // A view of an input shares the input's storage; inputs only read by views still need one.
    for (const decl of graph.inputs) {
      const st = layout.storages.get(decl.name);
      if (st && !this.inputBuffers.has(decl.name)) {
        const info = infos.get(decl.name)!;
        this.inputBuffers.set(decl.name, {
          buffer: st.buffer!,
          shape: info.shape,
          dtype: info.dtype,
        });
      }
    }
    return { inputs, constants, weights };
  }

  /** Prepares every step's GPU work, one WebGPU error scope per node so that a validation
   * error names its node. Returns the memory the operators kept. */
  async #recordDispatches(
    steps: readonly Step[],
    layout: StorageLayout,
    settings: PlanSettings,
  ): Promise<OperatorMemory> {
    const memory: OperatorMemory = { scratch: 0, packed: 0 };
    const scopes: Promise<GPUError | null>[] = [];
    const scopeNodes: OnnxNode[] = [];
    const device = this.gpu.device;
    steps.forEach((step, s) => {
      if (step.op.view) return;
      const constIdx = new Set(step.op.constInputs ?? []);
      const inputs = step.node.inputs.map((name, i) =>
        name === "" || constIdx.has(i) ? undefined : tensorOf(layout, name, step.inputs[i]!)
      );
      const outputs = layout.outputNames[s].map((name, k) =>
        tensorOf(layout, name, step.outputs[k])
      );
      const ctx = this.#gpuContext(step, settings, memory);
      const op = step.op;
      if (!op.gpu) {
        throw new NodeError(step.node, "has no GPU implementation and its inputs are not constant");
      }
      device.pushErrorScope("validation");
      let dispatches: Dispatch[];
      try {
        dispatches = onNode(step.node, () => op.gpu!(ctx, inputs, outputs), "gpu");
      } finally {
        scopes.push(device.popErrorScope());
        scopeNodes.push(step.node);
      }
      this.nodes.push({
        step,
        inputs,
        outputs,
        firstDispatch: this.dispatches.length,
        dispatchCount: dispatches.length,
      });
      this.dispatches.push(...dispatches);
      for (let i = 0; i < dispatches.length; i++) this.dispatchNodes.push(step.node);
    });
    const errors = await Promise.all(scopes);
    const bad = errors.findIndex((e) => e !== null);
    if (bad >= 0) {
      throw new NodeError(scopeNodes[bad], `WebGPU validation error: ${errors[bad]!.message}`);
    }
    return memory;
  }

  /** What an operator prepares one node's GPU work with: the model's settings, a status slot,
   * and `own` for resources it keeps for the plan's lifetime (counted in `memory`). */
  #gpuContext(step: Step, settings: PlanSettings, memory: OperatorMemory): GpuOpContext {
    const owned = this.#owned;
    return {
      ...step.ctx,
      gpu: this.gpu,
      inputInfos: step.inputs,
      outputInfos: step.outputs,
      precision: settings.precision ?? "f32",
      variantCache: settings.variantCache,
      statusSlot: (explain) => this.#statusSlot(step.node, explain),
      own<T extends GPUBuffer | GPUTexture>(resource: T): T {
        owned.push(resource);
        if (resource instanceof GPUBuffer) memory.scratch += resource.size;
        else memory.packed += textureBytes(resource); // operators own textures for packed weights
        return resource;
      },
    };
  }

  /** `node`'s status slot: one per node, in one small buffer sized for every step. */
  #statusSlot(node: OnnxNode, explain: (value: number) => string): StatusSlot {
    if (!this.#status) {
      this.#status = this.gpu.device.createBuffer({
        size: Math.max(16, this.steps * STATUS_WORDS * 4),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        label: "plan status",
      });
      this.#owned.push(this.#status);
    }
    let slot = this.statusChecks.findIndex((c) => c.node === node);
    if (slot < 0) slot = this.statusChecks.push({ node, explain }) - 1;
    return { buffer: this.#status, slot };
  }

  /** Graph outputs: the GPU tensor holding each, or its value when known at plan time. */
  #bindOutputs(graph: Graph, infos: ReadonlyMap<string, TensorInfo>, layout: StorageLayout): void {
    for (const o of graph.outputs) {
      const info = infos.get(o.name)!;
      if (info.value !== undefined) this.outputs.set(o.name, { kind: "value", value: info.value });
      else this.outputs.set(o.name, { kind: "gpu", tensor: tensorOf(layout, o.name, info) });
    }
  }

  /** Estimated GPU memory this plan holds (for `--verbose` reports and batch sizing). */
  get memory(): PlanMemory {
    return this.#memory;
  }

  /** The status slots' buffer (undefined when no node reports): cleared before each run and
   * read back with the results (`statusError`). */
  get statusBuffer(): GPUBuffer | undefined {
    return this.#status;
  }

  /** The error for status words read back from `statusBuffer`, naming the first flagged node,
   * or undefined when every slot is clear. */
  statusError(words: Uint32Array): NodeError | undefined {
    const bad = flaggedSlots(words)[0];
    if (!bad) return undefined;
    const check = this.statusChecks[bad.slot];
    return new NodeError(check.node, check.explain(bad.value));
  }

  /** A reusable staging buffer big enough for every GPU output (one readback per run). */
  staging(bytes: number): GPUBuffer {
    if (!this.#staging || this.#staging.size < bytes) {
      this.#staging?.destroy();
      this.#staging = this.gpu.device.createBuffer({
        size: Math.max(4, sizeClass(bytes)),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: "plan readback",
      });
    }
    return this.#staging;
  }

  /** Returns pooled buffers and destroys plan-owned resources. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const b of this.#pooled) this.gpu.pool.release(b);
    for (const r of this.#owned) r.destroy();
    this.#staging?.destroy();
    this.#pooled = [];
    this.#owned = [];
  }

  describe(): string {
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    const m = this.memory;
    return `${this.steps} nodes to run, ${this.dispatches.length} dispatches; ` +
      `est. peak GPU memory ${mib(m.total)} (activations ${mib(m.activations)}, weights ${
        mib(m.weights)
      }, inputs ` +
      `${mib(m.inputs)}, constants ${mib(m.constants)}, op scratch ${mib(m.scratch)}, packed ` +
      `weights ${mib(m.packedWeights)})`;
  }
}

/** The GPU tensor of value `name` (its storage's buffer, its own shape and dtype). */
function tensorOf(layout: StorageLayout, name: string, info: TensorInfo): GpuTensor {
  return { buffer: layout.storages.get(name)!.buffer!, shape: info.shape, dtype: info.dtype };
}
