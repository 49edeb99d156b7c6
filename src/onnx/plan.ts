/** Planning: static shape inference and constant folding over a graph (CPU only), then a Plan
 * that owns GPU buffers for one set of input shapes, with every dispatch recorded once. */
import { type CpuTensor, type DType, shapeString, sizeOf } from "../util/tensor.ts";
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
import { EngineError } from "../util/errors.ts";
import {
  type ComputePrecision,
  type GpuOpContext,
  NodeError,
  type OnnxNode,
  type OpContext,
  type OpImpl,
  type TensorInfo,
} from "./types.ts";
import type { VariantCache } from "../kernels/variants.ts";
import { findOp, type Graph, isDefaultDomain, UnsupportedError } from "./graph.ts";

/** Operators whose outputs are random: never folded even when their inputs are constant. */
const NONDETERMINISTIC = new Set([
  "RandomNormal",
  "RandomUniform",
  "RandomNormalLike",
  "RandomUniformLike",
  "Bernoulli",
  "Multinomial",
]);

/** Runs an operator callback, naming the node in errors that do not already. Engine errors stay
 * engine errors (clean CLI message); anything else is a bug and keeps its stack as `cause`. */
export function atNode<T>(node: OnnxNode, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof NodeError || e instanceof UnsupportedError) throw e;
    if (e instanceof EngineError) throw new NodeError(node, e.message);
    // An allocation the machine refused (shapes too large for memory) is the input's, not a bug.
    if (e instanceof RangeError) throw new NodeError(node, `${what}: ${e.message}`);
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`node '${node.name}' (${node.opType}) ${what}: ${msg}`, { cause: e });
  }
}

export function opContext(graph: Graph, node: OnnxNode): OpContext {
  const domain = isDefaultDomain(node.domain) ? "" : node.domain;
  return { node, opset: graph.opsets.get(domain) ?? graph.opsets.get("") ?? 1 };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Evaluates a node on the CPU (constant folding) and checks the result against `infer`. */
function evalNode(
  ctx: OpContext,
  op: OpImpl,
  inputs: readonly (TensorInfo | undefined)[],
  inferred: readonly TensorInfo[],
): CpuTensor[] {
  const node = ctx.node;
  const values = atNode(node, "cpu", () => op.cpu(ctx, inputs.map((i) => i?.value)));
  node.outputs.forEach((name, k) => {
    if (name === "") return;
    const v = values[k], inf = inferred[k];
    if (!v) throw new NodeError(node, `cpu returned no value for output ${k} ('${name}')`);
    if (v.dtype !== inf.dtype || !sameShape(v.shape, inf.shape)) {
      throw new NodeError(
        node,
        `cpu result for output '${name}' is ${v.dtype}${shapeString(v.shape)} but infer ` +
          `said ${inf.dtype}${shapeString(inf.shape)} (operator bug)`,
      );
    }
  });
  return values;
}

function inferNode(
  ctx: OpContext,
  op: OpImpl,
  inputs: readonly (TensorInfo | undefined)[],
): TensorInfo[] {
  const node = ctx.node;
  const outs = atNode(node, "infer", () => op.infer(ctx, inputs));
  if (outs.length < node.outputs.length) {
    throw new NodeError(
      node,
      `has ${node.outputs.length} outputs but the operator produces ${outs.length}`,
    );
  }
  return outs;
}

/** Folds nodes whose inputs are all initializers (weight Casts, Constant nodes, shape arithmetic
 * on constants) once at load. Returns the graph with those nodes removed, their outputs added to
 * `constants`, and constants no longer referenced dropped. */
export function foldConstants(graph: Graph, ops: ReadonlyMap<string, OpImpl>): Graph {
  const constants = new Map(graph.constants);
  const nodes: OnnxNode[] = [];
  for (const node of graph.nodes) {
    const op = findOp(ops, node)!;
    const known = node.inputs.every((n) => n === "" || constants.has(n));
    if (!known || NONDETERMINISTIC.has(node.opType)) {
      nodes.push(node);
      continue;
    }
    const ctx = opContext(graph, node);
    const infos = node.inputs.map((n): TensorInfo | undefined => {
      if (n === "") return undefined;
      const v = constants.get(n)!;
      return { dtype: v.dtype, shape: v.shape, value: v };
    });
    const outs = inferNode(ctx, op, infos);
    const values = evalNode(ctx, op, infos, outs);
    node.outputs.forEach((name, k) => {
      if (name !== "") constants.set(name, values[k]);
    });
  }
  const used = new Set<string>(graph.outputs.map((o) => o.name));
  for (const n of nodes) for (const i of n.inputs) used.add(i);
  for (const name of [...constants.keys()]) if (!used.has(name)) constants.delete(name);
  return { ...graph, nodes, constants };
}

/** A node that needs GPU work, with its static input/output facts. */
export interface Step {
  readonly node: OnnxNode;
  readonly op: OpImpl;
  readonly ctx: OpContext;
  readonly inputs: readonly (TensorInfo | undefined)[];
  /** One per node output ("" outputs included, as unnamed temporaries). */
  readonly outputs: readonly TensorInfo[];
}

/** What `analyze` knows about one graph input. */
export interface InputFacts {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Set for inputs whose values feed shapes/axes (see NeedsInputValues). */
  readonly value?: CpuTensor;
}

/** Raised during analysis when a node needs a constant that derives from graph inputs given
 * without values: the caller re-plans with those inputs' values (they become part of the plan's
 * key, like shapes). */
export class NeedsInputValues extends Error {
  constructor(readonly inputs: readonly string[], readonly node: OnnxNode, readonly what: string) {
    super(`node '${node.name}' (${node.opType}) needs the value of ${what}`);
  }
}

export interface Analysis {
  readonly infos: ReadonlyMap<string, TensorInfo>;
  readonly steps: readonly Step[];
}

/** Static shape inference and constant folding from actual input shapes (CPU only). */
export function analyze(
  graph: Graph,
  ops: ReadonlyMap<string, OpImpl>,
  inputs: ReadonlyMap<string, InputFacts>,
): Analysis {
  const infos = new Map<string, TensorInfo>();
  for (const [name, v] of graph.constants) {
    infos.set(name, { dtype: v.dtype, shape: v.shape, value: v });
  }
  for (const [name, f] of inputs) infos.set(name, f);
  const producers = new Map<string, OnnxNode>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o !== "") producers.set(o, n);

  const steps: Step[] = [];
  for (const node of graph.nodes) {
    const op = findOp(ops, node)!;
    const ctx = opContext(graph, node);
    const ins = node.inputs.map((n) => (n === "" ? undefined : infos.get(n)!));
    for (const ci of op.constInputs ?? []) {
      const info = ins[ci];
      if (info && info.value === undefined) {
        missingConstant(node, ci, infos, producers, inputs);
      }
    }
    const outs = inferNode(ctx, op, ins);
    const allKnown = ins.every((i) => i === undefined || i.value !== undefined);
    if (allKnown && !NONDETERMINISTIC.has(node.opType)) {
      const values = evalNode(ctx, op, ins, outs);
      node.outputs.forEach((name, k) => {
        if (name !== "") {
          infos.set(name, { dtype: values[k].dtype, shape: values[k].shape, value: values[k] });
        }
      });
      continue;
    }
    const outputs = node.outputs.map((_, k) => outs[k]);
    node.outputs.forEach((name, k) => {
      if (name !== "") infos.set(name, outputs[k]);
    });
    // Outputs known from shapes alone (Shape, Size) need no GPU work.
    if (node.outputs.every((name, k) => name === "" || outputs[k].value !== undefined)) continue;
    steps.push({ node, op, ctx, inputs: ins, outputs });
  }
  return { infos, steps };
}

/** Throws for a constant input whose value is unknown: NeedsInputValues when it derives from
 * graph inputs (the executor retries with their values), else a NodeError. */
function missingConstant(
  node: OnnxNode,
  index: number,
  infos: ReadonlyMap<string, TensorInfo>,
  producers: ReadonlyMap<string, OnnxNode>,
  graphInputs: ReadonlyMap<string, InputFacts>,
): never {
  const name = node.inputs[index];
  const sources = new Set<string>();
  const seen = new Set<string>();
  const stack = [name];
  let gpuProducer: string | undefined;
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (infos.get(v)?.value !== undefined) continue;
    if (graphInputs.has(v)) {
      sources.add(v);
      continue;
    }
    const p = producers.get(v);
    if (!p) continue;
    gpuProducer ??= p.name;
    for (const i of p.inputs) if (i !== "") stack.push(i);
  }
  const what = `input ${index} ('${name}')`;
  if (sources.size > 0) throw new NeedsInputValues([...sources], node, what);
  throw new NodeError(
    node,
    `${what} must be a constant known before running, but it is computed on the GPU` +
      (gpuProducer ? ` (by node '${gpuProducer}')` : ""),
  );
}

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

/** Where a value's data lives during a run. */
interface Storage {
  readonly kind: "input" | "const" | "slot";
  /** Bytes the largest value in it needs. */
  bytes: number;
  /** Index of the last step reading it; Infinity when it holds a graph output. */
  lastUse: number;
  buffer?: GPUBuffer;
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

/** GPU resources and recorded dispatches for one set of input shapes (and valued inputs). */
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
    const axis = typeof raw === "number" ? (raw < 0 ? raw + rank : raw) : 0;
    out.push({ input: name, node, axis, axisDim: data.shape[axis] });
  }
  return out;
}

/** A node that reports invalid data in a status slot, and how to say what was wrong. */
export interface StatusCheck {
  readonly node: OnnxNode;
  readonly explain: (value: number) => string;
}

export class Plan {
  readonly dispatches: Dispatch[] = [];
  /** The node each dispatch belongs to (parallel to `dispatches`; for profiles). */
  readonly dispatchNodes: OnnxNode[] = [];
  /** Graph inputs the GPU reads, by name: callers write input data into these buffers. */
  readonly inputBuffers = new Map<string, GpuTensor>();
  readonly outputs = new Map<string, PlanOutput>();
  /** Nodes that report invalid data through a status slot (slot = index here), and the buffer
   * holding the slots (src/gpu/status.ts); undefined when no node reports. */
  readonly statusChecks: StatusCheck[] = [];
  /** Graph inputs holding Gather indices, checked on the host before each run. */
  indexInputs: readonly IndexInput[] = [];
  #status: GPUBuffer | undefined;
  #memory: PlanMemory = {
    activations: 0,
    inputs: 0,
    constants: 0,
    weights: 0,
    scratch: 0,
    packedWeights: 0,
    total: 0,
  };
  #owned: (GPUBuffer | GPUTexture)[] = [];
  #pooled: GPUBuffer[] = [];
  #staging: GPUBuffer | undefined;
  #disposed = false;

  private constructor(readonly gpu: Gpu, readonly key: string, readonly steps: number) {}

  /** Allocates buffers (reusing activation memory across lifetimes) and records every dispatch.
   * Validation errors while recording are reported naming the node. */
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
    const { infos, steps } = analysis;
    this.indexInputs = indexInputs(graph, steps);
    const gpu = this.gpu;
    const storages = new Map<string, Storage>();
    const stepOutputs: Storage[][] = [];
    const tempNames: string[][] = [];
    const inputNames = new Set(graph.inputs.map((i) => i.name));

    const storageOf = (name: string): Storage => {
      let s = storages.get(name);
      if (!s) {
        const info = infos.get(name)!;
        const kind = info.value !== undefined ? "const" : inputNames.has(name) ? "input" : "slot";
        if (kind === "slot") throw new Error(`internal: no storage for value '${name}'`);
        s = { kind, bytes: sizeOf(info.shape) * 4, lastUse: -1 };
        storages.set(name, s);
      }
      return s;
    };

    // Pass 1: give every value a storage; views share their source's storage.
    steps.forEach((step, s) => {
      const constIdx = new Set(step.op.constInputs ?? []);
      step.node.inputs.forEach((name, i) => {
        if (name === "" || constIdx.has(i)) return;
        const st = storageOf(name);
        st.lastUse = Math.max(st.lastUse, s);
      });
      const created: Storage[] = [];
      const temps: string[] = [];
      step.node.outputs.forEach((name0, k) => {
        const info = step.outputs[k];
        // Omitted outputs, and outputs known at plan time although the node runs (consumers
        // read the constant), are written to unnamed temporaries.
        const name = name0 === "" || info.value !== undefined ? `\u0000tmp${s}_${k}` : name0;
        temps.push(name);
        if (info.value !== undefined && step.op.view) return;
        if (step.op.view) {
          const src = storageOf(step.node.inputs[0]);
          src.lastUse = Math.max(src.lastUse, s);
          storages.set(name, src);
          return;
        }
        const st: Storage = { kind: "slot", bytes: sizeOf(info.shape) * 4, lastUse: s };
        storages.set(name, st);
        created.push(st);
      });
      stepOutputs.push(created);
      tempNames.push(temps);
    });
    for (const o of graph.outputs) {
      const info = infos.get(o.name)!;
      if (info.value === undefined) storageOf(o.name).lastUse = Infinity;
    }

    // Pass 2: map slot storages onto physical buffers: outputs of a step are placed before its
    // inputs are freed, so no kernel ever reads and writes the same buffer.
    interface Physical {
      bytes: number;
      buffer?: GPUBuffer;
    }
    const free: Physical[] = [];
    const physicals: Physical[] = [];
    const placement = new Map<Storage, Physical>();
    const dying: Storage[][] = steps.map(() => []);
    for (const st of new Set(storages.values())) {
      if (st.kind === "slot" && Number.isFinite(st.lastUse)) dying[st.lastUse].push(st);
    }
    steps.forEach((_, s) => {
      for (const st of stepOutputs[s]) {
        // Best fit among free buffers; else grow the largest free one; else a new buffer.
        let best = -1;
        for (let i = 0; i < free.length; i++) {
          if (free[i].bytes >= st.bytes && (best < 0 || free[i].bytes < free[best].bytes)) best = i;
        }
        if (best < 0 && free.length > 0) {
          best = free.reduce((m, p, i) => (p.bytes > free[m].bytes ? i : m), 0);
          free[best].bytes = st.bytes;
        }
        let phys: Physical;
        if (best >= 0) phys = free.splice(best, 1)[0];
        else {
          phys = { bytes: st.bytes };
          physicals.push(phys);
        }
        placement.set(st, phys);
      }
      for (const st of dying[s]) free.push(placement.get(st)!);
    });
    let activations = 0;
    for (const p of physicals) {
      p.buffer = gpu.pool.acquire(p.bytes, "activation");
      this.#pooled.push(p.buffer);
      activations += p.buffer.size;
    }
    for (const [st, p] of placement) st.buffer = p.buffer;

    // Inputs and constants.
    let inputBytes = 0, constBytes = 0, weightBytes = 0;
    const weightsSeen = new Set<GPUBuffer>();
    for (const [name, st] of storages) {
      if (st.buffer) continue;
      const info = infos.get(name)!;
      if (st.kind === "input") {
        st.buffer = gpu.pool.acquire(st.bytes, `input '${name}'`);
        this.#pooled.push(st.buffer);
        inputBytes += st.buffer.size;
        this.inputBuffers.set(name, { buffer: st.buffer, shape: info.shape, dtype: info.dtype });
      } else if (st.kind === "const") {
        const isWeight = graph.constants.get(name) === info.value;
        st.buffer = uploader.upload(name, info.value!, !isWeight);
        if (isWeight) {
          if (!weightsSeen.has(st.buffer)) weightBytes += st.buffer.size;
          weightsSeen.add(st.buffer);
        } else {
          this.#owned.push(st.buffer);
          constBytes += st.buffer.size;
        }
      }
    }
    // A view of an input shares the input's storage; inputs only read by views still need one.
    for (const name of inputNames) {
      const st = storages.get(name);
      if (st && !this.inputBuffers.has(name)) {
        const info = infos.get(name)!;
        this.inputBuffers.set(name, { buffer: st.buffer!, shape: info.shape, dtype: info.dtype });
      }
    }

    const tensorOf = (name: string, info: TensorInfo): GpuTensor => ({
      buffer: storages.get(name)!.buffer!,
      shape: info.shape,
      dtype: info.dtype,
    });

    // Record dispatches, one error scope per node so a validation error names its node.
    let scratch = 0;
    let packed = 0;
    const scopes: Promise<GPUError | null>[] = [];
    const scopeNodes: OnnxNode[] = [];
    const device = gpu.device;
    steps.forEach((step, s) => {
      if (step.op.view) return;
      const constIdx = new Set(step.op.constInputs ?? []);
      const inputs = step.node.inputs.map((name, i) =>
        name === "" || constIdx.has(i) ? undefined : tensorOf(name, step.inputs[i]!)
      );
      const outputs = tempNames[s].map((name, k) => tensorOf(name, step.outputs[k]));
      const owner = this.#owned;
      const statusSlot = (explain: (value: number) => string): StatusSlot => {
        // One slot per node, in one small buffer sized for every step.
        if (!this.#status) {
          this.#status = gpu.device.createBuffer({
            size: Math.max(16, this.steps * STATUS_WORDS * 4),
            usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
            label: "plan status",
          });
          owner.push(this.#status);
        }
        let slot = this.statusChecks.findIndex((c) => c.node === step.node);
        if (slot < 0) slot = this.statusChecks.push({ node: step.node, explain }) - 1;
        return { buffer: this.#status, slot };
      };
      const ctx: GpuOpContext = {
        ...step.ctx,
        gpu,
        inputInfos: step.inputs,
        outputInfos: step.outputs,
        precision: settings.precision ?? "f32",
        variantCache: settings.variantCache,
        statusSlot,
        own<T extends GPUBuffer | GPUTexture>(resource: T): T {
          owner.push(resource);
          if (resource instanceof GPUBuffer) scratch += resource.size;
          else packed += textureBytes(resource); // operators own textures for packed weights
          return resource;
        },
      };
      const op = step.op;
      if (!op.gpu) {
        throw new NodeError(step.node, "has no GPU implementation and its inputs are not constant");
      }
      device.pushErrorScope("validation");
      let dispatches: Dispatch[];
      try {
        dispatches = atNode(step.node, "gpu", () => op.gpu!(ctx, inputs, outputs));
      } finally {
        scopes.push(device.popErrorScope());
        scopeNodes.push(step.node);
      }
      this.dispatches.push(...dispatches);
      for (let i = 0; i < dispatches.length; i++) this.dispatchNodes.push(step.node);
    });
    const errors = await Promise.all(scopes);
    const bad = errors.findIndex((e) => e !== null);
    if (bad >= 0) {
      throw new NodeError(scopeNodes[bad], `WebGPU validation error: ${errors[bad]!.message}`);
    }

    for (const o of graph.outputs) {
      const info = infos.get(o.name)!;
      if (info.value !== undefined) this.outputs.set(o.name, { kind: "value", value: info.value });
      else this.outputs.set(o.name, { kind: "gpu", tensor: tensorOf(o.name, info) });
    }
    this.#memory = {
      activations,
      inputs: inputBytes,
      constants: constBytes,
      weights: weightBytes,
      scratch,
      packedWeights: packed,
      total: activations + inputBytes + constBytes + weightBytes + scratch + packed,
    };
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
