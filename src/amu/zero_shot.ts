/** Zero-shot CLIP: accuracy of argmax(100 * normalize(f) @ clip_weights) on the GPU, and the CLIP
 * logits step the cache-model baselines share. */
import {
  type Dispatch,
  getGpu,
  type Gpu,
  type GpuTensor,
  readBuffer,
  ResourceScope,
  submitDispatches,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import type { AmuFeatures, FeatureMatrix } from "../models/features.ts";
import { prepareL2NormalizeRows } from "../kernels/amu_normalize.ts";
import { prepareAmuLogits } from "../kernels/amu_logits.ts";
import { createFixedStepState } from "../kernels/amu_step.ts";
import { prepareArgMax } from "../kernels/argmax.ts";
import { DEFAULT_CHUNK_BYTES, emptyTensor, rowChunks, uploadOwned } from "./gpu_tensors.ts";
import type { MethodResult } from "./method.ts";

/** CLIP's logit scale (`100. * features @ clip_weights` in CLIP, Tip-Adapter and AMU). */
export const CLIP_LOGIT_SCALE = 100;

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
