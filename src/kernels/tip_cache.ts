/** Tip-Adapter's cache model on the GPU (`shaders/tip_cache.wgsl`): Tip-Adapter-F's per-row loss
 * and affinity gradient, and the (beta, alpha) grid's hit counts. See `tip_cache_ref.ts` for the
 * same arithmetic on the host. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";

export { buildCacheIndex } from "./tip_cache_shape.ts";

type Buf = GpuTensor | GPUBuffer;

const WG = 64;

/** The workgroup array that holds one row's C values: a multiple of the workgroup size, so one
 * pipeline serves nearby class counts. */
function classCapacity(gpu: Gpu, classes: number): number {
  const cmax = Math.ceil(classes / WG) * WG;
  // Two reduction arrays of WG words share the workgroup's memory with the row.
  const limit = gpu.device.limits.maxComputeWorkgroupStorageSize;
  if ((cmax + 2 * WG) * 4 > limit) {
    throw new EngineError(
      `Tip-Adapter kernels keep a row's ${classes} class logits in workgroup memory, which needs ` +
        `${(cmax + 2 * WG) * 4} bytes, over this adapter's maxComputeWorkgroupStorageSize ` +
        `(${limit})`,
    );
  }
  return cmax;
}

export interface TipTrainRowsArgs {
  /** Step state (amu_step.ts): the batch's slice of the order and its size. */
  state: GPUBuffer;
  order: Buf;
  /** f32 [maxRows, N]: the batch's affinities (features @ keys^T). */
  affinity: Buf;
  /** f32 [R, C]: CLIP logits of every training row. */
  clipLogits: Buf;
  /** i32 [R]: training labels. */
  labels: Buf;
  /** u32 cache index (`buildCacheIndex`). */
  index: Buf;
  /** f32 [maxRows, N], written: dloss/dA. */
  dA: Buf;
  /** f32 [maxRows, 4], written: (loss, 0, hit, 0) per row (amu_step finish's input). */
  rowStats: Buf;
  maxRows: number;
  classes: number;
  entries: number;
  beta: number;
  alpha: number;
}

export function prepareTipTrainRows(
  gpu: Gpu,
  owner: ResourceOwner,
  a: TipTrainRowsArgs,
): Dispatch[] {
  const cmax = classCapacity(gpu, a.classes);
  const uniform = owner.own(createUniform(
    gpu,
    "tip_cache",
    {
      classes: a.classes,
      entries: a.entries,
      rows: 0,
      rowOffset: 0,
      betas: 0,
      alphas: 0,
      hitsOffset: 0,
      beta: a.beta,
      alpha: a.alpha,
    },
    "tip_cache train_rows",
  ));
  return [prepareDispatch(
    gpu,
    { shader: "tip_cache", entryPoint: "train_rows", placeholders: { WG, CMAX: cmax } },
    [a.state, a.order, a.affinity, a.clipLogits, a.labels, a.index, a.dA, a.rowStats, uniform],
    a.maxRows,
  )];
}

export interface TipGridArgs {
  /** f32 [rows, N]: the chunk's affinities. */
  affinity: Buf;
  /** f32 [rows, C]: the chunk's CLIP logits. */
  clipLogits: Buf;
  /** i32 labels of the whole split; the chunk's rows are rowOffset .. rowOffset + rows. */
  labels: Buf;
  index: Buf;
  /** f32 [betas | alphas]. */
  values: Buf;
  /** u32 hit counts, [betas, alphas] from `hitsOffset` (accumulated: zero them first). */
  hits: Buf;
  hitsOffset?: number;
  rows: number;
  rowOffset: number;
  betas: number;
  alphas: number;
  classes: number;
  entries: number;
}

export function prepareTipGrid(gpu: Gpu, owner: ResourceOwner, a: TipGridArgs): Dispatch[] {
  if (a.betas < 1 || a.alphas < 1) {
    throw new EngineError(`Tip-Adapter grid needs at least one beta and one alpha`);
  }
  const cmax = classCapacity(gpu, a.classes);
  const uniform = owner.own(createUniform(
    gpu,
    "tip_cache",
    {
      classes: a.classes,
      entries: a.entries,
      rows: a.rows,
      rowOffset: a.rowOffset,
      betas: a.betas,
      alphas: a.alphas,
      hitsOffset: a.hitsOffset ?? 0,
      beta: 0,
      alpha: 0,
    },
    "tip_cache grid",
  ));
  return [prepareDispatch(
    gpu,
    { shader: "tip_cache", entryPoint: "grid", placeholders: { WG, CMAX: cmax } },
    [a.affinity, a.clipLogits, a.labels, a.index, a.values, a.hits, uniform],
    a.rows * a.betas,
  )];
}
