/** The public entry point for running ONNX models: load once, plan per input shapes (cached),
 * run with host tensors or keep data on the GPU between stages. */
import { type HostTail, runHostTail, splitHostTail } from "./host_tail.ts";
import {
  allocTensor,
  createStorageBuffer,
  downloadTensor,
  encodeDispatches,
  fromGpuArray,
  getGpu,
  type Gpu,
  type GpuTensor,
  isGpuTensor,
  toGpuArray,
  uploadCpuTensor,
} from "../gpu/mod.ts";
import { type CpuTensor, cpuTensor, sizeOf } from "../util/tensor.ts";
import { EngineError, type EngineErrorOptions, inSource } from "../util/errors.ts";
import type { ComputePrecision, OpImpl } from "./types.ts";
import { type VariantCache, variantCache } from "../kernels/variants.ts";
import { type KernelTuningOptions, kernelTuningOptions, tuneSteps } from "./tune.ts";
import { OPS } from "./ops/registry.ts";
import { fuseGraph, type FusionSummary } from "./fuse.ts";
import { type Graph, UnsupportedError, type ValueDecl } from "./graph.ts";
import { loadModelFile, opsetWarnings, type ParsedModel, parseModel } from "./parse.ts";
import { analyze, foldConstants, type InputFacts, NeedsInputValues } from "./analyze.ts";
import { type ConstantUploader, Plan } from "./plan.ts";
import { validateFromEnv, validatePlan } from "./validate.ts";

/** Thrown when run inputs do not match the model's declared inputs; names the input. */
export class InputError extends EngineError {
  constructor(message: string, options?: EngineErrorOptions) {
    super(message, options);
    this.name = "InputError";
  }
}

export interface ModelOptions {
  /** Operator table (defaults to every registered operator). */
  readonly ops?: ReadonlyMap<string, OpImpl>;
  /** Most plans kept per model (least recently used ones are disposed). Default 8. */
  readonly maxPlans?: number;
  /** "f16": MatMul/Gemm may store their operands as halves and Conv its constant weights
   * (float32 accumulation), where a kernel has such a path; faster matmuls on llvmpipe, at about
   * 1e-3 relative error on the CLIP models (float16 rounding of activations and weights).
   * Default "f32": operands exact. */
  readonly precision?: ComputePrecision;
  /** Measure the kernel variants of every MatMul/Gemm/Conv problem of a plan that has no cached
   * choice, before preparing it (once per adapter and problem; choices saved to
   * results/variant-cache.json unless `cacheFile` says otherwise). `true`: default settings.
   * Default off (tests and library use stay deterministic and quick); the CLIs turn it on.
   * Tuned variants agree with the default ones to float32 rounding. */
  readonly tuneKernels?: boolean | KernelTuningOptions;
  /** Measured kernel choices that this model's kernels consult and its tuning fills (default:
   * the process-wide `variantCache`, which the CLIs load from results/variant-cache.json). */
  readonly variantCache?: VariantCache;
  /** Fuse the node patterns of src/onnx/fuse.ts (decomposed LayerNorm, Linear bias and
   * activation, Conv + Relu) into single kernels. Default true; false runs the graph as written
   * (same results up to float32 rounding). */
  readonly fuse?: boolean;
  /** Validate mode (docs/validate.md): each run executes node by node and checks every node's
   * GPU outputs against its operator's CPU implementation, throwing a ValidationError that
   * names the first node that differs. Slow; for finding a wrong kernel. Default: the
   * ENGINE_VALIDATE environment variable ("1" on). */
  readonly validate?: boolean;
  /** Receives validate mode's notes (what each new plan checked, nodes left unchecked).
   * Default: stderr. */
  readonly validateLog?: (line: string) => void;
}

/** Loads a `.onnx` file (external data resolved next to it) onto `gpu` (default: shared). */
export async function loadModel(
  path: string,
  gpu?: Gpu,
  options: ModelOptions = {},
): Promise<Model> {
  const ops = options.ops ?? OPS;
  const parsed = loadModelFile(path, ops);
  return new Model(gpu ?? await getGpu(), parsed, ops, options);
}

/** Loads a model from ModelProto bytes (`source` names it in errors). */
export async function loadModelBytes(
  bytes: Uint8Array,
  opts: { source?: string; baseDir?: string; gpu?: Gpu } & ModelOptions = {},
): Promise<Model> {
  const ops = opts.ops ?? OPS;
  const parsed = parseModel(bytes, { source: opts.source, baseDir: opts.baseDir, ops });
  return new Model(opts.gpu ?? await getGpu(), parsed, ops, opts);
}

function shapeText(shape: readonly (number | string | undefined)[]): string {
  return `[${shape.map((d) => d ?? "?").join(",")}]`;
}

/** A loaded model. Not safe for concurrent runs from several tasks: runs are serialised. */
export class Model implements ConstantUploader {
  readonly source: string;
  readonly graph: Graph;
  /** Op types of every node in the file (for reports). */
  readonly opTypes: readonly string[];
  /** Things about the file a user should hear (an opset newer than the engine knows). */
  readonly warnings: readonly string[];
  /** What the fusion pass did (undefined with `fuse: false`). */
  readonly fusion?: FusionSummary;
  /** Nodes that run on the host after the GPU part (none for most models). */
  readonly #tail: HostTail;
  readonly #ops: ReadonlyMap<string, OpImpl>;
  readonly #maxPlans: number;
  /** Operand precision of matmul/conv kernels. */
  readonly precision: ComputePrecision;
  readonly #tuning: KernelTuningOptions | undefined;
  readonly #variantCache: VariantCache;
  /** Validate mode: runs check every node against the CPU (ModelOptions.validate). */
  readonly validate: boolean;
  readonly #validateLog: (line: string) => void;
  /** Plans whose validation notes were already logged. */
  readonly #validatedPlans = new WeakSet<Plan>();
  /** Plans by key, most recently used last. */
  #plans = new Map<string, Plan>();
  #weights = new Map<string, GPUBuffer>();
  /** Inputs whose values feed shapes/axes: their values are part of the plan key. */
  #valueInputs = new Set<string>();
  /** Every initializer name in the file (to explain a caller passing one as an input). */
  #initializerNames: ReadonlySet<string>;
  #queue: Promise<unknown> = Promise.resolve();
  #statusReads = new Set<Promise<void>>();
  #statusError: EngineError | undefined;
  #disposed = false;

  constructor(
    readonly gpu: Gpu,
    parsed: ParsedModel,
    ops: ReadonlyMap<string, OpImpl>,
    options: ModelOptions = {},
  ) {
    this.source = parsed.source;
    this.opTypes = parsed.graph.opTypes;
    this.warnings = opsetWarnings(parsed.source, parsed.graph.opsets);
    this.#ops = ops;
    this.#maxPlans = options.maxPlans ?? 8;
    this.precision = options.precision ?? "f32";
    this.#tuning = kernelTuningOptions(options.tuneKernels);
    this.#variantCache = options.variantCache ?? variantCache;
    this.validate = options.validate ?? validateFromEnv();
    this.#validateLog = options.validateLog ?? ((line) => console.error(line));
    this.#initializerNames = new Set(parsed.graph.constants.keys());
    try {
      const folded = foldConstants(parsed.graph, ops);
      let graph = folded;
      if (options.fuse !== false) {
        const fused = fuseGraph(folded);
        graph = fused.graph;
        this.fusion = fused.summary;
      }
      const split = splitHostTail(graph, ops);
      this.graph = split.gpuGraph;
      this.#tail = split.tail;
    } catch (e) {
      throw inSource(e, this.source);
    }
  }

  get inputs(): readonly ValueDecl[] {
    return this.graph.inputs;
  }

  /** The model's declared outputs (those of the GPU part and of its host tail). */
  get outputs(): readonly ValueDecl[] {
    return this.#tail.outputs;
  }

  /** Number of plans currently cached. */
  get planCount(): number {
    return this.#plans.size;
  }

  /** ConstantUploader: initializers are uploaded once per model; other values per plan. */
  upload(name: string, value: CpuTensor, perPlan: boolean): GPUBuffer {
    if (!perPlan) {
      const cached = this.#weights.get(name);
      if (cached) return cached;
    }
    const data = this.#gpuData(value, `constant '${name}'`);
    const buffer = createStorageBuffer(this.gpu, data, name);
    if (!perPlan) this.#weights.set(name, buffer);
    return buffer;
  }

  #gpuData(value: CpuTensor, label: string): Float32Array | Int32Array | Uint32Array {
    try {
      return toGpuArray(value, label);
    } catch (e) {
      if (e instanceof RangeError) throw new EngineError(e.message, { source: this.source });
      throw e;
    }
  }

  /** The plan for these input shapes (built and cached on first use). Inputs whose values feed
   * shape computations must be given as tensors to `run` instead. `tuneKernels: false` skips
   * the model's kernel tuning for this plan (a throwaway probe, e.g. for memory estimates). */
  plan(
    shapes: Record<string, readonly number[]>,
    options: { readonly tuneKernels?: boolean } = {},
  ): Promise<Plan> {
    const facts = new Map<string, InputFacts>();
    for (const decl of this.graph.inputs) {
      const shape = shapes[decl.name];
      if (shape) facts.set(decl.name, { dtype: decl.dtype, shape });
    }
    this.#checkNames(Object.keys(shapes));
    for (const [name, f] of facts) this.#checkShape(this.#decl(name), f.dtype, f.shape);
    this.#checkSymbols(facts);
    return this.#serial(() =>
      this.#getPlan(facts, options.tuneKernels ?? true, (name) => {
        throw new InputError(
          `input '${name}' feeds a shape or axes computation, so its value is ` +
            `needed to plan: pass it to run()`,
          { source: this.source },
        );
      })
    );
  }

  /** Checks whole inputs' shapes against the model's declarations without planning: callers
   * that run a batch in chunks call it first, so an error names the shape that was given rather
   * than one chunk's. */
  checkInputShapes(shapes: Record<string, readonly number[]>): void {
    this.#checkNames(Object.keys(shapes));
    const facts = new Map<string, InputFacts>();
    for (const decl of this.graph.inputs) {
      const shape = shapes[decl.name];
      if (!shape) continue;
      this.#checkShape(decl, decl.dtype, shape);
      facts.set(decl.name, { dtype: decl.dtype, shape });
    }
    this.#checkSymbols(facts);
  }

  /** Runs the model on host tensors and downloads every output. */
  run(inputs: Record<string, CpuTensor>): Promise<Record<string, CpuTensor>> {
    return this.#serial(async () => {
      const facts = this.#checkInputs(inputs);
      const plan = await this.#getPlan(facts, true, (name) => inputs[name]);
      this.#checkIndexInputs(plan, inputs);
      const gpu = this.gpu;
      for (const [name, t] of plan.inputBuffers) {
        const data = this.#gpuData(inputs[name], `input '${name}'`);
        if (data.length > 0) {
          gpu.device.queue.writeBuffer(t.buffer, 0, data as Float32Array<ArrayBuffer>);
        }
      }
      const encoder = await this.#recordWork(
        plan,
        gpu.device.createCommandEncoder({ label: this.source }),
      );
      const status = plan.statusBuffer;
      const result: Record<string, CpuTensor> = {};
      const reads: { name: string; tensor: GpuTensor; offset: number; bytes: number }[] = [];
      let total = 0;
      for (const [name, out] of plan.outputs) {
        if (out.kind === "value") {
          result[name] = cpuTensor(out.value.dtype, out.value.shape, out.value.data);
          continue;
        }
        const bytes = sizeOf(out.tensor.shape) * 4;
        if (bytes === 0) {
          result[name] = cpuTensor(out.tensor.dtype, out.tensor.shape);
          continue;
        }
        reads.push({ name, tensor: out.tensor, offset: total, bytes });
        total += bytes;
      }
      // The status words travel in the same readback, after the outputs.
      const statusOffset = total;
      if (status) total += status.size;
      const staging = total > 0 ? plan.staging(total) : undefined;
      for (const r of reads) {
        encoder.copyBufferToBuffer(r.tensor.buffer, 0, staging!, r.offset, r.bytes);
      }
      if (status) encoder.copyBufferToBuffer(status, 0, staging!, statusOffset, status.size);
      gpu.device.queue.submit([encoder.finish()]);
      if (staging) {
        await gpu.untilLost(staging.mapAsync(GPUMapMode.READ, 0, total), this.source);
        const mapped = staging.getMappedRange(0, total).slice(0);
        staging.unmap();
        if (status) {
          const error = plan.statusError(new Uint32Array(mapped, statusOffset, status.size / 4));
          if (error) throw error;
        }
        for (const r of reads) {
          const t = r.tensor;
          const view = t.dtype === "float32" || t.dtype === "float16"
            ? new Float32Array(mapped, r.offset, r.bytes / 4)
            : t.dtype === "bool"
            ? new Uint32Array(mapped, r.offset, r.bytes / 4)
            : new Int32Array(mapped, r.offset, r.bytes / 4);
          result[r.name] = fromGpuArray(view, t.shape, t.dtype);
        }
      }
      gpu.checkHealthy(`running ${this.source}`);
      if (this.#tail.nodes.length === 0) return result;
      return runHostTail(this.graph, this.#tail, this.#ops, inputs, result);
    });
  }

  /** Runs the model on GPU-resident inputs (host tensors are accepted too) without waiting.
   * Returns new pooled tensors the caller owns (release them with `releaseTensor`). Inputs are
   * copied into the plan's buffers, so the caller may reuse or release them right away. */
  runGpu(inputs: Record<string, GpuTensor | CpuTensor>): Promise<Record<string, GpuTensor>> {
    return this.#serial(async () => {
      if (this.#tail.nodes.length > 0) {
        const n = this.#tail.nodes[0];
        throw new UnsupportedError(
          `node '${n.name}' (${n.opType}) and what follows it run on the host ` +
            `(data-dependent output shapes), so the outputs cannot stay on the GPU: use run()`,
          { source: this.source },
        );
      }
      const facts = this.#checkInputs(inputs);
      const plan = await this.#getPlan(facts, true, async (name) => {
        const t = inputs[name];
        return isGpuTensor(t) ? await downloadTensor(this.gpu, t) : t;
      });
      this.#checkIndexInputs(plan, inputs);
      const gpu = this.gpu;
      let encoder = gpu.device.createCommandEncoder({ label: this.source });
      for (const [name, dst] of plan.inputBuffers) {
        const src = inputs[name];
        const bytes = sizeOf(dst.shape) * 4;
        if (isGpuTensor(src)) {
          if (bytes > 0) encoder.copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, bytes);
        } else {
          const data = this.#gpuData(src, `input '${name}'`);
          if (data.length > 0) {
            gpu.device.queue.writeBuffer(dst.buffer, 0, data as Float32Array<ArrayBuffer>);
          }
        }
      }
      encoder = await this.#recordWork(plan, encoder);
      const status = plan.statusBuffer;
      const statusCopy = status && gpu.device.createBuffer({
        size: status.size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: `${this.source} status readback`,
      });
      if (status) encoder.copyBufferToBuffer(status, 0, statusCopy!, 0, status.size);
      const result: Record<string, GpuTensor> = {};
      for (const [name, out] of plan.outputs) {
        if (out.kind === "value") {
          result[name] = uploadCpuTensor(gpu, out.value, `output '${name}'`);
          continue;
        }
        const t = allocTensor(gpu, out.tensor.shape, out.tensor.dtype, `output '${name}'`);
        const bytes = sizeOf(t.shape) * 4;
        if (bytes > 0) encoder.copyBufferToBuffer(out.tensor.buffer, 0, t.buffer, 0, bytes);
        result[name] = t;
      }
      gpu.device.queue.submit([encoder.finish()]);
      if (statusCopy) this.#watchStatus(plan, statusCopy);
      gpu.checkHealthy(`running ${this.source}`);
      return result;
    });
  }

  /** Records the plan's work after what `encoder` holds (input copies): its status slots
   * cleared, then every dispatch. Returns the encoder for what follows (output copies). In
   * validate mode the work runs here instead, node by node against the CPU, and a new encoder
   * is returned. */
  async #recordWork(plan: Plan, encoder: GPUCommandEncoder): Promise<GPUCommandEncoder> {
    const status = plan.statusBuffer;
    if (status) encoder.clearBuffer(status);
    if (!this.validate) {
      encodeDispatches(encoder, plan.dispatches);
      return encoder;
    }
    this.gpu.device.queue.submit([encoder.finish()]);
    try {
      const report = await validatePlan(this.gpu, plan, this.precision);
      if (!this.#validatedPlans.has(plan)) {
        this.#validatedPlans.add(plan);
        const log = this.#validateLog;
        log(
          `validate: ${this.source} [${plan.key}]: ${report.checked} node(s) agree with their ` +
            `CPU implementation`,
        );
        for (const { node, why } of report.skipped) {
          log(`validate: node '${node.name}' (${node.opType}) not checked: ${why}`);
        }
        if (this.#tail.nodes.length > 0) {
          log(
            `validate: the ${this.#tail.nodes.length} host-tail node(s) from ` +
              `'${this.#tail.nodes[0].name}' on run on the CPU only: not checked`,
          );
        }
      }
    } catch (e) {
      throw inSource(e, this.source);
    }
    return this.gpu.device.createCommandEncoder({ label: this.source });
  }

  /** Frees every plan and uploaded weight. The model cannot run afterwards. */
  dispose(): void {
    this.#disposed = true;
    for (const p of this.#plans.values()) p.dispose();
    this.#plans.clear();
    for (const b of this.#weights.values()) b.destroy();
    this.#weights.clear();
  }

  /** Disposes cached plans (keeps weights); the next run plans again. */
  clearPlans(): void {
    for (const p of this.#plans.values()) p.dispose();
    this.#plans.clear();
  }

  /** Runs `fn` after every earlier call finished (plans' buffers are shared between runs). */
  /** Host inputs that are Gather indices must lie in [-n, n) of the gathered axis (ONNX): a
   * token id beyond the embedding table is refused here, naming the input and the position.
   * (GPU-resident inputs are checked by the kernel's status slot instead.) */
  #checkIndexInputs(plan: Plan, inputs: Record<string, CpuTensor | GpuTensor>): void {
    for (const { input, node, axis, axisDim } of plan.indexInputs) {
      const t = inputs[input];
      if (!t || isGpuTensor(t)) continue;
      const data = t.data as ArrayLike<number | bigint>;
      for (let i = 0; i < data.length; i++) {
        const v = Number(data[i]);
        if (v >= -axisDim && v < axisDim) continue;
        const at: number[] = [];
        for (let d = t.shape.length - 1, rest = i; d >= 0; d--) {
          at.unshift(rest % t.shape[d]);
          rest = Math.floor(rest / t.shape[d]);
        }
        throw new InputError(
          `input '${input}'[${at.join(", ")}] is ${v}, outside [-${axisDim}, ` +
            `${axisDim}) for node '${node.name}' (${node.opType}), which gathers along axis ` +
            `${axis} of size ${axisDim}` +
            (axisDim > 1000 ? " (a token id beyond the embedding table?)" : ""),
          { source: this.source },
        );
      }
    }
  }

  /** Reads a `runGpu` call's status words once the GPU is done, without making the caller wait:
   * invalid data found there is raised by the next call on this model, or by `settle()`. */
  #watchStatus(plan: Plan, copy: GPUBuffer): void {
    const read = copy.mapAsync(GPUMapMode.READ).then(() => {
      const error = plan.statusError(new Uint32Array(copy.getMappedRange()));
      copy.unmap();
      if (error) this.#statusError ??= error;
    }).catch(() => {/* a lost device is reported by the next call's health check */}).finally(
      () => {
        copy.destroy();
        this.#statusReads.delete(read);
      },
    );
    this.#statusReads.add(read);
  }

  #raiseStatus(): void {
    const error = this.#statusError;
    this.#statusError = undefined;
    if (error) throw error;
  }

  /** Waits until the status of every `runGpu` call so far is known, and raises the first
   * invalid-data error among them (an index outside its table), naming the node. */
  settle(): Promise<void> {
    return this.#serial(async () => {
      await Promise.all(this.#statusReads);
      this.#raiseStatus();
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(() => {
      if (this.#disposed) {
        throw new EngineError("model used after dispose()", { source: this.source });
      }
      this.#raiseStatus();
      return fn();
    });
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #getPlan(
    given: ReadonlyMap<string, InputFacts>,
    tune: boolean,
    valueOf: (name: string) => CpuTensor | Promise<CpuTensor>,
  ): Promise<Plan> {
    for (;;) {
      const facts = new Map<string, InputFacts>();
      for (const [name, f] of given) {
        if (this.#valueInputs.has(name)) {
          const value = await valueOf(name);
          facts.set(name, { dtype: f.dtype, shape: f.shape, value });
        } else facts.set(name, { dtype: f.dtype, shape: f.shape });
      }
      const key = this.#planKey(facts);
      const cached = this.#plans.get(key);
      if (cached) {
        this.#plans.delete(key);
        this.#plans.set(key, cached);
        return cached;
      }
      let analysis;
      try {
        analysis = analyze(this.graph, this.#ops, facts);
      } catch (e) {
        if (e instanceof NeedsInputValues) {
          const fresh = e.inputs.filter((n) => !this.#valueInputs.has(n));
          if (fresh.length > 0) {
            for (const n of fresh) this.#valueInputs.add(n);
            continue;
          }
          throw new EngineError(`${e.message} (internal: input values missing)`, {
            source: this.source,
          });
        }
        throw inSource(e, this.source);
      }
      if (this.#tuning && tune) {
        await tuneSteps(
          this.gpu,
          analysis.steps,
          this.precision,
          this.#tuning,
          this.#variantCache,
        );
      }
      const settings = { precision: this.precision, variantCache: this.#variantCache };
      const plan = await Plan.create(this.gpu, this.graph, analysis, this, key, settings).catch(
        (e) => {
          throw inSource(e, this.source);
        },
      );
      this.#plans.set(key, plan);
      while (this.#plans.size > this.#maxPlans) {
        const oldest = this.#plans.keys().next().value!;
        this.#plans.get(oldest)!.dispose();
        this.#plans.delete(oldest);
      }
      return plan;
    }
  }

  #planKey(facts: ReadonlyMap<string, InputFacts>): string {
    return this.graph.inputs.map((d) => {
      const f = facts.get(d.name)!;
      const v = f.value ? `=${Array.from(f.value.data).join(",")}` : "";
      return `${d.name}:${f.dtype}[${f.shape.join(",")}]${v}`;
    }).join(";");
  }

  #decl(name: string): ValueDecl {
    return this.graph.inputs.find((d) => d.name === name)!;
  }

  #checkNames(given: readonly string[]): void {
    const declared = this.graph.inputs.map((d) => d.name);
    const missing = declared.filter((n) => !given.includes(n));
    const extra = given.filter((n) => !declared.includes(n));
    if (missing.length === 0 && extra.length === 0) return;
    const parts: string[] = [];
    if (missing.length > 0) {
      parts.push(`missing input(s) ${missing.map((n) => `'${n}'`).join(", ")}`);
    }
    if (extra.length > 0) {
      const consts = extra.filter((n) => this.#initializerNames.has(n));
      parts.push(
        `unknown input(s) ${extra.map((n) => `'${n}'`).join(", ")}` +
          (consts.length > 0 ? ` (${consts.join(", ")}: initializers, not inputs)` : ""),
      );
    }
    throw new InputError(
      `${parts.join("; ")}; the model's inputs are ` +
        (declared.length > 0 ? declared.map((d) => `'${d}'`).join(", ") : "(none)"),
      { source: this.source },
    );
  }

  #checkShape(decl: ValueDecl, dtype: string, shape: readonly number[]): void {
    const where = `input '${decl.name}'`;
    const named = { source: this.source };
    if (decl.typeName !== "unknown" && dtype !== decl.dtype) {
      throw new InputError(`${where}: expected dtype ${decl.dtype}, got ${dtype}`, named);
    }
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new InputError(`${where}: invalid shape ${shapeText(shape)}`, named);
    }
    const dims = decl.dims;
    if (!dims) return;
    if (dims.length !== shape.length) {
      throw new InputError(
        `${where}: expected rank ${dims.length} ${shapeText(dims)}, got rank ${shape.length} ` +
          shapeText(shape),
        named,
      );
    }
    dims.forEach((d, i) => {
      if (typeof d === "number" && d !== shape[i]) {
        throw new InputError(
          `${where}: expected shape ${shapeText(dims)}, got ${shapeText(shape)} (dim ${i} is ` +
            `${shape[i]}, must be ${d})`,
          named,
        );
      }
    });
  }

  /** Symbolic dims (`batch`) must agree across inputs. */
  #checkSymbols(facts: ReadonlyMap<string, InputFacts>): void {
    const seen = new Map<string, { input: string; size: number }>();
    for (const decl of this.graph.inputs) {
      const f = facts.get(decl.name);
      if (!f || !decl.dims) continue;
      decl.dims.forEach((d, i) => {
        if (typeof d !== "string" || d === "") return;
        const prev = seen.get(d);
        if (prev && prev.size !== f.shape[i]) {
          throw new InputError(
            `dimension '${d}' is ${prev.size} in input '${prev.input}' but ` +
              `${f.shape[i]} in input '${decl.name}'`,
            { source: this.source },
          );
        }
        if (!prev) seen.set(d, { input: decl.name, size: f.shape[i] });
      });
    }
  }

  #checkInputs(inputs: Record<string, GpuTensor | CpuTensor>): Map<string, InputFacts> {
    this.#checkNames(Object.keys(inputs));
    const facts = new Map<string, InputFacts>();
    for (const decl of this.graph.inputs) {
      const t = inputs[decl.name];
      if (!t || typeof t !== "object" || !Array.isArray(t.shape)) {
        throw new InputError(`input '${decl.name}' is not a tensor`, { source: this.source });
      }
      this.#checkShape(decl, t.dtype, t.shape);
      const n = sizeOf(t.shape);
      if (isGpuTensor(t)) {
        if (t.buffer.size < n * 4) {
          throw new InputError(
            `input '${decl.name}': buffer of ${t.buffer.size} bytes is too small ` +
              `for shape ${shapeText(t.shape)}`,
            { source: this.source },
          );
        }
      } else if (t.data.length !== n) {
        throw new InputError(
          `input '${decl.name}': ${t.data.length} values for shape ` +
            `${shapeText(t.shape)} (needs ${n})`,
          { source: this.source },
        );
      }
      facts.set(decl.name, { dtype: t.dtype, shape: [...t.shape] });
    }
    this.#checkSymbols(facts);
    return facts;
  }
}
