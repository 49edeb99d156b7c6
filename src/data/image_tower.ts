/** The image encoders feature extraction drives (`ImageTower`), and the one over an `Encoder`. */
import type { CpuTensor } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import type { Encoder } from "../models/encoder.ts";
import type { Normalization } from "../models/preprocessing.ts";

/** An image encoder as extraction sees it: input size, normalisation, and a batch encoder. */
export interface ImageTower {
  /** Name in messages and manifests ("clip_visual", "aux"). */
  readonly role: string;
  /** Side of the square input. */
  readonly size: number;
  readonly normalization: Normalization;
  /** Encodes float32 NCHW `[rows, 3, size, size]` into `[rows, dim]` features (row-major). */
  encode(batch: CpuTensor): Promise<{ data: Float32Array; dim: number }>;
}

/** An `ImageTower` over an image `Encoder` (its preprocessing gives size and normalisation). */
export function towerFromEncoder(role: string, encoder: Encoder): ImageTower {
  const pre = encoder.preprocessing;
  if (pre.kind !== "image") {
    throw new EngineError(`${role}: ${encoder.model.source} is not an image encoder`);
  }
  return {
    role,
    size: pre.size,
    normalization: pre.normalization,
    async encode(batch) {
      const out = await encoder.encodeToCpu(batch);
      if (out.shape.length !== 2 || !(out.data instanceof Float32Array)) {
        throw new EngineError(
          `${role}: ${encoder.model.source} gave features of shape [${out.shape}] ${out.dtype}; ` +
            `expected float32 [batch, dim]`,
        );
      }
      return { data: out.data, dim: out.shape[1] };
    },
  };
}
