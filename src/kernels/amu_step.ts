/** AMU-Tuning per-step bookkeeping on the GPU (`shaders/amu_step.wgsl`): the step state every AMU
 * training kernel reads (batch slice of the order buffer, batch size, AdamW scalars), and the
 * per-iteration loss record. See `amu_step_ref.ts` for the same arithmetic on the host. */
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  Params,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { STEP_STATE_WORDS, type StepState } from "./amu_step_ref.ts";

export { STEP_STATE_WORDS, type StepState } from "./amu_step_ref.ts";

/** Bytes of the step state struct (8 x 32-bit words). */
export const STEP_STATE_BYTES = STEP_STATE_WORDS * 4;

/** Packs a step state as the WGSL struct lays it out. */
export function packStepState(s: StepState): ArrayBuffer {
  const buf = new ArrayBuffer(STEP_STATE_BYTES);
  const dv = new DataView(buf);
  dv.setUint32(0, s.step, true);
  dv.setUint32(4, s.iter, true);
  dv.setUint32(8, s.rowStart, true);
  dv.setUint32(12, s.rowCount, true);
  dv.setFloat32(16, s.lr, true);
  dv.setFloat32(20, s.decay, true);
  dv.setFloat32(24, s.stepSize, true);
  dv.setFloat32(28, s.bc2Sqrt, true);
  return buf;
}

export function unpackStepState(buf: ArrayBuffer): StepState {
  const dv = new DataView(buf);
  return {
    step: dv.getUint32(0, true),
    iter: dv.getUint32(4, true),
    rowStart: dv.getUint32(8, true),
    rowCount: dv.getUint32(12, true),
    lr: dv.getFloat32(16, true),
    decay: dv.getFloat32(20, true),
    stepSize: dv.getFloat32(24, true),
    bc2Sqrt: dv.getFloat32(28, true),
  };
}

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
    new Params().u32(args.rowsPerEpoch, args.batchSize, args.itersPerEpoch),
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
  /** f32 [itersPerEpoch, 4]: written at the step's iteration (loss, merge, aux, correct). */
  iterStats: GPUBuffer;
  lambda: number;
}

/** One invocation that reduces the batch's row losses (in row order) into the iteration record. */
export function prepareStepFinish(
  gpu: Gpu,
  owner: ResourceOwner,
  args: StepFinishArgs,
): Dispatch[] {
  const uniform = owner.own(
    createUniform(gpu, new Params().f32(args.lambda), "amu_step finish"),
  );
  return [prepareDispatch(
    gpu,
    { shader: "amu_step", entryPoint: "finish" },
    [args.state, args.rowStats, args.iterStats, uniform],
    1,
  )];
}
