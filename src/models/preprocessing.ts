/** What an encoder expects its input to look like: image size and per-channel normalisation for
 * image towers, context length (and the tokenizer's largest id) for text towers. The constants
 * live here, below src/data, so the data pipeline and the encoders share one definition. */

/** Per-channel `(x - mean) / std` applied to RGB values in [0, 1] (torchvision's Normalize). */
export interface Normalization {
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

/** OpenAI CLIP's image statistics (`clip/clip.py`, `_transform`). */
export const CLIP_NORMALIZATION: Normalization = {
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
};

/** ImageNet statistics (torchvision models, MoCo v3 ResNet-50 used as AMU's auxiliary encoder). */
export const IMAGENET_NORMALIZATION: Normalization = {
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

/** Image tower input: float32 NCHW `[batch, 3, size, size]`, resized (bicubic, shorter side),
 * center-cropped and normalised. */
export interface ImagePreprocessing {
  readonly kind: "image";
  /** Side of the square input in pixels (224 for CLIP ViT-B/16, RN50 and ResNet-50). */
  readonly size: number;
  readonly normalization: Normalization;
}

/** Text tower input: int64 token ids `[batch, contextLength]` (start, BPE ids, end, zeros). */
export interface TextPreprocessing {
  readonly kind: "text";
  /** Tokens per row (77 for CLIP). */
  readonly contextLength: number;
  /** Largest id the tokenizer emits (49407, CLIP's end-of-text); the model's token-embedding
   * table must have more rows than this. Undefined: only the ids actually given are checked. */
  readonly maxTokenId?: number;
}

export type Preprocessing = ImagePreprocessing | TextPreprocessing;

/** CLIP image tower preprocessing at `size` pixels. */
export function clipImage(size = 224): ImagePreprocessing {
  return { kind: "image", size, normalization: CLIP_NORMALIZATION };
}

/** ImageNet-normalised image preprocessing (the auxiliary ResNet-50) at `size` pixels. */
export function imagenetImage(size = 224): ImagePreprocessing {
  return { kind: "image", size, normalization: IMAGENET_NORMALIZATION };
}

/** CLIP's BPE tokenizer: 77 tokens, ids up to 49407 (end of text). */
export const CLIP_TEXT: TextPreprocessing = {
  kind: "text",
  contextLength: 77,
  maxTokenId: 49407,
};
