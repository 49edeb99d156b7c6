/** The AMU-Tuning trainer's GPU side: every buffer, every prepared dispatch, and the two things
 * the host asks of it — run a span of training steps, evaluate the test set.
 *
 * Setup (once): features are uploaded and L2-normalised on the GPU; CLIP's logits and the
 * uncertainty factor of every training and test row are computed once (they do not depend on the
 * head); the head is initialised from class sums; the batch order [epochs, N] and the per-step
 * AdamW scalar table are uploaded.
 *
 * A training step is five dispatches that read everything they need from GPU buffers, so a whole
 * epoch is one command buffer with no host round trip:
 *   begin   step counter -> step state (batch slice, batch size, lr-derived scalars)
 *   logits  z = x[order[batch]] @ W^T            (batch gathered from the order buffer)
 *   rows    standardise, fuse, both CEs, dloss/dz, per-row losses
 *   update  dW = dz^T x[batch] fused with AdamW on W, m, v
 *   finish  per-row losses -> this iteration's (loss, merge, aux, correct)
 * The evaluation appends, per test chunk, logits + per-row losses/hits, then one fixed-order total.
 * The host reads the epoch's iteration records and the totals once, at the end of the epoch, from
 * one buffer laid out by `epoch_stats.ts`. */
import {
  type Dispatch,
  encodeDispatches,
  type Gpu,
  type GpuTensor,
  readBuffer,
  ResourceScope,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import type { AmuFeatures } from "../models/features.ts";
import { prepareL2NormalizeRows } from "../kernels/amu_normalize.ts";
import { chooseLogitsBlock, type LogitsBlock, prepareAmuLogits } from "../kernels/amu_logits.ts";
import { prepareAmuFactor } from "../kernels/amu_factor.ts";
import {
  type EvalTotals,
  prepareAmuEvalRows,
  prepareAmuEvalTotals,
  prepareAmuTrainRows,
  prepareAmuZeroShot,
} from "../kernels/amu_rows.ts";
import { prepareAmuUpdate, type UpdateBlock } from "../kernels/amu_update.ts";
import { prepareAmuInitWeights } from "../kernels/amu_init.ts";
import {
  createFixedStepState,
  type IterationRecords,
  prepareStepBegin,
  prepareStepFinish,
  STEP_STATE_WORDS,
} from "../kernels/amu_step.ts";
import { type AmuConfig, itersPerEpoch } from "./config.ts";
import {
  type EpochStatsLayout,
  epochStatsLayout,
  unpackEpochStats,
  unpackTotalsSlot,
} from "./epoch_stats.ts";
import { emptyTensor, uploadOwned } from "./gpu_tensors.ts";
import { stepScalarTable } from "./schedule.ts";

export type { EvalTotals } from "../kernels/amu_rows.ts";
export type { IterationRecords } from "../kernels/amu_step.ts";

/** Kernel shapes; `defaultPlan` picks them per adapter. */
export interface SessionPlan {
  /** Register block of the training batch's logits. */
  trainBlock: LogitsBlock;
  /** Register block of the large (evaluation / precompute) logits. */
  evalBlock: LogitsBlock;
  updateBlock: UpdateBlock;
  /** Invocations per workgroup of the one-row-per-workgroup kernels (power of two). */
  rowWorkgroup: number;
  /** Most bytes of one test chunk's largest buffer. */
  chunkBytes: number;
}

export function defaultPlan(gpu: Gpu, batch: number, classes: number): SessionPlan {
  const llvmpipe = gpu.summary.isLlvmpipe;
  return {
    trainBlock: chooseLogitsBlock(gpu, batch),
    evalBlock: chooseLogitsBlock(gpu, 1 << 20),
    updateBlock: llvmpipe && batch >= 32 ? 8 : 4,
    rowWorkgroup: !llvmpipe && classes >= 256 ? 256 : 64,
    chunkBytes: Math.min(gpu.limits.maxStorageBufferBindingSize, 64 * 2 ** 20),
  };
}

/** The training rows on the GPU, as the step kernels read them. */
interface TrainRows {
  /** [N, D] auxiliary features, L2-normalised by the setup. */
  aux: GpuTensor;
  /** [N, C] CLIP logits and [N] uncertainty factors (fixed for the whole run). */
  clipLogits: GpuTensor;
  factor: GpuTensor;
  /** [N] labels. */
  labels: GpuTensor;
  /** [epochs * N] row indices: every epoch's batches in order. */
  order: GpuTensor;
}

/** A block of test rows small enough for one binding of every buffer. */
interface TestChunk {
  rowOffset: number;
  rows: number;
  /** [rows, D] normalised auxiliary features, [rows, C] CLIP logits, [rows] factors. */
  aux: GpuTensor;
  clipLogits: GpuTensor;
  factor: GpuTensor;
}

/** The test set on the GPU. */
interface TestRows {
  chunks: TestChunk[];
  /** [T] labels. */
  labels: GpuTensor;
  /** Written per chunk by an evaluation, then summed: [T, 2] (loss_merge, loss_aux), [T] hit
   * bits (HIT_FUSED | HIT_AUX | HIT_CLIP). */
  rowLoss: GpuTensor;
  rowHits: GpuTensor;
}

/** What the setup phases share: the dispatches run once at the end of setup, the buffers only
 * those dispatches read (released after them), and CLIP's class weights. */
interface SetupWork {
  dispatches: Dispatch[];
  temp: ResourceScope;
  /** [Dc, C]. */
  clipWeights: GpuTensor;
}

export class AmuSession {
  readonly rows: number;
  readonly testRows: number;
  readonly classes: number;
  readonly dim: number;
  readonly clipDim: number;
  readonly epochs: number;
  readonly iters: number;
  readonly totalSteps: number;
  readonly batchSize: number;
  readonly plan: SessionPlan;
  /** float32 [totalSteps, 4]: (lr, decay, stepSize, bc2Sqrt) per step, as uploaded. */
  readonly schedule: Float32Array;
  /** Zero-shot CLIP hits on the test set (computed at setup). */
  zeroShotHits = 0;

  #scope = new ResourceScope();
  #w!: GpuTensor;
  #m!: GpuTensor;
  #v!: GpuTensor;
  #counter!: GPUBuffer;
  /** The epoch's iteration records and the evaluation totals (`epoch_stats.ts`). */
  #epochStats!: GPUBuffer;
  readonly #stats: EpochStatsLayout;
  #stepDispatches: Dispatch[] = [];
  #evalDispatches: Dispatch[] = [];
  #disposed = false;

  private constructor(
    readonly gpu: Gpu,
    readonly config: AmuConfig,
    features: AmuFeatures,
    plan?: Partial<SessionPlan>,
  ) {
    this.rows = features.trainAux.rows;
    this.testRows = features.testAux.rows;
    this.classes = features.clipWeights.cols;
    this.dim = features.trainAux.cols;
    this.clipDim = features.clipWeights.rows;
    this.epochs = config.epochs;
    this.batchSize = Math.min(config.batchSize, this.rows);
    this.iters = itersPerEpoch(this.rows, config.batchSize);
    this.totalSteps = this.epochs * this.iters;
    this.plan = { ...defaultPlan(gpu, this.batchSize, this.classes), ...plan };
    this.schedule = stepScalarTable(config, this.totalSteps);
    this.#stats = epochStatsLayout(this.iters);
  }

  /** Uploads features and order, runs the setup kernels, and prepares every dispatch. `order` is
   * [epochs * N] row indices. */
  static async create(
    gpu: Gpu,
    config: AmuConfig,
    features: AmuFeatures,
    order: Int32Array,
    plan?: Partial<SessionPlan>,
  ): Promise<AmuSession> {
    const s = new AmuSession(gpu, config, features, plan);
    try {
      await gpu.scoped("AMU setup", () => s.#checkLimits());
      await s.#setup(features, order);
    } catch (e) {
      s.dispose();
      throw e;
    }
    return s;
  }

  #checkLimits(): void {
    const limit = this.gpu.limits.maxStorageBufferBindingSize;
    const need = [
      ["train_aux", this.rows * this.dim],
      ["train CLIP logits", this.rows * this.classes],
      ["train_clip", this.rows * this.clipDim],
      ["head weights", this.classes * this.dim],
      ["batch order", this.epochs * this.rows],
    ] as const;
    for (const [name, n] of need) {
      if (n * 4 > limit) {
        throw new EngineError(
          `${name} needs ${n * 4} bytes in one GPU buffer, over this adapter's ` +
            `maxStorageBufferBindingSize (${limit}); use fewer training rows or a smaller model`,
        );
      }
    }
  }

  #empty(shape: number[], label: string, dtype: "float32" | "int32" = "float32"): GpuTensor {
    return emptyTensor(this.gpu, this.#scope, shape, label, dtype);
  }

  #upload(data: Float32Array | Int32Array | Uint32Array, shape: number[], label: string) {
    return uploadOwned(this.gpu, this.#scope, data, shape, label);
  }

  /** The setup, phase by phase; its dispatches run in one submission at the end. */
  async #setup(f: AmuFeatures, order: Int32Array): Promise<void> {
    const work: SetupWork = {
      dispatches: [],
      temp: new ResourceScope(),
      clipWeights: this.#upload(f.clipWeights.data, [this.clipDim, this.classes], "clip_weights"),
    };
    try {
      const train = this.#prepareTrainRows(work, f, order);
      this.#prepareHead(work, train, f.trainLabels);
      this.#epochStats = this.#empty([this.#stats.bytes / 4], "epoch stats").buffer;
      const test = this.#prepareTestRows(work, f);
      this.#stepDispatches = this.#prepareTrainingStep(train);
      this.#evalDispatches = this.#prepareEvaluation(test);
      await this.gpu.scoped("AMU setup", () => this.#submit(work.dispatches));
      await this.gpu.sync("AMU setup");
    } finally {
      work.temp.dispose();
    }
    this.zeroShotHits = this.testRows > 0 ? (await this.#readTotals()).clipHits : 0;
  }

  /** CLIP's side of a block of rows: their raw CLIP features normalised, their CLIP logits
   * (logitScale * x @ clip_weights) and each row's uncertainty factor. */
  #prepareClipSide(
    work: SetupWork,
    clip: Float32Array,
    rowCount: number,
    label: string,
  ): { logits: GpuTensor; factor: GpuTensor } {
    const { gpu, plan } = this;
    const scope = this.#scope;
    const raw = uploadOwned(gpu, work.temp, clip, [rowCount, this.clipDim], `${label} clip`);
    const logits = this.#empty([rowCount, this.classes], `${label} CLIP logits`);
    const factor = this.#empty([rowCount], `${label} factor`);
    work.dispatches.push(
      ...prepareL2NormalizeRows(gpu, scope, raw, plan.rowWorkgroup),
      ...prepareAmuLogits(gpu, scope, {
        state: createFixedStepState(gpu, scope, 0, rowCount),
        a: raw,
        b: work.clipWeights,
        layout: "depth-major",
        out: logits,
        maxRows: rowCount,
        scale: this.config.logitScale,
        block: plan.evalBlock,
      }),
      ...prepareAmuFactor(
        gpu,
        scope,
        logits,
        factor,
        this.config.uncertainty,
        this.config.uncertaintyPower,
        plan.rowWorkgroup,
      ),
    );
    return { logits, factor };
  }

  /** The training rows: auxiliary features (normalised), CLIP logits and factors, labels, the
   * batch order. */
  #prepareTrainRows(work: SetupWork, f: AmuFeatures, order: Int32Array): TrainRows {
    const { rows: N, dim: D } = this;
    const aux = this.#upload(f.trainAux.data, [N, D], "train_aux");
    work.dispatches.push(
      ...prepareL2NormalizeRows(this.gpu, this.#scope, aux, this.plan.rowWorkgroup),
    );
    const clip = this.#prepareClipSide(work, f.trainClip.data, N, "train");
    return {
      aux,
      clipLogits: clip.logits,
      factor: clip.factor,
      labels: this.#upload(f.trainLabels, [N], "train_labels"),
      order: this.#upload(order, [order.length], "batch order"),
    };
  }

  /** The head W [C, D] from the class sums of the normalised training features, and AdamW's zero
   * moments. */
  #prepareHead(work: SetupWork, train: TrainRows, labels: Int32Array): void {
    const { classes: C, dim: D } = this;
    this.#w = this.#empty([C, D], "head weights");
    this.#m = this.#empty([C, D], "adam exp_avg");
    this.#v = this.#empty([C, D], "adam exp_avg_sq");
    work.dispatches.push(
      ...prepareAmuInitWeights(this.gpu, this.#scope, train.aux, labels, C, this.#w),
    );
  }

  /** The test rows in chunks that each fit one binding, with CLIP's zero-shot hits counted into
   * the evaluation totals. */
  #prepareTestRows(work: SetupWork, f: AmuFeatures): TestRows {
    const { gpu, plan, testRows: T, dim: D, clipDim: Dc, classes: C } = this;
    const scope = this.#scope;
    const widest = Math.max(D, Dc, C) * 4;
    const chunkRows = Math.max(1, Math.floor(plan.chunkBytes / widest));
    const test: TestRows = {
      chunks: [],
      labels: this.#upload(f.testLabels, [Math.max(T, 1)], "test_labels"),
      rowLoss: this.#empty([Math.max(T, 1), 2], "test row losses"),
      rowHits: this.#empty([Math.max(T, 1)], "test row hits", "int32"),
    };
    for (let r0 = 0; r0 < T; r0 += chunkRows) {
      const rows = Math.min(chunkRows, T - r0);
      const aux = this.#upload(
        f.testAux.data.subarray(r0 * D, (r0 + rows) * D),
        [rows, D],
        `test_aux[${r0}:]`,
      );
      work.dispatches.push(...prepareL2NormalizeRows(gpu, scope, aux, plan.rowWorkgroup));
      const clip = this.#prepareClipSide(
        work,
        f.testClip.data.subarray(r0 * Dc, (r0 + rows) * Dc),
        rows,
        `test[${r0}:]`,
      );
      work.dispatches.push(...prepareAmuZeroShot(gpu, scope, {
        clipLogits: clip.logits,
        labels: test.labels,
        rowHits: test.rowHits,
        rows,
        rowOffset: r0,
        classes: C,
        workgroupSize: plan.rowWorkgroup,
      }));
      test.chunks.push({
        rowOffset: r0,
        rows,
        aux,
        clipLogits: clip.logits,
        factor: clip.factor,
      });
    }
    work.dispatches.push(...this.#prepareTotals(test));
    return test;
  }

  /** The fixed-order sums of the test rows' losses and hits into the epoch stats' totals. */
  #prepareTotals(test: TestRows): Dispatch[] {
    if (this.testRows === 0) return [];
    return prepareAmuEvalTotals(this.gpu, this.#scope, {
      rowLoss: test.rowLoss,
      rowHits: test.rowHits,
      rows: this.testRows,
      totals: this.#epochStats,
      outOffset: this.#stats.totalsOffset,
      workgroupSize: this.plan.rowWorkgroup,
    });
  }

  /** One training step's five dispatches (see the file's comment), reading the step from the
   * step counter. */
  #prepareTrainingStep(train: TrainRows): Dispatch[] {
    const { gpu, plan, config, classes: C, dim: D } = this;
    const scope = this.#scope;
    this.#counter = this.#empty([1], "step counter").buffer;
    const schedule = this.#upload(this.schedule, [this.totalSteps, 4], "step scalars");
    const state = this.#empty([STEP_STATE_WORDS], "step state").buffer;
    const B = this.batchSize;
    const z = this.#empty([B, C], "batch logits");
    const dz = this.#empty([B, C], "batch dloss/dz");
    const rowStats = this.#empty([B, 4], "batch row stats");
    return [
      ...prepareStepBegin(gpu, scope, {
        counter: this.#counter,
        schedule: schedule.buffer,
        state,
        rowsPerEpoch: this.rows,
        batchSize: config.batchSize,
        itersPerEpoch: this.iters,
      }),
      ...prepareAmuLogits(gpu, scope, {
        state,
        order: train.order,
        a: train.aux,
        b: this.#w,
        layout: "classes-major",
        out: z,
        maxRows: B,
        block: plan.trainBlock,
      }),
      ...prepareAmuTrainRows(gpu, scope, {
        state,
        order: train.order,
        labels: train.labels,
        clipLogits: train.clipLogits,
        factors: train.factor,
        z,
        dz,
        rowStats,
        maxRows: B,
        classes: C,
        alpha: config.alpha,
        lambda: config.lambdaMerge,
        workgroupSize: plan.rowWorkgroup,
      }),
      ...prepareAmuUpdate(gpu, scope, {
        state,
        order: train.order,
        x: train.aux,
        dz,
        w: this.#w,
        m: this.#m,
        v: this.#v,
        classes: C,
        dim: D,
        adam: {
          beta1: config.adamBeta1,
          beta2: config.adamBeta2,
          eps: config.adamEps,
          weightDecay: config.weightDecay,
        },
        block: plan.updateBlock,
      }),
      ...prepareStepFinish(gpu, scope, {
        state,
        rowStats: rowStats.buffer,
        iterStats: this.#epochStats,
        lambda: config.lambdaMerge,
      }),
    ];
  }

  /** The test evaluation: per chunk the head's logits and the rows' losses and hits, then the
   * totals. */
  #prepareEvaluation(test: TestRows): Dispatch[] {
    const { gpu, plan, config } = this;
    const scope = this.#scope;
    const maxChunk = test.chunks.reduce((m, c) => Math.max(m, c.rows), 1);
    const z = this.#empty([maxChunk, this.classes], "test head logits");
    const dispatches: Dispatch[] = [];
    for (const chunk of test.chunks) {
      dispatches.push(
        ...prepareAmuLogits(gpu, scope, {
          state: createFixedStepState(gpu, scope, 0, chunk.rows),
          a: chunk.aux,
          b: this.#w,
          layout: "classes-major",
          out: z,
          maxRows: chunk.rows,
          block: plan.evalBlock,
        }),
        ...prepareAmuEvalRows(gpu, scope, {
          z,
          clipLogits: chunk.clipLogits,
          factors: chunk.factor,
          labels: test.labels,
          rowLoss: test.rowLoss,
          rowHits: test.rowHits,
          rows: chunk.rows,
          rowOffset: chunk.rowOffset,
          classes: this.classes,
          alpha: config.alpha,
          lambda: config.lambdaMerge,
          workgroupSize: plan.rowWorkgroup,
        }),
      );
    }
    dispatches.push(...this.#prepareTotals(test));
    return dispatches;
  }

  #submit(dispatches: readonly Dispatch[]): void {
    const encoder = this.gpu.device.createCommandEncoder({ label: "amu" });
    encodeDispatches(encoder, dispatches);
    this.gpu.device.queue.submit([encoder.finish()]);
  }

  async #readTotals(): Promise<EvalTotals> {
    const { totalsOffset, totalsBytes } = this.#stats;
    return unpackTotalsSlot(
      await readBuffer(this.gpu, this.#epochStats, totalsBytes, totalsOffset * 4),
    );
  }

  /** Sets the global step the next training step starts at (0 for a fresh run). */
  setStep(step: number): void {
    if (!Number.isInteger(step) || step < 0 || step > this.totalSteps) {
      throw new EngineError(`AMU: step ${step} outside 0..${this.totalSteps}`);
    }
    this.gpu.device.queue.writeBuffer(this.#counter, 0, new Uint32Array([step]));
  }

  /** Replaces the head weights and AdamW moments (resuming from a checkpoint). */
  setState(w: Float32Array, m: Float32Array, v: Float32Array): void {
    const n = this.classes * this.dim;
    for (const [name, a] of [["weight", w], ["exp_avg", m], ["exp_avg_sq", v]] as const) {
      if (a.length !== n) {
        throw new EngineError(`AMU: ${name} has ${a.length} values, the head needs ${n}`);
      }
    }
    const q = this.gpu.device.queue;
    q.writeBuffer(this.#w.buffer, 0, w as Float32Array<ArrayBuffer>);
    q.writeBuffer(this.#m.buffer, 0, m as Float32Array<ArrayBuffer>);
    q.writeBuffer(this.#v.buffer, 0, v as Float32Array<ArrayBuffer>);
  }

  async #read(t: GpuTensor): Promise<Float32Array> {
    return new Float32Array(await readBuffer(this.gpu, t.buffer, this.classes * this.dim * 4));
  }

  readWeights(): Promise<Float32Array> {
    return this.#read(this.#w);
  }

  async readMoments(): Promise<{ m: Float32Array; v: Float32Array }> {
    return { m: await this.#read(this.#m), v: await this.#read(this.#v) };
  }

  /** Encodes `count` training steps (continuing from the step counter) and, with `evaluate`,
   * the test evaluation after them, as one submission; then reads the iteration records of the
   * epoch's first `iterEnd` iterations and the evaluation totals in one readback. */
  async run(count: number, evaluate: boolean, iterEnd: number): Promise<{
    records: IterationRecords;
    totals?: EvalTotals;
  }> {
    if (this.#disposed) throw new EngineError("AMU session used after dispose");
    const list: Dispatch[] = [];
    for (let i = 0; i < count; i++) list.push(...this.#stepDispatches);
    if (evaluate) list.push(...this.#evalDispatches);
    await this.gpu.scoped("AMU training", () => this.#submit(list));
    const bytes = await readBuffer(this.gpu, this.#epochStats, this.#stats.bytes);
    const { records, totals } = unpackEpochStats(this.#stats, bytes, iterEnd);
    if (!evaluate || this.testRows === 0) return { records };
    return { records, totals };
  }

  /** Only the evaluation (for benchmarks and checks). */
  async evaluate(): Promise<EvalTotals> {
    await this.gpu.scoped("AMU evaluation", () => this.#submit(this.#evalDispatches));
    return this.#readTotals();
  }

  dispose(): void {
    this.#disposed = true;
    this.#scope.dispose();
  }
}
