/** Encoders for AMU-Tuning: CLIP image/text towers and the auxiliary image encoder, loaded from
 * ONNX with their preprocessing, encoding batches of any size on the GPU. */
export {
  attentionMaskFor,
  Encoder,
  EncoderError,
  type EncoderOptions,
  loadEncoder,
  tokenEmbeddingRows,
} from "./encoder.ts";
export {
  BatchedModel,
  BatchInputError,
  type BatchOptions,
  type BatchPlan,
  DEFAULT_MAX_CHUNK_ROWS,
  DEFAULT_MEMORY_BUDGET,
  describeBatchPlan,
  sliceRows,
} from "./batching.ts";
export * from "./preprocessing.ts";
