/** Zero-shot CLIP: accuracy of argmax(100 * normalize(f) @ clip_weights) on the GPU, and the CLIP
 * logits step the cache-model baselines share. */
import {
  createStorageBuffer,
  type Dispatch,
  getGpu,
  type Gpu,
  type GpuTensor,
  readBuffer,
  ResourceScope,
  STORAGE_USAGE,
  submitDispatches,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import type { AmuFeatures, FeatureMatrix } from "../models/features.ts";
import { prepareL2NormalizeRows } from "../kernels/amu_normalize.ts";
import { prepareAmuLogits } from "../kernels/amu_logits.ts";
import { createFixedStepState } from "../kernels/amu_step.ts";
import { prepareArgMax } from "../kernels/argmax.ts";
import type { MethodResult } from "./method.ts";

/** CLIP's logit scale (`100. * features @ clip_weights` in CLIP, Tip-Adapter and AMU). */
export const CLIP_LOGIT_SCALE = 100;

/** Bytes of the widest per-chunk buffer the baselines allocate for a split's rows. */
export const DEFAULT_CHUNK_BYTES = 64 << 20;

/** A zero-filled float32 (or int32) storage tensor, padded to whole vec4s for the AMU kernels. */
export function emptyTensor(
  gpu: Gpu,
  owner: ResourceScope,
  shape: number[],
  label: string,
  dtype: "float32" | "int32" = "float32",
): GpuTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const buffer = owner.own(gpu.device.createBuffer({
    size: Math.max(16, Math.ceil((n * 4) / 16) * 16),
    usage: STORAGE_USAGE,
    label,
  }));
  return { buffer, shape, dtype };
}

/** Uploads host data as a storage tensor owned by `owner`. */
export function uploadOwned(
  gpu: Gpu,
  owner: ResourceScope,
  data: Float32Array | Int32Array | Uint32Array,
  shape: number[],
  label: string,
): GpuTensor {
  return {
    buffer: owner.own(createStorageBuffer(gpu, data, label)),
    shape,
    dtype: data instanceof Float32Array ? "float32" : "int32",
  };
}

export interface ClipSide {
  /** [rows, Dc]: the rows' CLIP features, L2-normalised in place by the dispatches. */
  x: GpuTensor;
  /** [rows, C]: 100 * x @ clip_weights, written by the dispatches. */
  logits: GpuTensor;
  dispatches: Dispatch[];
}

/** Uploads raw CLIP features [rows, Dc] and prepares their normalisation and CLIP logits against
 * `clipWeights` [Dc, C] (the AMU kernels: one row per workgroup, then a blocked matmul). */
export function prepareClipSide(
  gpu: Gpu,
  owner: ResourceScope,
  raw: Float32Array,
  rows: number,
  clipWeights: GpuTensor,
  label: string,
): ClipSide {
  const [dc, classes] = clipWeights.shape;
  const x = uploadOwned(gpu, owner, raw, [rows, dc], `${label} clip`);
  const logits = emptyTensor(gpu, owner, [rows, classes], `${label} CLIP logits`);
  const dispatches = [
    ...prepareL2NormalizeRows(gpu, owner, x),
    ...prepareAmuLogits(gpu, owner, {
      state: createFixedStepState(gpu, owner, 0, rows),
      a: x,
      b: clipWeights,
      layout: "depth-major",
      out: logits,
      maxRows: rows,
      scale: CLIP_LOGIT_SCALE,
    }),
  ];
  return { x, logits, dispatches };
}

/** Row chunks [start, end) whose widest buffer (`width` floats a row) fits `chunkBytes`. */
export function rowChunks(rows: number, width: number, chunkBytes: number): [number, number][] {
  const per = Math.max(1, Math.floor(chunkBytes / (Math.max(width, 1) * 4)));
  const out: [number, number][] = [];
  for (let r = 0; r < rows; r += per) out.push([r, Math.min(rows, r + per)]);
  return out;
}

export interface ZeroShotOptions {
  gpu?: Gpu;
  chunkBytes?: number;
}

/** Zero-shot CLIP accuracy (percent) of `clip` [T, Dc] raw features with `labels` [T]. */
export async function zeroShotAccuracy(
  clip: FeatureMatrix,
  labels: Int32Array,
  clipWeights: FeatureMatrix,
  options: ZeroShotOptions = {},
): Promise<number> {
  const T = clip.rows, C = clipWeights.cols;
  if (clip.cols !== clipWeights.rows) {
    throw new EngineError(
      `zero-shot: features have ${clip.cols} columns, clip_weights ${clipWeights.rows} rows`,
    );
  }
  if (labels.length !== T) {
    throw new EngineError(`zero-shot: ${T} feature rows but ${labels.length} labels`);
  }
  if (T === 0) throw new EngineError("zero-shot: no rows to classify");
  const gpu = options.gpu ?? await getGpu();
  const scope = new ResourceScope();
  try {
    const w = uploadOwned(gpu, scope, clipWeights.data, [clipWeights.rows, C], "clip_weights");
    let hits = 0;
    const width = Math.max(clip.cols, C);
    for (const [r0, r1] of rowChunks(T, width, options.chunkBytes ?? DEFAULT_CHUNK_BYTES)) {
      const rows = r1 - r0;
      const chunk = new ResourceScope();
      try {
        const side = prepareClipSide(
          gpu,
          chunk,
          clip.data.subarray(r0 * clip.cols, r1 * clip.cols),
          rows,
          w,
          "zero-shot",
        );
        const pred = emptyTensor(gpu, chunk, [rows], "zero-shot argmax", "int32");
        const dispatches = [...side.dispatches, ...prepareArgMax(gpu, chunk, side.logits, pred, 1)];
        await gpu.scoped("zero-shot CLIP", () => submitDispatches(gpu, dispatches));
        const p = new Int32Array(await readBuffer(gpu, pred.buffer, rows * 4));
        for (let r = 0; r < rows; r++) if (p[r] === labels[r0 + r]) hits++;
      } finally {
        chunk.dispose();
      }
    }
    return 100 * hits / T;
  } finally {
    scope.dispose();
  }
}

/** The zero-shot baseline as a method result (no hyper-parameters, no training). */
export async function runZeroShot(
  features: AmuFeatures,
  options: ZeroShotOptions = {},
): Promise<MethodResult> {
  const acc = await zeroShotAccuracy(
    features.testClip,
    features.testLabels,
    features.clipWeights,
    options,
  );
  return { method: "zero-shot", zero_shot_acc: acc, final: { test_acc: acc } };
}
