/** Per-row AMU work after the head's matmul (`shaders/amu_rows.wgsl`): standardise, fuse with
 * CLIP, both cross-entropies and (training) their gradient with respect to the head logits;
 * (evaluation) losses and argmax hits, then a fixed-order total over the test set. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";

export {
  EVAL_TOTALS_WORDS,
  type EvalTotals,
  HIT_AUX,
  HIT_CLIP,
  HIT_FUSED,
  unpackEvalTotals,
} from "./amu_rows_shape.ts";

type Buf = GpuTensor | GPUBuffer;

export interface TrainRowsArgs {
  state: GPUBuffer;
  /** i32 order buffer [epochs * N]. */
  order: Buf;
  /** i32 labels [N]. */
  labels: Buf;
  /** f32 CLIP logits of every training row [N, C]. */
  clipLogits: Buf;
  /** f32 uncertainty factor of every training row [N]. */
  factors: Buf;
  /** f32 head logits of the batch [maxRows, C] (input). */
  z: Buf;
  /** f32 [maxRows, C]: d(batch-mean loss)/dz (output). */
  dz: Buf;
  /** f32 [maxRows, 4]: (loss_merge, loss_aux, correct, 0) per batch row (output). */
  rowStats: Buf;
  maxRows: number;
  classes: number;
  alpha: number;
  lambda: number;
  workgroupSize?: number;
}

export function prepareAmuTrainRows(
  gpu: Gpu,
  owner: ResourceOwner,
  args: TrainRowsArgs,
): Dispatch[] {
  const uniform = owner.own(createUniform(
    gpu,
    "amu_rows",
    {
      classes: args.classes,
      rows: args.maxRows,
      rowOffset: 0,
      alpha: args.alpha,
      lambda: args.lambda,
      outOffset: 0,
    },
    "amu_rows train",
  ));
  return [prepareDispatch(
    gpu,
    { shader: "amu_rows", entryPoint: "train", placeholders: { WG: args.workgroupSize ?? 64 } },
    [
      args.state,
      args.order,
      args.labels,
      args.clipLogits,
      args.factors,
      args.z,
      args.dz,
      args.rowStats,
      uniform,
    ],
    args.maxRows,
  )];
}

export interface EvalRowsArgs {
  /** f32 head logits [rows, C] of this chunk. */
  z: Buf;
  /** f32 CLIP logits [rows, C] and factors [rows] of this chunk. */
  clipLogits: Buf;
  factors: Buf;
  /** i32 labels of the whole set; this chunk's are at rowOffset. */
  labels: Buf;
  /** f32 [total, 2] (loss_merge, loss_aux) and u32 [total] hit bits, written at rowOffset. */
  rowLoss: Buf;
  rowHits: Buf;
  rows: number;
  rowOffset: number;
  classes: number;
  alpha: number;
  lambda: number;
  workgroupSize?: number;
}

export function prepareAmuEvalRows(
  gpu: Gpu,
  owner: ResourceOwner,
  args: EvalRowsArgs,
): Dispatch[] {
  const uniform = owner.own(createUniform(
    gpu,
    "amu_rows",
    {
      classes: args.classes,
      rows: args.rows,
      rowOffset: args.rowOffset,
      alpha: args.alpha,
      lambda: args.lambda,
      outOffset: 0,
    },
    "amu_rows eval",
  ));
  return [prepareDispatch(
    gpu,
    { shader: "amu_rows", entryPoint: "eval", placeholders: { WG: args.workgroupSize ?? 64 } },
    [
      args.z,
      args.clipLogits,
      args.factors,
      args.labels,
      args.rowLoss,
      args.rowHits,
      uniform,
    ],
    args.rows,
  )];
}

export interface EvalTotalsArgs {
  rowLoss: Buf;
  rowHits: Buf;
  rows: number;
  /** f32 output; totals[outOffset ..] gets the EVAL_TOTALS_WORDS sums (`unpackEvalTotals`). */
  totals: Buf;
  outOffset: number;
  workgroupSize?: number;
}

export function prepareAmuEvalTotals(
  gpu: Gpu,
  owner: ResourceOwner,
  args: EvalTotalsArgs,
): Dispatch[] {
  const uniform = owner.own(createUniform(
    gpu,
    "amu_rows",
    { classes: 0, rows: args.rows, rowOffset: 0, alpha: 0, lambda: 0, outOffset: args.outOffset },
    "amu_rows totals",
  ));
  return [prepareDispatch(
    gpu,
    {
      shader: "amu_rows",
      entryPoint: "totals_main",
      placeholders: { WG: args.workgroupSize ?? 64 },
    },
    [args.rowLoss, args.rowHits, args.totals, uniform],
    1,
  )];
}

export interface ZeroShotArgs {
  /** f32 CLIP logits [rows, C] of this chunk. */
  clipLogits: Buf;
  /** i32 labels of the whole set; this chunk's are at rowOffset. */
  labels: Buf;
  /** u32 [total]: HIT_CLIP where CLIP's argmax is the label, else 0 (written at rowOffset). */
  rowHits: Buf;
  rows: number;
  rowOffset: number;
  classes: number;
  workgroupSize?: number;
}

/** Zero-shot hits of CLIP alone (before any training). */
export function prepareAmuZeroShot(
  gpu: Gpu,
  owner: ResourceOwner,
  args: ZeroShotArgs,
): Dispatch[] {
  const uniform = owner.own(createUniform(
    gpu,
    "amu_rows",
    {
      classes: args.classes,
      rows: args.rows,
      rowOffset: args.rowOffset,
      alpha: 0,
      lambda: 0,
      outOffset: 0,
    },
    "amu_rows zeroshot",
  ));
  return [prepareDispatch(
    gpu,
    { shader: "amu_rows", entryPoint: "zeroshot", placeholders: { WG: args.workgroupSize ?? 64 } },
    [args.clipLogits, args.labels, args.rowHits, uniform],
    args.rows,
  )];
}
