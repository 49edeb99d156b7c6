/** AMU-Tuning per-step bookkeeping on the GPU (`shaders/amu_step.wgsl`): the step state every AMU
 * training kernel reads (batch slice of the order buffer, batch size, AdamW scalars), and the
 * per-iteration loss record. See `amu_step_ref.ts` for the same arithmetic on the host. */
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { packStepState } from "./amu_step_shape.ts";

export {
  ITER_RECORD_WORDS,
  type IterationRecords,
  packStepState,
  STEP_STATE_BYTES,
  STEP_STATE_WORDS,
  type StepState,
  unpackIterationRecords,
  unpackStepState,
} from "./amu_step_shape.ts";

/** A constant step state covering rows [rowStart, rowStart + rowCount): how the row kernels are
 * pointed at a whole matrix (precomputation, evaluation) instead of a training batch. */
export function createFixedStepState(
  gpu: Gpu,
  owner: ResourceOwner,
  rowStart: number,
  rowCount: number,
): GPUBuffer {
  const state = packStepState({
    step: 0,
    iter: 0,
    rowStart,
    rowCount,
    lr: 0,
    decay: 1,
    stepSize: 0,
    bc2Sqrt: 1,
  });
  return owner.own(createStorageBuffer(gpu, new Uint8Array(state), "amu step state (fixed)"));
}

export interface StepBeginArgs {
  /** u32 [1]: the global step the next `begin` starts (set it to resume mid-run). */
  counter: GPUBuffer;
  /** f32 [steps, 4]: (lr, decay, stepSize, bc2Sqrt) per global step. */
  schedule: GPUBuffer;
  /** Written: the step state. */
  state: GPUBuffer;
  rowsPerEpoch: number;
  batchSize: number;
  itersPerEpoch: number;
}

/** One invocation that sets up the next step's state and advances the counter. */
export function prepareStepBegin(gpu: Gpu, owner: ResourceOwner, args: StepBeginArgs): Dispatch[] {
  const uniform = owner.own(createUniform(
    gpu,
    "amu_step",
    {
      rowsPerEpoch: args.rowsPerEpoch,
      batchSize: args.batchSize,
      itersPerEpoch: args.itersPerEpoch,
      lambda: 0,
    },
    "amu_step begin",
  ));
  return [prepareDispatch(
    gpu,
    { shader: "amu_step", entryPoint: "begin" },
    [args.counter, args.schedule, args.state, uniform],
    1,
  )];
}

export interface StepFinishArgs {
  state: GPUBuffer;
  /** f32 [maxRows, 4]: per batch row (loss_merge, loss_aux, correct, 0). */
  rowStats: GPUBuffer;
  /** f32 [itersPerEpoch, ITER_RECORD_WORDS]: the step's iteration record is written
   * (`unpackIterationRecords` reads them). */
  iterStats: GPUBuffer;
  lambda: number;
}

/** One invocation that reduces the batch's row losses (in row order) into the iteration record. */
export function prepareStepFinish(
  gpu: Gpu,
  owner: ResourceOwner,
  args: StepFinishArgs,
): Dispatch[] {
  const uniform = owner.own(createUniform(
    gpu,
    "amu_step",
    { rowsPerEpoch: 0, batchSize: 0, itersPerEpoch: 0, lambda: args.lambda },
    "amu_step finish",
  ));
  return [prepareDispatch(
    gpu,
    { shader: "amu_step", entryPoint: "finish" },
    [args.state, args.rowStats, args.iterStats, uniform],
    1,
  )];
}
