/** GPU state of Tip-Adapter and Tip-Adapter-F: the cache (keys, class index), each split's
 * normalised CLIP features and CLIP logits in row chunks, and, for -F, the training machinery.
 *
 * Affinities are never kept for a whole split: per chunk, f @ keys^T goes to one scratch buffer
 * that the next kernel consumes in the same submission, so a split of any size costs one chunk of
 * memory. Every (beta, alpha) pair of a search is counted on the GPU from those affinities in one
 * submission (`gridHits`); the host only picks the best pair from the counts. Training runs one
 * submission per epoch: every step (AMU's step/update kernels, with the keys in the head's place)
 * and the epoch's test evaluation, then one readback of the losses and the hit count. */
import {
  type Dispatch,
  encodeDispatches,
  type Gpu,
  type GpuTensor,
  readBuffer,
  ResourceScope,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import type { FeatureMatrix } from "../models/features.ts";
import { prepareAmuLogits } from "../kernels/amu_logits.ts";
import {
  createFixedStepState,
  ITER_RECORD_WORDS,
  prepareStepBegin,
  prepareStepFinish,
  STEP_STATE_WORDS,
  unpackIterationRecords,
} from "../kernels/amu_step.ts";
import { prepareAmuUpdate } from "../kernels/amu_update.ts";
import { buildCacheIndex, prepareTipGrid, prepareTipTrainRows } from "../kernels/tip_cache.ts";
import { DEFAULT_CHUNK_BYTES, emptyTensor, rowChunks, uploadOwned } from "./gpu_tensors.ts";
import { cosineLr } from "./schedule.ts";
import { type ClipSide, prepareClipSide } from "./zero_shot.ts";

/** A split's rows as the kernels read them. */
interface SplitChunk {
  rowOffset: number;
  rows: number;
  /** [rows, D] normalised CLIP features. */
  x: GpuTensor;
  /** [rows, C] CLIP logits. */
  logits: GpuTensor;
}

interface Split {
  rows: number;
  labels: GpuTensor;
  chunks: SplitChunk[];
}

/** What Tip-Adapter-F's training needs beyond the cache. */
export interface TipTrainSpec {
  /** Raw CLIP features of the training views [R, D] and their labels. */
  clip: FeatureMatrix;
  labels: Int32Array;
  /** [epochs * R] row order. */
  order: Int32Array;
  epochs: number;
  batchSize: number;
  lr: number;
  beta: number;
  alpha: number;
}

/** AdamW as Tip-Adapter-F builds it: torch.optim.AdamW(lr, eps=1e-4), default betas and decay. */
export const TIP_ADAMW = { beta1: 0.9, beta2: 0.999, eps: 1e-4, weightDecay: 0.01 } as const;

/** Per-step AdamW scalars [total, 4] for amu_step: (lr, 1 - lr * wd, lr / (1 - beta1^t),
 * sqrt(1 - beta2^t)) in float64 from the cosine schedule stepped per iteration, rounded once. */
export function tipStepScalars(lr0: number, total: number): Float32Array {
  const out = new Float32Array(total * 4);
  for (let t = 0; t < total; t++) {
    const lr = cosineLr(lr0, t, total);
    out[t * 4] = lr;
    out[t * 4 + 1] = 1 - lr * TIP_ADAMW.weightDecay;
    out[t * 4 + 2] = lr / (1 - TIP_ADAMW.beta1 ** (t + 1));
    out[t * 4 + 3] = Math.sqrt(1 - TIP_ADAMW.beta2 ** (t + 1));
  }
  return out;
}

/** Sizes of a Tip-Adapter-F run. */
interface TrainingSize {
  /** Training rows R, rows per batch (at most R), iterations per epoch, steps of the run. */
  rows: number;
  batch: number;
  iters: number;
  steps: number;
}

interface Trainer {
  iters: number;
  stepDispatches: Dispatch[];
  evalDispatches: Dispatch[];
  iterStats: GPUBuffer;
  evalHits: GPUBuffer;
  counter: GPUBuffer;
}

export class TipSession {
  readonly classes: number;
  readonly entries: number;
  readonly dim: number;
  #scope = new ResourceScope();
  #clipWeights: GpuTensor;
  #index: GpuTensor;
  /** [entries, D]: the (trainable) keys, and the best epoch's copy. */
  #keys: GpuTensor;
  #bestKeys: GpuTensor;
  /** [maxChunkRows, entries]: affinities of the chunk being evaluated. */
  #affinity: GpuTensor;
  #maxChunkRows: number;
  #chunkBytes: number;
  #splits = new Map<string, Split>();
  #trainer?: Trainer;
  #setup: Dispatch[] = [];

  /** `keys` [entries, D] (normalised), `entryLabels` [entries], `clipWeights` [D, C]; `splits`
   * are evaluated later by name ("val", "test"). Uploads everything and runs the setup kernels
   * (normalisation, CLIP logits) inside an error scope. */
  static async create(
    gpu: Gpu,
    keys: Float32Array,
    entryLabels: Int32Array,
    clipWeights: FeatureMatrix,
    splits: Record<string, { clip: FeatureMatrix; labels: Int32Array }>,
    chunkBytes = DEFAULT_CHUNK_BYTES,
  ): Promise<TipSession> {
    const s = new TipSession(gpu, keys, entryLabels, clipWeights, splits, chunkBytes);
    try {
      await gpu.scoped("Tip-Adapter setup", () => s.#submit(s.#setup));
      s.#setup = [];
    } catch (e) {
      s.dispose();
      throw e;
    }
    return s;
  }

  private constructor(
    readonly gpu: Gpu,
    keys: Float32Array,
    entryLabels: Int32Array,
    clipWeights: FeatureMatrix,
    splits: Record<string, { clip: FeatureMatrix; labels: Int32Array }>,
    chunkBytes = DEFAULT_CHUNK_BYTES,
  ) {
    const D = clipWeights.rows, C = clipWeights.cols, n = entryLabels.length;
    this.classes = C;
    this.entries = n;
    this.dim = D;
    this.#chunkBytes = chunkBytes;
    const scope = this.#scope;
    try {
      this.#checkSize("cache keys", n * D);
      this.#clipWeights = uploadOwned(gpu, scope, clipWeights.data, [D, C], "clip_weights");
      this.#index = uploadOwned(
        gpu,
        scope,
        buildCacheIndex(entryLabels, C),
        [C + 1 + 2 * n],
        "cache index",
      );
      this.#keys = uploadOwned(gpu, scope, keys, [n, D], "cache keys");
      this.#bestKeys = emptyTensor(gpu, scope, [n, D], "best cache keys");
      let maxRows = 1;
      const setup: Dispatch[] = [];
      for (const [name, s] of Object.entries(splits)) {
        const split = this.#uploadSplit(name, s.clip, s.labels, setup);
        for (const c of split.chunks) maxRows = Math.max(maxRows, c.rows);
        this.#splits.set(name, split);
      }
      this.#maxChunkRows = maxRows;
      this.#affinity = emptyTensor(gpu, scope, [maxRows, n], "affinity chunk");
      this.#setup = setup;
    } catch (e) {
      scope.dispose();
      throw e;
    }
  }

  #checkSize(what: string, floats: number): void {
    const limit = this.gpu.limits.maxStorageBufferBindingSize;
    if (floats * 4 > limit) {
      throw new EngineError(
        `${what} needs ${floats * 4} bytes in one GPU buffer, over this adapter's ` +
          `maxStorageBufferBindingSize (${limit}); use fewer shots or views`,
      );
    }
  }

  #uploadSplit(
    name: string,
    clip: FeatureMatrix,
    labels: Int32Array,
    setup: Dispatch[],
  ): Split {
    const { gpu, dim: D, classes: C, entries: n } = this;
    if (clip.cols !== D) {
      throw new EngineError(`${name}: features have ${clip.cols} columns, clip_weights ${D} rows`);
    }
    if (labels.length !== clip.rows) {
      throw new EngineError(`${name}: ${clip.rows} feature rows but ${labels.length} labels`);
    }
    const chunks: SplitChunk[] = [];
    for (const [r0, r1] of rowChunks(clip.rows, Math.max(D, C, n), this.#chunkBytes)) {
      const side = prepareClipSide(
        gpu,
        this.#scope,
        clip.data.subarray(r0 * D, r1 * D),
        r1 - r0,
        this.#clipWeights,
        `${name}[${r0}:]`,
      );
      setup.push(...side.dispatches);
      chunks.push({ rowOffset: r0, rows: r1 - r0, x: side.x, logits: side.logits });
    }
    const labelBuf = uploadOwned(
      gpu,
      this.#scope,
      labels.length ? labels : new Int32Array(1),
      [Math.max(labels.length, 1)],
      `${name} labels`,
    );
    return { rows: clip.rows, labels: labelBuf, chunks };
  }

  #split(name: string): Split {
    const s = this.#splits.get(name);
    if (!s) throw new EngineError(`Tip-Adapter: no split named '${name}'`);
    return s;
  }

  #submit(dispatches: readonly Dispatch[], then?: (enc: GPUCommandEncoder) => void): void {
    const enc = this.gpu.device.createCommandEncoder({ label: "tip-adapter" });
    encodeDispatches(enc, dispatches);
    then?.(enc);
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /** Dispatches that count hits of every (beta, alpha) on `split` with `keys` into `hits`. */
  #gridDispatches(
    owner: ResourceScope,
    split: Split,
    keys: GpuTensor,
    values: GpuTensor,
    betas: number,
    alphas: number,
    hits: GPUBuffer,
  ): Dispatch[] {
    const out: Dispatch[] = [];
    for (const chunk of split.chunks) {
      out.push(
        ...prepareAmuLogits(this.gpu, owner, {
          state: createFixedStepState(this.gpu, owner, 0, chunk.rows),
          a: chunk.x,
          b: keys,
          layout: "classes-major",
          out: this.#affinity,
          maxRows: chunk.rows,
        }),
        ...prepareTipGrid(this.gpu, owner, {
          affinity: this.#affinity,
          clipLogits: chunk.logits,
          labels: split.labels,
          index: this.#index,
          values,
          hits,
          rows: chunk.rows,
          rowOffset: chunk.rowOffset,
          betas,
          alphas,
          classes: this.classes,
          entries: this.entries,
        }),
      );
    }
    return out;
  }

  /** Correct predictions on `split` for every (betas[i], alphas[j]), [betas, alphas] row-major,
   * with the initial keys or (`best`) the best epoch's. */
  async gridHits(
    splitName: string,
    betas: ArrayLike<number>,
    alphas: ArrayLike<number>,
    best = false,
  ): Promise<Int32Array> {
    const split = this.#split(splitName);
    const temp = new ResourceScope();
    try {
      const { gpu } = this;
      const values = uploadOwned(
        gpu,
        temp,
        Float32Array.from([...Array.from(betas), ...Array.from(alphas)]),
        [betas.length + alphas.length],
        "grid values",
      );
      const count = betas.length * alphas.length;
      const hits = emptyTensor(gpu, temp, [count], "grid hits", "int32");
      const keys = best ? this.#bestKeys : this.#keys;
      const list = this.#gridDispatches(
        temp,
        split,
        keys,
        values,
        betas.length,
        alphas.length,
        hits.buffer,
      );
      await gpu.scoped("Tip-Adapter grid", () => this.#submit(list));
      return new Int32Array(await readBuffer(gpu, hits.buffer, count * 4));
    } finally {
      temp.dispose();
    }
  }

  /** Accuracy (percent) on `split` at one (beta, alpha). */
  async accuracy(splitName: string, beta: number, alpha: number, best = false): Promise<number> {
    const hits = await this.gridHits(splitName, [beta], [alpha], best);
    return 100 * hits[0] / this.#split(splitName).rows;
  }

  splitRows(name: string): number {
    return this.#split(name).rows;
  }

  /** Prepares Tip-Adapter-F's training (keys trainable from their current values) with a test
   * evaluation at (spec.beta, spec.alpha) after every epoch on split `evalSplit`. */
  async prepareTraining(spec: TipTrainSpec, evalSplit: string): Promise<void> {
    const size = this.#trainingSize(spec);
    const train = prepareClipSide(
      this.gpu,
      this.#scope,
      spec.clip.data,
      size.rows,
      this.#clipWeights,
      "train",
    );
    const step = this.#prepareTrainingStep(spec, size, train);
    const evaluation = this.#prepareEpochEvaluation(spec, evalSplit);
    await this.gpu.scoped("Tip-Adapter-F setup", () => this.#submit(train.dispatches));
    this.#trainer = { iters: size.iters, ...step, ...evaluation };
  }

  /** The training run's sizes, after checking each buffer fits one binding. */
  #trainingSize(spec: TipTrainSpec): TrainingSize {
    const { classes: C, entries: n, dim: D } = this;
    const R = spec.clip.rows;
    if (spec.clip.cols !== D) {
      throw new EngineError(`train: features have ${spec.clip.cols} columns, keys ${D}`);
    }
    const batch = Math.min(spec.batchSize, R);
    for (
      const [what, floats] of [
        ["training features", R * D],
        ["training CLIP logits", R * C],
        ["batch order", spec.order.length],
        ["batch affinities", batch * n],
      ] as const
    ) this.#checkSize(what, floats);
    const iters = Math.ceil(R / spec.batchSize);
    return { rows: R, batch, iters, steps: spec.epochs * iters };
  }

  /** One training step: AMU's step kernels with the keys in the head's place and the cache
   * model's row kernel in place of AMU's. */
  #prepareTrainingStep(
    spec: TipTrainSpec,
    size: TrainingSize,
    train: ClipSide,
  ): Pick<Trainer, "stepDispatches" | "iterStats" | "counter"> {
    const { gpu, classes: C, entries: n, dim: D } = this;
    const scope = this.#scope;
    const { rows: R, batch: B, iters } = size;
    const labels = uploadOwned(gpu, scope, spec.labels, [R], "train labels");
    const order = uploadOwned(gpu, scope, spec.order, [spec.order.length], "batch order");
    const schedule = uploadOwned(
      gpu,
      scope,
      tipStepScalars(spec.lr, size.steps),
      [size.steps, 4],
      "lr",
    );
    const counter = uploadOwned(gpu, scope, new Uint32Array(4), [4], "step counter").buffer;
    const state = emptyTensor(gpu, scope, [STEP_STATE_WORDS], "step state").buffer;
    const affinity = emptyTensor(gpu, scope, [B, n], "batch affinities");
    const dA = emptyTensor(gpu, scope, [B, n], "batch dloss/dA");
    const rowStats = emptyTensor(gpu, scope, [B, 4], "batch row stats");
    const iterStats = emptyTensor(gpu, scope, [iters, ITER_RECORD_WORDS], "iteration stats").buffer;
    const m = emptyTensor(gpu, scope, [n, D], "adam exp_avg");
    const v = emptyTensor(gpu, scope, [n, D], "adam exp_avg_sq");
    const stepDispatches = [
      ...prepareStepBegin(gpu, scope, {
        counter,
        schedule: schedule.buffer,
        state,
        rowsPerEpoch: R,
        batchSize: spec.batchSize,
        itersPerEpoch: iters,
      }),
      ...prepareAmuLogits(gpu, scope, {
        state,
        order,
        a: train.x,
        b: this.#keys,
        layout: "classes-major",
        out: affinity,
        maxRows: B,
      }),
      ...prepareTipTrainRows(gpu, scope, {
        state,
        order,
        affinity,
        clipLogits: train.logits,
        labels,
        index: this.#index,
        dA,
        rowStats,
        maxRows: B,
        classes: C,
        entries: n,
        beta: spec.beta,
        alpha: spec.alpha,
      }),
      ...prepareAmuUpdate(gpu, scope, {
        state,
        order,
        x: train.x,
        dz: dA,
        w: this.#keys,
        m,
        v,
        classes: n,
        dim: D,
        adam: TIP_ADAMW,
      }),
      // lambda 1: the iteration's loss is the mean of the rows' first statistic.
      ...prepareStepFinish(gpu, scope, {
        state,
        rowStats: rowStats.buffer,
        iterStats,
        lambda: 1,
      }),
    ];
    return { stepDispatches, iterStats, counter };
  }

  /** The per-epoch evaluation: hits of the current keys at (spec.beta, spec.alpha). */
  #prepareEpochEvaluation(
    spec: TipTrainSpec,
    evalSplit: string,
  ): Pick<Trainer, "evalDispatches" | "evalHits"> {
    const { gpu } = this;
    const scope = this.#scope;
    const values = uploadOwned(gpu, scope, Float32Array.of(spec.beta, spec.alpha), [2], "init");
    const evalHits = emptyTensor(gpu, scope, [1], "epoch test hits", "int32").buffer;
    const evalDispatches = this.#gridDispatches(
      scope,
      this.#split(evalSplit),
      this.#keys,
      values,
      1,
      1,
      evalHits,
    );
    return { evalDispatches, evalHits };
  }

  /** Runs one epoch's steps and the evaluation in one submission; returns the per-iteration
   * losses and hit counts (float32 as the GPU computed them) and the evaluation's hits. */
  async runEpoch(): Promise<{ loss: Float32Array; correct: Float32Array; evalHits: number }> {
    const t = this.#trainer;
    if (!t) throw new EngineError("Tip-Adapter-F: prepareTraining was not called");
    const list: Dispatch[] = [];
    for (let i = 0; i < t.iters; i++) list.push(...t.stepDispatches);
    list.push(...t.evalDispatches);
    this.gpu.device.queue.writeBuffer(t.evalHits, 0, new Uint32Array(1));
    await this.gpu.scoped("Tip-Adapter-F epoch", () => this.#submit(list));
    const stats = await readBuffer(this.gpu, t.iterStats, t.iters * ITER_RECORD_WORDS * 4);
    const hits = new Uint32Array(await readBuffer(this.gpu, t.evalHits, 4))[0];
    const { loss, correct } = unpackIterationRecords(new Float32Array(stats), t.iters);
    return { loss, correct, evalHits: hits };
  }

  /** Remembers the current keys as the best epoch's (a GPU copy). */
  async keepBestKeys(): Promise<void> {
    const bytes = this.#keys.buffer.size;
    const copy = (enc: GPUCommandEncoder) =>
      enc.copyBufferToBuffer(this.#keys.buffer, 0, this.#bestKeys.buffer, 0, bytes);
    await this.gpu.scoped("Tip-Adapter-F best keys", () => this.#submit([], copy));
  }

  async readKeys(best = false): Promise<Float32Array> {
    const k = best ? this.#bestKeys : this.#keys;
    return new Float32Array(await readBuffer(this.gpu, k.buffer, this.entries * this.dim * 4));
  }

  dispose(): void {
    this.#scope.dispose();
  }
}
