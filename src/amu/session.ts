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
 * The host reads the epoch's iteration records and the totals once, at the end of the epoch. */
import {
  createStorageBuffer,
  type Dispatch,
  encodeDispatches,
  type Gpu,
  type GpuTensor,
  readBuffer,
  ResourceScope,
  STORAGE_USAGE,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import type { AmuFeatures } from "../models/features.ts";
import { prepareL2NormalizeRows } from "../kernels/amu_normalize.ts";
import { chooseLogitsBlock, type LogitsBlock, prepareAmuLogits } from "../kernels/amu_logits.ts";
import { prepareAmuFactor } from "../kernels/amu_factor.ts";
import {
  prepareAmuEvalRows,
  prepareAmuEvalTotals,
  prepareAmuTrainRows,
  prepareAmuZeroShot,
} from "../kernels/amu_rows.ts";
import { prepareAmuUpdate, type UpdateBlock } from "../kernels/amu_update.ts";
import { prepareAmuInitWeights } from "../kernels/amu_init.ts";
import {
  createFixedStepState,
  prepareStepBegin,
  prepareStepFinish,
  STEP_STATE_BYTES,
} from "../kernels/amu_step.ts";
import { type AmuConfig, itersPerEpoch } from "./config.ts";
import { stepScalarTable } from "./schedule.ts";

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

/** Totals of one evaluation (sums over the test rows). */
export interface EvalTotals {
  lossMerge: number;
  lossAux: number;
  fusedHits: number;
  auxHits: number;
  clipHits: number;
}

/** What one epoch (or span of steps) produced. */
export interface StepRecords {
  /** Per iteration of the epoch: loss, loss_merge, loss_aux (batch means) and correct (count). */
  loss: Float32Array;
  lossMerge: Float32Array;
  lossAux: Float32Array;
  correct: Float32Array;
}

interface TestChunk {
  rowOffset: number;
  rows: number;
  aux: GpuTensor;
  clipLogits: GpuTensor;
  factor: GpuTensor;
}

const TOTALS_WORDS = 8;

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
  #epochStats!: GPUBuffer;
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

  #buffer(bytes: number, label: string): GPUBuffer {
    return this.#scope.own(this.gpu.device.createBuffer({
      size: Math.max(16, Math.ceil(bytes / 16) * 16),
      usage: STORAGE_USAGE,
      label,
    }));
  }

  #tensor(shape: number[], label: string, dtype: "float32" | "int32" = "float32"): GpuTensor {
    return { buffer: this.#buffer(shape.reduce((a, b) => a * b, 1) * 4, label), shape, dtype };
  }

  #upload(data: Float32Array | Int32Array | Uint32Array, shape: number[], label: string) {
    const buffer = this.#scope.own(createStorageBuffer(this.gpu, data, label));
    return {
      buffer,
      shape,
      dtype: data instanceof Float32Array ? "float32" : "int32",
    } as GpuTensor;
  }

  async #setup(f: AmuFeatures, order: Int32Array): Promise<void> {
    const gpu = this.gpu;
    const { rows: N, classes: C, dim: D, clipDim: Dc, testRows: T, plan } = this;
    const scope = this.#scope;
    const temp = new ResourceScope(); // raw CLIP features, released after setup
    const setup: Dispatch[] = [];
    const clipW = this.#upload(f.clipWeights.data, [Dc, C], "clip_weights");

    // CLIP logits (100 * normalised clip @ clip_weights) and factors of a block of rows.
    const clipSide = (
      clip: Float32Array,
      rowCount: number,
      label: string,
    ): { logits: GpuTensor; factor: GpuTensor } => {
      const raw: GpuTensor = {
        buffer: temp.own(createStorageBuffer(gpu, clip, `${label} clip`)),
        shape: [rowCount, Dc],
        dtype: "float32",
      };
      const logits = this.#tensor([rowCount, C], `${label} CLIP logits`);
      const factor = this.#tensor([rowCount], `${label} factor`);
      const all = createFixedStepState(gpu, scope, 0, rowCount);
      setup.push(
        ...prepareL2NormalizeRows(gpu, scope, raw, plan.rowWorkgroup),
        ...prepareAmuLogits(gpu, scope, {
          state: all,
          a: raw,
          b: clipW,
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
    };

    // Training side.
    const trainAux = this.#upload(f.trainAux.data, [N, D], "train_aux");
    setup.push(...prepareL2NormalizeRows(gpu, scope, trainAux, plan.rowWorkgroup));
    const train = clipSide(f.trainClip.data, N, "train");
    const trainLabels = this.#upload(f.trainLabels, [N], "train_labels");
    const orderBuf = this.#upload(order, [order.length], "batch order");
    this.#w = this.#tensor([C, D], "head weights");
    this.#m = this.#tensor([C, D], "adam exp_avg");
    this.#v = this.#tensor([C, D], "adam exp_avg_sq");
    setup.push(...prepareAmuInitWeights(gpu, scope, trainAux, f.trainLabels, C, this.#w));

    // Test side, in chunks that each fit one binding.
    const widest = Math.max(D, Dc, C) * 4;
    const chunkRows = Math.max(1, Math.floor(plan.chunkBytes / widest));
    const chunks: TestChunk[] = [];
    const testLabels = this.#upload(f.testLabels, [Math.max(T, 1)], "test_labels");
    const rowLoss = this.#tensor([Math.max(T, 1), 2], "test row losses");
    const rowHits = this.#tensor([Math.max(T, 1)], "test row hits", "int32");
    this.#epochStats = this.#buffer((this.iters * 4 + TOTALS_WORDS) * 4, "epoch stats");
    for (let r0 = 0; r0 < T; r0 += chunkRows) {
      const rows = Math.min(chunkRows, T - r0);
      const aux = this.#upload(
        f.testAux.data.subarray(r0 * D, (r0 + rows) * D),
        [rows, D],
        `test_aux[${r0}:]`,
      );
      setup.push(...prepareL2NormalizeRows(gpu, scope, aux, plan.rowWorkgroup));
      const side = clipSide(
        f.testClip.data.subarray(r0 * Dc, (r0 + rows) * Dc),
        rows,
        `test[${r0}:]`,
      );
      setup.push(...prepareAmuZeroShot(gpu, scope, {
        clipLogits: side.logits,
        labels: testLabels,
        rowHits,
        rows,
        rowOffset: r0,
        classes: C,
        workgroupSize: plan.rowWorkgroup,
      }));
      chunks.push({ rowOffset: r0, rows, aux, clipLogits: side.logits, factor: side.factor });
    }
    const totalsOffset = this.iters * 4;
    if (T > 0) {
      setup.push(...prepareAmuEvalTotals(gpu, scope, {
        rowLoss,
        rowHits,
        rows: T,
        totals: this.#epochStats,
        outOffset: totalsOffset,
        workgroupSize: plan.rowWorkgroup,
      }));
    }

    // Step machinery.
    this.#counter = this.#buffer(4, "step counter");
    const scheduleBuf = this.#upload(this.schedule, [this.totalSteps, 4], "step scalars");
    const state = this.#buffer(STEP_STATE_BYTES, "step state");
    const B = this.batchSize;
    const z = this.#tensor([B, C], "batch logits");
    const dz = this.#tensor([B, C], "batch dloss/dz");
    const rowStats = this.#tensor([B, 4], "batch row stats");
    this.#stepDispatches = [
      ...prepareStepBegin(gpu, scope, {
        counter: this.#counter,
        schedule: scheduleBuf.buffer,
        state,
        rowsPerEpoch: N,
        batchSize: this.config.batchSize,
        itersPerEpoch: this.iters,
      }),
      ...prepareAmuLogits(gpu, scope, {
        state,
        order: orderBuf,
        a: trainAux,
        b: this.#w,
        layout: "classes-major",
        out: z,
        maxRows: B,
        block: plan.trainBlock,
      }),
      ...prepareAmuTrainRows(gpu, scope, {
        state,
        order: orderBuf,
        labels: trainLabels,
        clipLogits: train.logits,
        factors: train.factor,
        z,
        dz,
        rowStats,
        maxRows: B,
        classes: C,
        alpha: this.config.alpha,
        lambda: this.config.lambdaMerge,
        workgroupSize: plan.rowWorkgroup,
      }),
      ...prepareAmuUpdate(gpu, scope, {
        state,
        order: orderBuf,
        x: trainAux,
        dz,
        w: this.#w,
        m: this.#m,
        v: this.#v,
        classes: C,
        dim: D,
        adam: {
          beta1: this.config.adamBeta1,
          beta2: this.config.adamBeta2,
          eps: this.config.adamEps,
          weightDecay: this.config.weightDecay,
        },
        block: plan.updateBlock,
      }),
      ...prepareStepFinish(gpu, scope, {
        state,
        rowStats: rowStats.buffer,
        iterStats: this.#epochStats,
        lambda: this.config.lambdaMerge,
      }),
    ];

    // Evaluation.
    const maxChunk = chunks.reduce((m, c) => Math.max(m, c.rows), 1);
    const zTest = this.#tensor([maxChunk, C], "test head logits");
    for (const chunk of chunks) {
      this.#evalDispatches.push(
        ...prepareAmuLogits(gpu, scope, {
          state: createFixedStepState(gpu, scope, 0, chunk.rows),
          a: chunk.aux,
          b: this.#w,
          layout: "classes-major",
          out: zTest,
          maxRows: chunk.rows,
          block: plan.evalBlock,
        }),
        ...prepareAmuEvalRows(gpu, scope, {
          z: zTest,
          clipLogits: chunk.clipLogits,
          factors: chunk.factor,
          labels: testLabels,
          rowLoss,
          rowHits,
          rows: chunk.rows,
          rowOffset: chunk.rowOffset,
          classes: C,
          alpha: this.config.alpha,
          lambda: this.config.lambdaMerge,
          workgroupSize: plan.rowWorkgroup,
        }),
      );
    }
    if (T > 0) {
      this.#evalDispatches.push(...prepareAmuEvalTotals(gpu, scope, {
        rowLoss,
        rowHits,
        rows: T,
        totals: this.#epochStats,
        outOffset: totalsOffset,
        workgroupSize: plan.rowWorkgroup,
      }));
    }

    await gpu.scoped("AMU setup", () => this.#submit(setup));
    await gpu.sync("AMU setup");
    temp.dispose();
    this.zeroShotHits = T > 0 ? (await this.#readTotals()).clipHits : 0;
  }

  #submit(dispatches: readonly Dispatch[]): void {
    const encoder = this.gpu.device.createCommandEncoder({ label: "amu" });
    encodeDispatches(encoder, dispatches);
    this.gpu.device.queue.submit([encoder.finish()]);
  }

  async #readTotals(): Promise<EvalTotals> {
    const bytes = await readBuffer(this.gpu, this.#epochStats, TOTALS_WORDS * 4, this.iters * 16);
    const t = new Float32Array(bytes);
    return { lossMerge: t[0], lossAux: t[1], fusedHits: t[2], auxHits: t[3], clipHits: t[4] };
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
    records: StepRecords;
    totals?: EvalTotals;
  }> {
    if (this.#disposed) throw new EngineError("AMU session used after dispose");
    const list: Dispatch[] = [];
    for (let i = 0; i < count; i++) list.push(...this.#stepDispatches);
    if (evaluate) list.push(...this.#evalDispatches);
    await this.gpu.scoped("AMU training", () => this.#submit(list));
    const bytes = await readBuffer(this.gpu, this.#epochStats, (this.iters * 4 + 8) * 4);
    const all = new Float32Array(bytes);
    const records: StepRecords = {
      loss: new Float32Array(iterEnd),
      lossMerge: new Float32Array(iterEnd),
      lossAux: new Float32Array(iterEnd),
      correct: new Float32Array(iterEnd),
    };
    for (let i = 0; i < iterEnd; i++) {
      records.loss[i] = all[i * 4];
      records.lossMerge[i] = all[i * 4 + 1];
      records.lossAux[i] = all[i * 4 + 2];
      records.correct[i] = all[i * 4 + 3];
    }
    if (!evaluate || this.testRows === 0) return { records };
    const t = all.subarray(this.iters * 4);
    return {
      records,
      totals: { lossMerge: t[0], lossAux: t[1], fusedHits: t[2], auxHits: t[3], clipHits: t[4] },
    };
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
