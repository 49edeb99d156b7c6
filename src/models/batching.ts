/** Runs a model whose inputs and outputs share a leading batch axis on batches of any size: the
 * batch is split into chunks whose plans fit the adapter (largest buffer under
 * maxStorageBufferBindingSize, plan memory under a budget), each chunk runs on a cached plan, and
 * the outputs are stitched back together on the GPU or the host. The chunk size comes from the
 * plan's own memory estimate, so the peak GPU memory of a batch is known before it runs. */
import { allocTensor, type Gpu, type GpuTensor, isGpuTensor, releaseTensor } from "../gpu/mod.ts";
import { type CpuData, type CpuTensor, newCpuData, shapeString, sizeOf } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import {
  analyze,
  type InputFacts,
  type Model,
  OPS,
  type Plan,
  type PlanMemory,
} from "../onnx/mod.ts";

/** Thrown for inputs an encoder or batched model cannot take (wrong rank, dtype, ids...). */
export class BatchInputError extends EngineError {
  constructor(message: string) {
    super(message);
    this.name = "BatchInputError";
  }
}

export interface BatchOptions {
  /** GPU memory one chunk's plan may use beyond the model's weights (and the kernels' packed
   * copies of them), in bytes. Default 2 GiB
   * (WebGPU cannot report an adapter's memory; lower it on small GPUs). */
  readonly memoryBudget?: number;
  /** Most rows per chunk (default 256: larger batches buy nothing on most adapters). */
  readonly maxChunkRows?: number;
  /** Receives progress lines (plans, memory, timings) when set. */
  readonly log?: (line: string) => void;
}

/** How a batch of `rows` will run: chunk boundaries and the memory the largest chunk needs. */
export interface BatchPlan {
  readonly rows: number;
  /** Rows in every chunk but possibly the last. */
  readonly chunkRows: number;
  readonly chunks: readonly { readonly start: number; readonly rows: number }[];
  /** Memory estimate of the largest chunk's plan (weights included). */
  readonly planMemory: PlanMemory;
  /** Bytes of the stitched outputs (allocated on the GPU only by `runGpu` with several chunks). */
  readonly outputBytes: number;
  /** Bytes for a GPU input slice copied out of a larger GPU input (runGpu, several chunks). */
  readonly stagingBytes: number;
  /** Estimated peak GPU memory of the batch: largest chunk plan + stitched outputs + staging. */
  readonly peakBytes: number;
}

export const DEFAULT_MEMORY_BUDGET = 2 * 2 ** 30;
export const DEFAULT_MAX_CHUNK_ROWS = 256;

const mib = (b: number) =>
  b < 2 ** 20 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;

/** One-line summary of a batch plan (for `--verbose`). */
export function describeBatchPlan(p: BatchPlan): string {
  const m = p.planMemory;
  const chunks = p.chunks.length === 1 ? "1 chunk" : `${p.chunks.length} chunks of ${p.chunkRows}` +
    (p.chunks.at(-1)!.rows !== p.chunkRows ? ` (last ${p.chunks.at(-1)!.rows})` : "");
  return `batch ${p.rows}: ${chunks}; est. peak GPU memory ${mib(p.peakBytes)} (weights ` +
    `${mib(m.weights)}, activations ${mib(m.activations)}, inputs ${mib(m.inputs)}, constants ` +
    `${mib(m.constants)}, op scratch ${mib(m.scratch)}, packed weights ${mib(m.packedWeights)}, ` +
    `stitched outputs ${mib(p.outputBytes)}, ` +
    `input staging ${mib(p.stagingBytes)})`;
}

/** The first `rows` rows from `start` of a host tensor (a view, no copy). */
export function sliceRows(t: CpuTensor, start: number, rows: number): CpuTensor {
  if (start === 0 && rows === t.shape[0]) return t;
  const row = sizeOf(t.shape.slice(1));
  return {
    dtype: t.dtype,
    shape: [rows, ...t.shape.slice(1)],
    data: t.data.subarray(start * row, (start + rows) * row) as CpuData,
  };
}

/** A model whose graph inputs all have the same symbolic leading dimension (the batch axis). */
export class BatchedModel {
  readonly gpu: Gpu;
  /** The symbolic name of the batch axis (`batch`, `N`...), as the file declares it. */
  readonly batchSymbol: string;
  readonly memoryBudget: number;
  readonly maxChunkRows: number;
  readonly #log?: (line: string) => void;
  /** Row counts whose plan was already described in the log. */
  #logged = new Set<number>();
  /** Largest chunk whose buffers all fit the binding limit (from shape analysis). */
  #bindingRows = new Map<string, number>();
  /** Per-row GPU memory (from the 1-row plan) by per-row input shapes. */
  #perRow = new Map<string, number>();

  constructor(readonly model: Model, options: BatchOptions = {}) {
    this.gpu = model.gpu;
    this.memoryBudget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
    this.maxChunkRows = options.maxChunkRows ?? DEFAULT_MAX_CHUNK_ROWS;
    this.#log = options.log;
    if (!(this.memoryBudget > 0)) {
      throw new EngineError(`memory budget must be positive, got ${this.memoryBudget}`);
    }
    if (!Number.isInteger(this.maxChunkRows) || this.maxChunkRows < 1) {
      throw new EngineError(`max chunk rows must be a positive integer, got ${this.maxChunkRows}`);
    }
    const symbol = batchSymbolOf(model);
    if (symbol === undefined) {
      throw new EngineError(
        `${model.source}: inputs do not share a symbolic leading (batch) dimension: ` +
          model.inputs.map((d) => `'${d.name}' ${shapeText(d.dims)}`).join(", ") +
          ` (export it with a dynamic batch axis, e.g. torch.onnx.export(..., dynamic_axes=` +
          `{'input': {0: 'batch'}}))`,
      );
    }
    this.batchSymbol = symbol;
  }

  /** True when every graph input has the same symbolic leading dimension. */
  static canBatch(model: Model): boolean {
    return batchSymbolOf(model) !== undefined;
  }

  /** Input shapes with `rows` rows, given per-row shapes. */
  #shapes(itemShapes: ReadonlyMap<string, readonly number[]>, rows: number) {
    const shapes: Record<string, number[]> = {};
    for (const [name, item] of itemShapes) shapes[name] = [rows, ...item];
    return shapes;
  }

  async #planFor(
    itemShapes: ReadonlyMap<string, readonly number[]>,
    rows: number,
    tuneKernels = true,
  ): Promise<Plan> {
    const t0 = performance.now();
    const plan = await this.model.plan(this.#shapes(itemShapes, rows), { tuneKernels });
    if (!this.#logged.has(rows)) {
      this.#logged.add(rows);
      this.#log?.(
        `plan for ${rows} row(s) in ${((performance.now() - t0) / 1000).toFixed(2)} s: ` +
          plan.describe(),
      );
    }
    for (const [name, out] of plan.outputs) {
      const shape = out.kind === "gpu" ? out.tensor.shape : out.value.shape;
      if (shape[0] !== rows) {
        throw new EngineError(
          `${this.model.source}: output '${name}' has shape ${shapeString(shape)} for ${rows} ` +
            `input row(s): its leading dimension is not the batch, so the batch cannot be split`,
        );
      }
    }
    return plan;
  }

  /** Largest row count whose every intermediate value fits one storage binding, from shape
   * analysis at 1 and 2 rows (sizes are affine in the row count). */
  #bindingLimitRows(itemShapes: ReadonlyMap<string, readonly number[]>): number {
    const key = [...itemShapes].map(([n, s]) => `${n}:${s.join(",")}`).join(";");
    const known = this.#bindingRows.get(key);
    if (known !== undefined) return known;
    const limit = this.gpu.limits.maxStorageBufferBindingSize;
    let rows = Number.MAX_SAFE_INTEGER;
    try {
      const sizes = [1, 2].map((n) => {
        const facts = new Map<string, InputFacts>();
        for (const [name, item] of itemShapes) {
          const decl = this.model.inputs.find((d) => d.name === name)!;
          facts.set(name, { dtype: decl.dtype, shape: [n, ...item] });
        }
        const { infos } = analyze(this.model.graph, OPS, facts);
        const bytes = new Map<string, number>();
        for (const [name, info] of infos) {
          if (info.value === undefined) bytes.set(name, sizeOf(info.shape) * 4);
        }
        return bytes;
      });
      for (const [name, b1] of sizes[0]) {
        const slope = (sizes[1].get(name) ?? b1) - b1;
        if (slope <= 0) continue;
        rows = Math.min(rows, Math.floor((limit - (b1 - slope)) / slope));
      }
    } catch {
      // Shape analysis failed (e.g. values needed): rely on plan-time errors instead.
    }
    rows = Math.max(1, rows);
    this.#bindingRows.set(key, rows);
    return rows;
  }

  /** GPU memory per row besides the weights, from the 1-row plan's estimate (an upper bound:
   * fixed costs such as uniforms count as per-row). Planned once per input shapes; when the
   * batch has more rows the probe plan is dropped right away, so it holds no memory. */
  async #perRowBytes(
    itemShapes: ReadonlyMap<string, readonly number[]>,
    rows: number,
  ): Promise<number> {
    const key = [...itemShapes].map(([n, s]) => `${n}:${s.join(",")}`).join(";");
    const known = this.#perRow.get(key);
    if (known !== undefined) return known;
    // A probe for more rows is dropped below: not worth tuning its kernels.
    const one = await this.#planFor(itemShapes, 1, rows === 1);
    const perRow = Math.max(1, batchBytes(one.memory));
    this.#perRow.set(key, perRow);
    this.#log?.(
      `per-row estimate ${mib(perRow)}; binding limit allows ` +
        `${this.#bindingLimitRows(itemShapes)} row(s) per chunk; budget ${mib(this.memoryBudget)}`,
    );
    if (rows > 1) this.model.clearPlans();
    return perRow;
  }

  /** Chooses chunks for `rows` rows and builds (or reuses) their plans; nothing runs. */
  async planBatch(
    itemShapes: ReadonlyMap<string, readonly number[]>,
    rows: number,
    gpuOutputs = false,
    gpuInputs = false,
  ): Promise<BatchPlan> {
    if (!Number.isInteger(rows) || rows < 1) {
      throw new BatchInputError(`${this.model.source}: a batch needs at least one row`);
    }
    this.model.checkInputShapes(
      Object.fromEntries([...itemShapes].map(([name, item]) => [name, [rows, ...item]])),
    );
    const perRow = await this.#perRowBytes(itemShapes, rows);
    let chunk = Math.min(
      rows,
      this.maxChunkRows,
      this.#bindingLimitRows(itemShapes),
      Math.max(1, Math.floor(this.memoryBudget / perRow)),
    );
    // Check the chosen size against its own plan; shrink while it does not fit.
    let plan: Plan | undefined;
    for (;;) {
      try {
        plan = await this.#planFor(itemShapes, chunk);
      } catch (e) {
        if (
          chunk > 1 && e instanceof EngineError &&
          /maxStorageBufferBindingSize|maxBufferSize|memory/i.test(e.message)
        ) {
          this.#log?.(`plan for ${chunk} rows does not fit (${e.message}); halving`);
          chunk = Math.max(1, chunk >> 1);
          continue;
        }
        throw e;
      }
      const used = batchBytes(plan.memory);
      if (used <= this.memoryBudget || chunk === 1) break;
      const smaller = Math.max(
        1,
        Math.min(chunk - 1, Math.floor(chunk * this.memoryBudget / used)),
      );
      this.#log?.(`plan for ${chunk} rows needs ${mib(used)} over the budget; trying ${smaller}`);
      chunk = smaller;
    }
    if (batchBytes(plan.memory) > this.memoryBudget) {
      throw new EngineError(
        `${this.model.source}: one row needs ${mib(batchBytes(plan.memory))} of ` +
          `GPU memory besides the weights, over the budget of ${mib(this.memoryBudget)}`,
      );
    }
    const chunks: { start: number; rows: number }[] = [];
    for (let start = 0; start < rows; start += chunk) {
      chunks.push({ start, rows: Math.min(chunk, rows - start) });
    }
    let planMemory = plan.memory;
    const last = chunks.at(-1)!.rows;
    if (last !== chunk) {
      const lastPlan = await this.#planFor(itemShapes, last);
      if (lastPlan.memory.total > planMemory.total) planMemory = lastPlan.memory;
    }
    const several = chunks.length > 1;
    let outputBytes = 0;
    if (gpuOutputs && several) {
      for (const out of plan.outputs.values()) {
        const shape = out.kind === "gpu" ? out.tensor.shape : out.value.shape;
        outputBytes += (sizeOf(shape) / chunk) * rows * 4;
      }
    }
    let stagingBytes = 0;
    if (gpuInputs && several) {
      for (const item of itemShapes.values()) stagingBytes += sizeOf(item) * chunk * 4;
    }
    return {
      rows,
      chunkRows: chunk,
      chunks,
      planMemory,
      outputBytes,
      stagingBytes,
      peakBytes: planMemory.total + outputBytes + stagingBytes,
    };
  }

  /** Per-row shapes of the inputs, checking that they agree on the row count. */
  #itemShapes(inputs: Record<string, GpuTensor | CpuTensor>): {
    rows: number;
    items: Map<string, readonly number[]>;
  } {
    let rows: number | undefined;
    const items = new Map<string, readonly number[]>();
    for (const decl of this.model.inputs) {
      const t = inputs[decl.name];
      if (!t || typeof t !== "object" || !Array.isArray(t.shape)) {
        throw new BatchInputError(`${this.model.source}: missing input '${decl.name}'`);
      }
      if (t.shape.length === 0) {
        throw new BatchInputError(
          `${this.model.source}: input '${decl.name}' is a scalar; it needs a leading batch axis`,
        );
      }
      if (rows !== undefined && t.shape[0] !== rows) {
        throw new BatchInputError(
          `${this.model.source}: inputs disagree on the batch size ('${this.batchSymbol}'): ` +
            `${rows} vs ${t.shape[0]} in '${decl.name}'`,
        );
      }
      rows = t.shape[0];
      items.set(decl.name, t.shape.slice(1));
    }
    for (const name of Object.keys(inputs)) {
      if (!items.has(name)) {
        throw new BatchInputError(
          `${this.model.source}: unknown input '${name}'; the model's inputs are ` +
            this.model.inputs.map((d) => `'${d.name}'`).join(", "),
        );
      }
    }
    return { rows: rows ?? 0, items };
  }

  /** Runs host inputs chunk by chunk and returns host outputs with all rows. */
  async run(
    inputs: Record<string, CpuTensor>,
    plan?: BatchPlan,
  ): Promise<Record<string, CpuTensor>> {
    const { rows, items } = this.#itemShapes(inputs);
    plan ??= await this.planBatch(items, rows);
    if (plan.chunks.length === 1) return await this.model.run(inputs);
    const parts: Record<string, CpuTensor>[] = [];
    for (const c of plan.chunks) {
      const chunkInputs: Record<string, CpuTensor> = {};
      for (const [name, t] of Object.entries(inputs)) {
        chunkInputs[name] = sliceRows(t, c.start, c.rows);
      }
      parts.push(await this.model.run(chunkInputs));
    }
    const result: Record<string, CpuTensor> = {};
    for (const name of Object.keys(parts[0])) {
      const first = parts[0][name];
      const row = sizeOf(first.shape.slice(1));
      const data = newCpuData(first.dtype, rows * row);
      plan.chunks.forEach((c, i) =>
        (data as Float64Array).set(parts[i][name].data as ArrayLike<number>, c.start * row)
      );
      result[name] = { dtype: first.dtype, shape: [rows, ...first.shape.slice(1)], data };
    }
    return result;
  }

  /** Runs GPU-resident (or host) inputs chunk by chunk; returns pooled GPU tensors holding all
   * rows, which the caller owns (`releaseTensor`). Does not wait for the GPU. */
  async runGpu(
    inputs: Record<string, GpuTensor | CpuTensor>,
    plan?: BatchPlan,
  ): Promise<Record<string, GpuTensor>> {
    const { rows, items } = this.#itemShapes(inputs);
    const anyGpu = Object.values(inputs).some(isGpuTensor);
    plan ??= await this.planBatch(items, rows, true, anyGpu);
    if (plan.chunks.length === 1) return await this.model.runGpu(inputs);
    const gpu = this.gpu;
    const result: Record<string, GpuTensor> = {};
    try {
      for (const c of plan.chunks) {
        const staged: GpuTensor[] = [];
        const chunkInputs: Record<string, GpuTensor | CpuTensor> = {};
        const encoder = gpu.device.createCommandEncoder({ label: "batch input slices" });
        for (const [name, t] of Object.entries(inputs)) {
          if (!isGpuTensor(t)) {
            chunkInputs[name] = sliceRows(t, c.start, c.rows);
          } else if (c.start === 0) {
            // The plan copies from byte 0: a shorter view of the same buffer is enough.
            chunkInputs[name] = {
              buffer: t.buffer,
              shape: [c.rows, ...t.shape.slice(1)],
              dtype: t.dtype,
            };
          } else {
            const shape = [c.rows, ...t.shape.slice(1)];
            const tmp = allocTensor(gpu, shape, t.dtype, `input '${name}' rows ${c.start}+`);
            const rowBytes = sizeOf(t.shape.slice(1)) * 4;
            if (rowBytes * c.rows > 0) {
              encoder.copyBufferToBuffer(
                t.buffer,
                c.start * rowBytes,
                tmp.buffer,
                0,
                rowBytes * c.rows,
              );
            }
            staged.push(tmp);
            chunkInputs[name] = tmp;
          }
        }
        gpu.device.queue.submit([encoder.finish()]);
        const outs = await this.model.runGpu(chunkInputs);
        const copy = gpu.device.createCommandEncoder({ label: "batch output stitching" });
        for (const [name, t] of Object.entries(outs)) {
          const rowShape = t.shape.slice(1);
          const rowBytes = sizeOf(rowShape) * 4;
          result[name] ??= allocTensor(gpu, [rows, ...rowShape], t.dtype, `output '${name}'`);
          if (rowBytes * c.rows > 0) {
            copy.copyBufferToBuffer(
              t.buffer,
              0,
              result[name].buffer,
              c.start * rowBytes,
              rowBytes * c.rows,
            );
          }
        }
        gpu.device.queue.submit([copy.finish()]);
        // Queue order keeps these buffers alive for the work already submitted.
        for (const t of Object.values(outs)) releaseTensor(gpu, t);
        for (const t of staged) releaseTensor(gpu, t);
      }
    } catch (e) {
      for (const t of Object.values(result)) releaseTensor(gpu, t);
      throw e;
    }
    gpu.checkHealthy(`running ${this.model.source}`);
    return result;
  }
}

function shapeText(dims: readonly (number | string | undefined)[] | undefined): string {
  return dims ? `[${dims.map((d) => d ?? "?").join(",")}]` : "(no shape)";
}

function batchSymbolOf(model: Model): string | undefined {
  let symbol: string | undefined;
  if (model.inputs.length === 0) return undefined;
  for (const decl of model.inputs) {
    if (!decl.dims || decl.dims.length === 0) return undefined;
    // A dynamic dimension without a name reads as "?" (some exporters leave it unnamed).
    const d0 = decl.dims[0] === undefined || decl.dims[0] === "" ? "?" : decl.dims[0];
    if (typeof d0 !== "string") return undefined;
    if (symbol !== undefined && d0 !== symbol) return undefined;
    symbol = d0;
  }
  return symbol;
}

/** Plan memory that the batch size decides: all but the model's weights and the kernels'
 * packed copies of them (the memory budget's measure). */
function batchBytes(m: PlanMemory): number {
  return m.total - m.weights - m.packedWeights;
}
