/** CLIP's zero-shot classifier from class names: every class's prompts (one per template) are
 * tokenized, encoded with the text tower in batches, and averaged per class after L2
 * normalisation (`classWeightsFromEmbeddings`), giving `clip_weights` [dim, classes]. */
import type { CpuTensor } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import type { Encoder } from "../models/encoder.ts";
import type { FeatureMatrix } from "../models/features.ts";
import { classPrompts, classWeightsFromEmbeddings } from "./prompts.ts";

/** What the classifier needs of a tokenizer (ClipTokenizer, or the demo's stand-in). */
export interface PromptTokenizer {
  /** Row-major `[texts.length, contextLength]` ids, 0-padded. */
  tokenizeBatch(texts: readonly string[], options: { contextLength: number }): Float64Array;
}

/** Encodes int64 ids `[rows, context]` into `[rows, dim]` features. */
export type TextEncodeFn = (ids: CpuTensor) => Promise<{ data: Float32Array; dim: number }>;

export function textEncodeFn(encoder: Encoder): TextEncodeFn {
  return async (ids) => {
    const out = await encoder.encodeToCpu(ids);
    if (out.shape.length !== 2 || !(out.data instanceof Float32Array)) {
      throw new EngineError(
        `${encoder.model.source}: text features have shape [${out.shape}] ${out.dtype}; ` +
          `expected float32 [batch, dim]`,
      );
    }
    return { data: out.data, dim: out.shape[1] };
  };
}

export interface ClassWeightsOptions {
  contextLength: number;
  /** Prompts per text-tower batch. */
  batchSize: number;
  /** Called after each batch with (prompts done, prompts in all). */
  onProgress?: (done: number, total: number) => void;
}

/** `clip_weights` [dim, classes] for `classnames` under `templates`. */
export async function encodeClassWeights(
  encode: TextEncodeFn,
  tokenizer: PromptTokenizer,
  classnames: readonly string[],
  templates: readonly string[],
  options: ClassWeightsOptions,
): Promise<FeatureMatrix> {
  if (classnames.length === 0) throw new EngineError("no class names to build a classifier from");
  if (templates.length === 0) throw new EngineError("no prompt templates");
  const prompts = classnames.flatMap((c) => classPrompts(c, templates));
  const ctx = options.contextLength;
  const ids = tokenizer.tokenizeBatch(prompts, { contextLength: ctx });
  const batch = Math.max(1, options.batchSize);
  let dim = 0;
  let embeddings = new Float32Array(0);
  for (let start = 0; start < prompts.length; start += batch) {
    const rows = Math.min(batch, prompts.length - start);
    const x: CpuTensor = {
      dtype: "int64",
      shape: [rows, ctx],
      data: ids.subarray(start * ctx, (start + rows) * ctx),
    };
    const out = await encode(x);
    if (start === 0) {
      dim = out.dim;
      embeddings = new Float32Array(prompts.length * dim);
    } else if (out.dim !== dim) {
      throw new EngineError(`text features changed size from ${dim} to ${out.dim}`);
    }
    embeddings.set(out.data.subarray(0, rows * dim), start * dim);
    options.onProgress?.(start + rows, prompts.length);
  }
  const weights = classWeightsFromEmbeddings(embeddings, classnames.length, templates.length, dim);
  return { rows: dim, cols: classnames.length, data: weights };
}
