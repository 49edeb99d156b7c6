/** Encoders: an ONNX image or text tower plus the preprocessing it expects. Load once (weights are
 * uploaded once and stay on the GPU), then encode batches of any size into features on the GPU
 * (for the AMU trainer) or the host. Nothing here depends on how an exporter named its nodes or
 * initializers: inputs, outputs and the token-embedding table are found from the graph's shape. */
import { type CpuTensor, cpuTensor, shapeString } from "../util/tensor.ts";
import {
  downloadTensor,
  type Gpu,
  type GpuTensor,
  isGpuTensor,
  releaseTensor,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import {
  attrInt,
  type ComputePrecision,
  type Graph,
  type KernelTuningOptions,
  loadModel,
  type Model,
  type ValueDecl,
} from "../onnx/mod.ts";
import type { VariantCache } from "../kernels/variants.ts";
import {
  BatchedModel,
  BatchInputError,
  type BatchOptions,
  type BatchPlan,
  describeBatchPlan,
} from "./batching.ts";
import type { ImagePreprocessing, Preprocessing, TextPreprocessing } from "./preprocessing.ts";

/** A model that cannot serve as the requested encoder (wrong inputs, vocabulary too small...). */
export class EncoderError extends EngineError {
  constructor(message: string) {
    super(message);
    this.name = "EncoderError";
  }
}

export interface EncoderOptions extends BatchOptions {
  /** Device to load onto (default: the shared one). */
  readonly gpu?: Gpu;
  /** Graph input holding the images or token ids (default: found from the graph). */
  readonly input?: string;
  /** Graph output holding the features (default: the only rank-2 output). */
  readonly output?: string;
  /** Operand precision of matmul/conv kernels (see ModelOptions.precision); default "f32". */
  readonly precision?: ComputePrecision;
  /** Measure kernel variants when a batch size is first planned (see
   * ModelOptions.tuneKernels). Default off; the CLIs (`deno task run`, train, bench) turn it
   * on. */
  readonly tuneKernels?: boolean | KernelTuningOptions;
  /** Measured kernel choices to consult and fill (default: the process-wide one). */
  readonly variantCache?: VariantCache;
}

/** Loads an encoder from an `.onnx` file. */
export async function loadEncoder(
  path: string,
  preprocessing: Preprocessing,
  options: EncoderOptions = {},
): Promise<Encoder> {
  const t0 = performance.now();
  const model = await loadModel(path, options.gpu, {
    maxPlans: 4,
    precision: options.precision,
    tuneKernels: tuneWithLog(options.tuneKernels, options.log),
    variantCache: options.variantCache,
  });
  options.log?.(
    `loaded ${path} in ${((performance.now() - t0) / 1000).toFixed(2)} s ` +
      `(${model.graph.nodes.length} nodes after folding)`,
  );
  try {
    return new Encoder(model, preprocessing, options);
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Tuning options that report through the encoder's log unless they have their own. */
function tuneWithLog(
  tune: boolean | KernelTuningOptions | undefined,
  log: ((line: string) => void) | undefined,
): boolean | KernelTuningOptions | undefined {
  if (!tune || !log) return tune;
  return tune === true ? { log } : { log, ...tune };
}

function dimsText(decl: ValueDecl): string {
  return decl.dims ? `[${decl.dims.map((d) => d ?? "?").join(",")}]` : "(no shape)";
}

/** Ops that pass token ids through unchanged (reshaped, cast, sliced, repeated). */
const ID_PRESERVING = new Set([
  "Cast",
  "Reshape",
  "Flatten",
  "Squeeze",
  "Unsqueeze",
  "Identity",
  "Slice",
  "Transpose",
  "Expand",
  "Concat",
  "Tile",
  "Split",
  "Clip",
]);

/** Rows of the token-embedding table(s) the ids input indexes: every Gather (axis 0) over a
 * constant rank-2 table whose indices carry the ids (through reshapes, casts...). The smallest
 * table when several; undefined when the graph embeds ids some other way. Works on the folded
 * graph, so a float16 table behind a Cast counts as a constant. */
export function tokenEmbeddingRows(graph: Graph, idsInput: string): number | undefined {
  const carriesIds = new Set([idsInput]);
  let rows: number | undefined;
  for (const node of graph.nodes) {
    if (node.opType === "Gather") {
      const table = graph.constants.get(node.inputs[0]);
      if (
        table && table.shape.length === 2 && carriesIds.has(node.inputs[1]) &&
        [0, -2].includes(attrInt(node, "axis", 0))
      ) {
        rows = Math.min(rows ?? Infinity, table.shape[0]);
      }
      if (carriesIds.has(node.inputs[0])) { for (const o of node.outputs) carriesIds.add(o); }
      continue;
    }
    if (ID_PRESERVING.has(node.opType) && carriesIds.has(node.inputs[0])) {
      for (const o of node.outputs) carriesIds.add(o);
    } else if (node.opType === "Concat" && node.inputs.some((i) => carriesIds.has(i))) {
      for (const o of node.outputs) carriesIds.add(o);
    }
  }
  return rows;
}

/** HF-style attention mask for CLIP ids: 1 up to and including the end-of-text token (the first
 * occurrence of the row's largest id), 0 after. */
export function attentionMaskFor(ids: CpuTensor, dtype: CpuTensor["dtype"]): CpuTensor {
  const [rows, ctx] = ids.shape;
  const mask = cpuTensor(dtype, ids.shape);
  for (let r = 0; r < rows; r++) {
    let end = 0;
    for (let j = 1; j < ctx; j++) if (ids.data[r * ctx + j] > ids.data[r * ctx + end]) end = j;
    for (let j = 0; j <= end; j++) mask.data[r * ctx + j] = 1;
  }
  return mask;
}

/** An image or text tower ready to encode batches. */
export class Encoder {
  readonly kind: "image" | "text";
  readonly gpu: Gpu;
  /** Graph input that receives the images or token ids. */
  readonly inputName: string;
  /** Graph output holding the features. */
  readonly outputName: string;
  /** Shape of one input row: `[3, size, size]` or `[contextLength]`. */
  readonly itemShape: readonly number[];
  /** Feature size when the file declares it (else known after the first plan). */
  readonly featureDim: number | undefined;
  /** Rows of the token-embedding table (text towers whose table was found). */
  readonly vocabSize: number | undefined;
  /** A second text input taking an attention mask (Hugging Face exports), filled from the ids. */
  readonly maskInput: ValueDecl | undefined;
  readonly #batched: BatchedModel;
  readonly #inputDecl: ValueDecl;
  readonly #log?: (line: string) => void;

  constructor(
    readonly model: Model,
    readonly preprocessing: Preprocessing,
    options: EncoderOptions = {},
  ) {
    this.gpu = model.gpu;
    this.kind = preprocessing.kind;
    this.#log = options.log;
    const src = model.source;
    const inputs = model.inputs;
    if (options.input !== undefined && !inputs.some((d) => d.name === options.input)) {
      throw new EncoderError(
        `${src}: no input '${options.input}'; inputs are ${
          inputs.map((d) => `'${d.name}'`).join(", ")
        }`,
      );
    }
    if (preprocessing.kind === "image") {
      this.#inputDecl = this.#imageInput(preprocessing, options.input);
      this.itemShape = [3, preprocessing.size, preprocessing.size];
      this.vocabSize = undefined;
      this.maskInput = undefined;
    } else {
      const { ids, mask, vocab } = this.#textInputs(preprocessing, options.input);
      this.#inputDecl = ids;
      this.maskInput = mask;
      this.vocabSize = vocab;
      this.itemShape = [preprocessing.contextLength];
    }
    this.inputName = this.#inputDecl.name;
    const out = this.#featureOutput(options.output);
    this.outputName = out.name;
    const d1 = out.dims?.[1];
    this.featureDim = typeof d1 === "number" ? d1 : undefined;
    this.#batched = new BatchedModel(model, options);
  }

  #imageInput(pre: ImagePreprocessing, wanted: string | undefined): ValueDecl {
    const src = this.model.source;
    const inputs = this.model.inputs;
    if (wanted === undefined && inputs.length !== 1) {
      throw new EncoderError(
        `${src}: an image encoder takes one input, this model has ${inputs.length} (` +
          `${inputs.map((d) => `'${d.name}' ${dimsText(d)}`).join(", ")}); name it with --input`,
      );
    }
    const decl = inputs.find((d) => d.name === (wanted ?? inputs[0].name))!;
    if (decl.dtype !== "float32" && decl.dtype !== "float16") {
      throw new EncoderError(`${src}: image input '${decl.name}' is ${decl.typeName}, not float`);
    }
    const expected = [undefined, 3, pre.size, pre.size];
    if (decl.dims) {
      const bad = decl.dims.length !== 4 ||
        decl.dims.some((d, i) => i > 0 && typeof d === "number" && d !== expected[i]);
      if (bad) {
        throw new EncoderError(
          `${src}: image input '${decl.name}' is ${dimsText(decl)}, but the preprocessing makes ` +
            `[batch,3,${pre.size},${pre.size}]`,
        );
      }
    }
    return decl;
  }

  #textInputs(pre: TextPreprocessing, wanted: string | undefined) {
    const src = this.model.source;
    const candidates = this.model.inputs.filter((d) =>
      (d.dtype === "int64" || d.dtype === "int32") && (!d.dims || d.dims.length === 2)
    );
    const others = this.model.inputs.filter((d) => !candidates.includes(d));
    if (others.length > 0 || candidates.length === 0 || candidates.length > 2) {
      throw new EncoderError(
        `${src}: a text encoder takes int64 token ids [batch,${pre.contextLength}] (and optionally ` +
          `an attention mask of the same shape); this model's inputs are ` +
          this.model.inputs.map((d) => `'${d.name}' ${d.typeName} ${dimsText(d)}`).join(", "),
      );
    }
    // The ids are the input that indexes a token-embedding table.
    const found = candidates.map((d) => ({
      decl: d,
      rows: tokenEmbeddingRows(this.model.graph, d.name),
    }));
    const indexing = found.filter((f) => f.rows !== undefined);
    const ids = wanted !== undefined
      ? found.find((f) => f.decl.name === wanted)
      : found.length === 1
      ? found[0]
      : indexing.length === 1
      ? indexing[0]
      : undefined;
    if (!ids) {
      throw new EncoderError(
        `${src}: cannot tell which input holds the token ids (` +
          `${candidates.map((d) => `'${d.name}'`).join(", ")}): ${indexing.length} of them index ` +
          `a token-embedding table; name it with --input`,
      );
    }
    const mask = candidates.find((d) => d !== ids.decl);
    const decl = ids.decl;
    const d1 = decl.dims?.[1];
    if (typeof d1 === "number" && d1 !== pre.contextLength) {
      throw new EncoderError(
        `${src}: text input '${decl.name}' is ${dimsText(decl)}, but the tokenizer makes ` +
          `${pre.contextLength} tokens per row`,
      );
    }
    const vocab = ids.rows;
    if (vocab !== undefined && pre.maxTokenId !== undefined && vocab <= pre.maxTokenId) {
      throw new EncoderError(
        `${src}: the token-embedding table has ${vocab} rows, but the tokenizer emits ids up to ` +
          `${pre.maxTokenId}: this text model does not match the tokenizer (a model for a ` +
          `different vocabulary?)`,
      );
    }
    if (vocab === undefined) {
      this.#log?.(`${src}: no token-embedding Gather found; token ids are not range-checked`);
    }
    return { ids: decl, mask, vocab };
  }

  #featureOutput(wanted: string | undefined): ValueDecl {
    const src = this.model.source;
    const outputs = this.model.outputs;
    if (wanted !== undefined) {
      const o = outputs.find((d) => d.name === wanted);
      if (!o) {
        throw new EncoderError(
          `${src}: no output '${wanted}'; outputs are ${
            outputs.map((d) => `'${d.name}'`).join(", ")
          }`,
        );
      }
      return o;
    }
    const rank2 = outputs.filter((d) => d.dims?.length === 2);
    if (rank2.length === 1) return rank2[0];
    const list = outputs.map((d) => `'${d.name}' ${dimsText(d)}`).join(", ");
    if (outputs.length === 1 && outputs[0].dims === undefined) return outputs[0];
    if (rank2.length === 0 && outputs.every((d) => d.dims !== undefined)) {
      // Hugging Face exports of the bare towers (CLIPVisionModel, CLIPTextModel) end in the
      // hidden states; the embeddings come from the *WithProjection models.
      throw new EncoderError(
        `${src}: no output is a [batch, features] embedding (${list}); export the tower with its ` +
          "projection (e.g. Hugging Face's CLIPVisionModelWithProjection / " +
          "CLIPTextModelWithProjection, outputs image_embeds / text_embeds)",
      );
    }
    throw new EncoderError(
      `${src}: cannot tell which output holds the features (${list}); name it with --output`,
    );
  }

  /** Checks a batch (rank, dtype, per-row shape, token ids) before anything runs. */
  #check(x: GpuTensor | CpuTensor): number {
    const src = this.model.source;
    const want = this.kind === "image"
      ? `float32 [batch,${this.itemShape.join(",")}] (NCHW)`
      : `int64 token ids [batch,${this.itemShape[0]}]`;
    if (!x || typeof x !== "object" || !Array.isArray(x.shape)) {
      throw new BatchInputError(`${src}: expected a tensor of ${want}`);
    }
    const okType = this.kind === "image"
      ? x.dtype === "float32" || x.dtype === "float16"
      : x.dtype === "int64" || x.dtype === "int32";
    const okShape = x.shape.length === this.itemShape.length + 1 &&
      this.itemShape.every((d, i) => x.shape[i + 1] === d);
    if (!okType || !okShape) {
      throw new BatchInputError(
        `${src}: ${this.kind} encoder input must be ${want}, got ${x.dtype} ${
          shapeString(x.shape)
        }`,
      );
    }
    if (x.shape[0] < 1) throw new BatchInputError(`${src}: empty batch`);
    if (!isGpuTensor(x) && this.kind === "text") this.#checkIds(x);
    return x.shape[0];
  }

  #checkIds(ids: CpuTensor): void {
    const ctx = this.itemShape[0];
    const limit = this.vocabSize ?? 2 ** 31;
    for (let i = 0; i < ids.data.length; i++) {
      const v = ids.data[i];
      if (!Number.isInteger(v) || v < 0 || v >= limit) {
        throw new BatchInputError(
          `${this.model.source}: token id ${v} at row ${Math.floor(i / ctx)}, position ` +
            `${i % ctx} is outside the model's vocabulary [0, ${limit})`,
        );
      }
    }
  }

  /** The model's inputs for a batch (ids/images plus a derived attention mask). */
  async #inputs(x: GpuTensor | CpuTensor): Promise<Record<string, GpuTensor | CpuTensor>> {
    const decl = this.#inputDecl;
    let main: GpuTensor | CpuTensor = x;
    if (x.dtype !== decl.dtype) {
      // float32 <-> float16 and int32 <-> int64 share the GPU layout: relabel (host data is
      // converted so float16 rounding and int64 arrays match what the executor expects).
      main = isGpuTensor(x) ? { ...x, dtype: decl.dtype } : cpuTensor(decl.dtype, x.shape, x.data);
    }
    const inputs: Record<string, GpuTensor | CpuTensor> = { [decl.name]: main };
    if (this.maskInput) {
      const ids = isGpuTensor(x) ? await downloadTensor(this.gpu, x) : x;
      inputs[this.maskInput.name] = attentionMaskFor(ids, this.maskInput.dtype);
    }
    return inputs;
  }

  #items(): Map<string, readonly number[]> {
    const items = new Map<string, readonly number[]>([[this.inputName, this.itemShape]]);
    if (this.maskInput) items.set(this.maskInput.name, this.itemShape);
    return items;
  }

  /** How a batch of `rows` will run (chunks, estimated peak GPU memory); builds the plans but
   * runs nothing. `onGpu`: features stay on the GPU (stitched there) / inputs are on the GPU. */
  planBatch(rows: number, onGpu: { outputs?: boolean; inputs?: boolean } = {}): Promise<BatchPlan> {
    return this.#batched.planBatch(
      this.#items(),
      rows,
      onGpu.outputs ?? false,
      onGpu.inputs ?? false,
    );
  }

  /** Encodes a batch; the features `[batch, dim]` stay on the GPU (a pooled tensor the caller
   * releases with `releaseTensor`). Does not wait for the GPU. */
  async encode(x: GpuTensor | CpuTensor): Promise<GpuTensor> {
    const rows = this.#check(x);
    const plan = await this.planBatch(rows, { outputs: true, inputs: isGpuTensor(x) });
    this.#log?.(describeBatchPlan(plan));
    const t0 = performance.now();
    const outs = await this.#batched.runGpu(await this.#inputs(x), plan);
    for (const [name, t] of Object.entries(outs)) {
      if (name !== this.outputName) releaseTensor(this.gpu, t);
    }
    if (this.#log) {
      await this.gpu.sync(`encoding with ${this.model.source}`);
      this.#log(`encoded ${rows} row(s) in ${((performance.now() - t0) / 1000).toFixed(3)} s`);
    }
    return outs[this.outputName];
  }

  /** Encodes a batch and downloads the features `[batch, dim]`. */
  async encodeToCpu(x: GpuTensor | CpuTensor): Promise<CpuTensor> {
    const rows = this.#check(x);
    if (isGpuTensor(x)) {
      const t = await this.encode(x);
      try {
        return await downloadTensor(this.gpu, t);
      } finally {
        releaseTensor(this.gpu, t);
      }
    }
    const plan = await this.planBatch(rows);
    this.#log?.(describeBatchPlan(plan));
    const t0 = performance.now();
    const outs = await this.#batched.run(await this.#inputs(x) as Record<string, CpuTensor>, plan);
    this.#log?.(`encoded ${rows} row(s) in ${((performance.now() - t0) / 1000).toFixed(3)} s`);
    return outs[this.outputName];
  }

  /** Frees the model's plans and weights. */
  dispose(): void {
    this.model.dispose();
  }
}
