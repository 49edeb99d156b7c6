/** `trainAmu(config, features)`: AMU-Tuning's training loop on cached features, on the GPU.
 *
 * Per epoch the GPU runs every step and the test evaluation from one submission (see
 * session.ts); the host then reads the epoch's per-iteration losses and the evaluation totals
 * once, reads the head weights (and, when saving, the AdamW moments), computes the epoch's
 * metrics, and hands the epoch to the run directory (run_dir.ts: metrics.json,
 * checkpoint_last.npz to resume from, checkpoint_best.npz). A run with the same config, features
 * and order gives the same results bit for bit on one adapter, whether it ran straight through or
 * was resumed. */
import { EngineError } from "../util/errors.ts";
import { getGpu, type Gpu } from "../gpu/mod.ts";
import { type AmuFeatures, firstNonFinite, validateFeatures } from "../models/features.ts";
import { minClassesFor } from "../kernels/amu_factor_shape.ts";
import { type AmuConfig, itersPerEpoch, validateAmuConfig } from "./config.ts";
import { cosineLr } from "./schedule.ts";
import { makeOrder, validateOrder } from "./order.ts";
import { AmuSession, type EvalTotals, type IterationRecords, type SessionPlan } from "./session.ts";
import { type AmuMetrics, bestOf, completed, type EpochMetrics } from "./metrics.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { CannotResumeError, describeRun, type ResumePoint, RunDir } from "./run_dir.ts";

export interface TrainOptions {
  gpu?: Gpu;
  /** Run directory (metrics, order, checkpoints, log), by path or as the caller's RunDir (the
   * one owner of its train.log). Without it nothing is written. */
  outDir?: string | RunDir;
  /** Batch order [epochs * N] to replay instead of one drawn from the seed. */
  order?: Int32Array;
  /** Continue the run in `outDir` from its last checkpoint. */
  resume?: boolean;
  /** Where progress lines go (default: nowhere; the CLI passes console.log). */
  log?: (line: string) => void;
  /** Called after each epoch is recorded (and saved): its metrics, and the run's so far. */
  onEpoch?: (m: EpochMetrics, metrics: AmuMetrics) => void;
  /** Report progress every this many steps within an epoch (splits the epoch's submission). */
  progressSteps?: number;
  onProgress?: (p: { epoch: number; iter: number; iters: number; meanLoss: number }) => void;
  /** Stop after this many epochs in total (simulates an interruption; resume continues). */
  stopAfterEpochs?: number;
  /** Keep per-iteration records and per-epoch weights in the result. */
  trace?: boolean;
  /** Override kernel shapes (tests, benchmarks). */
  plan?: Partial<SessionPlan>;
  /** Where the features came from (recorded in config.json). */
  featuresSource?: string;
}

export interface TrainTrace {
  /** Per iteration of the epochs run by this call (GPU float32 values). */
  loss: number[];
  lossMerge: number[];
  lossAux: number[];
  correct: number[];
  /** Head weights after each epoch run by this call. */
  epochWeights: Float32Array[];
  /** First epoch (1-based) the trace covers. */
  firstEpoch: number;
  /** The head's initial weights (fresh runs only). */
  initialWeight?: Float32Array;
}

export interface TrainResult {
  metrics: AmuMetrics;
  classes: number;
  dim: number;
  finalWeight: Float32Array;
  bestWeight: Float32Array;
  /** The batch order used, [epochs * N]. */
  order: Int32Array;
  /** Learning rate of every step as the GPU used it (float32). */
  stepLr: Float32Array;
  /** Epochs finished (equals config.epochs unless stopped early). */
  epochsDone: number;
  trace?: TrainTrace;
  timings: { setupMs: number; epochMs: number[] };
}

/** Sizes of a training problem, from checked inputs. */
interface Problem {
  classes: number;
  dim: number;
  /** Training rows (N) and test rows (T). */
  trainRows: number;
  testRows: number;
  iters: number;
}

/** One call's inputs, as every phase sees them. */
interface Training {
  config: AmuConfig;
  features: AmuFeatures;
  problem: Problem;
  options: TrainOptions;
  /** Where the run is saved (none: nothing is written). */
  run?: RunDir;
  log: (line: string) => void;
}

/** Where training starts: the batch order, and the checkpoint of a resumed run. */
interface Start {
  order: Int32Array;
  checkpoint?: Checkpoint;
}

/** What training has reached, updated epoch by epoch. */
interface Progress {
  metrics: AmuMetrics;
  finalWeight: Float32Array;
  bestWeight: Float32Array;
  /** Epochs done before this call (a resumed run's). */
  startEpoch: number;
}

export async function trainAmu(
  config: AmuConfig,
  features: AmuFeatures,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const problem = checkProblem(config, features);
  const run = typeof options.outDir === "string" ? new RunDir(options.outDir) : options.outDir;
  const log = (line: string) => {
    options.log?.(line);
    run?.log.append(line);
  };
  const t: Training = { config, features, problem, options, run, log };
  const start = openStart(t);

  const gpu = options.gpu ?? await getGpu();
  const t0 = performance.now();
  const session = await AmuSession.create(gpu, config, features, start.order, options.plan);
  try {
    const setupMs = performance.now() - t0;
    const zeroShot = 100 * session.zeroShotHits / problem.testRows;
    const progress = await startProgress(t, session, start, zeroShot);
    logSetup(t, setupMs, zeroShot);
    const trace = options.trace ? emptyTrace(progress, start) : undefined;
    const stopAt = Math.min(config.epochs, options.stopAfterEpochs ?? config.epochs);
    const epochMs: number[] = [];
    for (let epoch = progress.startEpoch + 1; epoch <= stopAt; epoch++) {
      const te = performance.now();
      const { records, totals } = await runEpochSteps(t, session, epoch);
      const m = epochMetrics(t, epoch, records, totals);
      const weight = await session.readWeights();
      if (!Number.isFinite(m.test_loss) || firstNonFinite(weight) >= 0) {
        throw divergence(t, `epoch ${epoch} ended with a non-finite head or test loss`);
      }
      const improved = recordEpoch(progress, m, weight);
      if (trace) traceEpoch(trace, records, weight);
      if (run) await saveEpoch(t, run, session, progress, improved);
      epochMs.push(performance.now() - te);
      log(epochLine(t, m, epochMs[epochMs.length - 1], improved));
      options.onEpoch?.(m, progress.metrics);
    }
    const epochsDone = progress.startEpoch + epochMs.length;
    if (epochsDone === config.epochs) {
      progress.metrics = completed(progress.metrics);
      if (run) finishRun(t, run, progress, start.checkpoint !== undefined && epochMs.length === 0);
    }
    return {
      metrics: progress.metrics,
      classes: problem.classes,
      dim: problem.dim,
      finalWeight: progress.finalWeight,
      bestWeight: progress.bestWeight,
      order: start.order,
      stepLr: stepRates(session),
      epochsDone,
      trace,
      timings: { setupMs, epochMs },
    };
  } finally {
    session.dispose();
  }
}

/** Checks the config and features, and what training needs of them. */
function checkProblem(config: AmuConfig, features: AmuFeatures): Problem {
  validateAmuConfig(config);
  validateFeatures(features);
  const classes = features.clipWeights.cols;
  const testRows = features.testAux.rows;
  if (testRows < 1) throw new EngineError("features: the test set is empty");
  if (classes < minClassesFor(config.uncertainty)) {
    throw new EngineError(
      `uncertainty '${config.uncertainty}' needs at least ${minClassesFor(config.uncertainty)} ` +
        `classes; the features have ${classes}`,
    );
  }
  const trainRows = features.trainAux.rows;
  return {
    classes,
    dim: features.trainAux.cols,
    trainRows,
    testRows,
    iters: itersPerEpoch(trainRows, config.batchSize),
  };
}

/** The batch order and resume point: a resumed run's own, or the given or seeded order of a
 * fresh run, whose config.json and order.npy are written now. */
function openStart({ config, features, problem, options, run, log }: Training): Start {
  const description = describeRun(config, features, options.featuresSource);
  let resumed: ResumePoint | undefined;
  if (run && options.resume) resumed = run.openResume(description, options.order);
  else run?.checkNoRun();
  const order = resumed?.order ?? options.order ??
    makeOrder(config.seed, config.epochs, problem.trainRows);
  validateOrder(order, config.epochs, problem.trainRows, "batch order");
  const checkpoint = resumed?.checkpoint;
  if (checkpoint) checkCheckpointFits(checkpoint, problem);
  if (run && !options.resume) {
    run.startFresh(description, order, config.epochs, problem.trainRows);
  } else if (run && !checkpoint) {
    log(`no checkpoint in ${run.path} yet: starting from epoch 1`);
  }
  return { order, checkpoint };
}

function checkCheckpointFits(checkpoint: Checkpoint, problem: Problem): void {
  const { classes, dim, iters } = problem;
  if (checkpoint.classes !== classes || checkpoint.dim !== dim) {
    throw new CannotResumeError(
      `cannot resume: checkpoint head is [${checkpoint.classes}, ${checkpoint.dim}], ` +
        `features need [${classes}, ${dim}]`,
    );
  }
  if (checkpoint.step !== checkpoint.epoch * iters) {
    throw new EngineError(`checkpoint step ${checkpoint.step} != epoch x iterations`);
  }
}

/** The session and progress at the start: a resumed run's checkpoint, or the initial head with
 * only the zero-shot accuracy known. */
async function startProgress(
  { config, run, log }: Training,
  session: AmuSession,
  start: Start,
  zeroShot: number,
): Promise<Progress> {
  const ck = start.checkpoint;
  if (!ck) {
    session.setStep(0);
    const weight = await session.readWeights();
    return {
      metrics: { zero_shot_acc: zeroShot, epochs: [], best: { epoch: 0, test_acc: zeroShot } },
      finalWeight: weight,
      bestWeight: weight,
      startEpoch: 0,
    };
  }
  const metrics = ck.metrics;
  metrics.epochs = metrics.epochs.slice(0, ck.epoch);
  if (metrics.epochs.length !== ck.epoch) {
    throw new EngineError(
      `checkpoint records ${metrics.epochs.length} epochs, expected ${ck.epoch}`,
    );
  }
  metrics.best = bestOf(metrics);
  session.setState(ck.weight, ck.expAvg, ck.expAvgSq);
  session.setStep(ck.step);
  log(`resuming ${run?.path} after epoch ${ck.epoch} of ${config.epochs}`);
  return { metrics, finalWeight: ck.weight, bestWeight: ck.bestWeight, startEpoch: ck.epoch };
}

function logSetup({ features, problem, log }: Training, setupMs: number, zeroShot: number): void {
  const { trainRows, testRows, classes, dim, iters } = problem;
  log(
    `features: ${trainRows} training rows, ${testRows} test rows, ${classes} classes, aux dim ` +
      `${dim}, CLIP dim ${features.clipWeights.rows}; ${iters} iterations per epoch; setup ` +
      `${(setupMs / 1000).toFixed(2)} s`,
  );
  log(`zero-shot CLIP accuracy: ${fmt(zeroShot, 2)}%`);
}

/** One epoch's steps and test evaluation, in one submission, or in spans of
 * `options.progressSteps` steps with a progress report after each but the last. Stops at the
 * first non-finite loss. */
async function runEpochSteps(
  t: Training,
  session: AmuSession,
  epoch: number,
): Promise<{ records: IterationRecords; totals: EvalTotals }> {
  const { iters } = t.problem;
  const { progressSteps, onProgress } = t.options;
  const span = progressSteps && onProgress ? Math.max(1, Math.floor(progressSteps)) : iters;
  let done = 0;
  for (;;) {
    const count = Math.min(span, iters - done);
    const last = done + count === iters;
    const result = await session.run(count, last, done + count);
    checkFinite(t, result.records.loss, epoch);
    done += count;
    if (last) return { records: result.records, totals: result.totals! };
    if (onProgress) {
      const losses = result.records.loss;
      let s = 0;
      for (const v of losses) s += v;
      onProgress({ epoch, iter: done, iters, meanLoss: s / losses.length });
    }
  }
}

function epochMetrics(
  { problem, config }: Training,
  epoch: number,
  records: IterationRecords,
  totals: EvalTotals,
): EpochMetrics {
  const { iters, trainRows, testRows } = problem;
  let lossSum = 0, correct = 0;
  for (let i = 0; i < iters; i++) {
    lossSum += records.loss[i];
    correct += records.correct[i];
  }
  const lambda = config.lambdaMerge;
  return {
    epoch,
    lr: cosineLr(config.lr, epoch * iters, config.epochs * iters),
    train_loss: lossSum / iters,
    train_acc: 100 * correct / trainRows,
    test_acc: 100 * totals.fusedHits / testRows,
    aux_acc: 100 * totals.auxHits / testRows,
    test_loss: lambda * (totals.lossMerge / testRows) + (1 - lambda) * (totals.lossAux / testRows),
  };
}

/** Adds epoch `m` with head `weight` to the progress; returns whether it is the new best. */
function recordEpoch(progress: Progress, m: EpochMetrics, weight: Float32Array): boolean {
  const { metrics } = progress;
  progress.finalWeight = weight;
  metrics.epochs.push(m);
  const improved = m.test_acc > (metrics.best.epoch === 0 ? -Infinity : metrics.best.test_acc);
  if (improved) {
    metrics.best = { epoch: m.epoch, test_acc: m.test_acc };
    progress.bestWeight = weight;
  }
  return improved;
}

function emptyTrace(progress: Progress, start: Start): TrainTrace {
  return {
    loss: [],
    lossMerge: [],
    lossAux: [],
    correct: [],
    epochWeights: [],
    firstEpoch: progress.startEpoch + 1,
    initialWeight: start.checkpoint ? undefined : progress.finalWeight,
  };
}

function traceEpoch(trace: TrainTrace, records: IterationRecords, weight: Float32Array): void {
  trace.loss.push(...records.loss);
  trace.lossMerge.push(...records.lossMerge);
  trace.lossAux.push(...records.lossAux);
  trace.correct.push(...records.correct);
  trace.epochWeights.push(weight);
}

/** Hands the epoch just recorded to the run directory, with the optimizer state to resume
 * from. */
async function saveEpoch(
  { problem }: Training,
  run: RunDir,
  session: AmuSession,
  progress: Progress,
  improved: boolean,
): Promise<void> {
  const { m: expAvg, v: expAvgSq } = await session.readMoments();
  const { epoch } = progress.metrics.epochs[progress.metrics.epochs.length - 1];
  run.saveEpoch({
    classes: problem.classes,
    dim: problem.dim,
    weight: progress.finalWeight,
    expAvg,
    expAvgSq,
    step: epoch * problem.iters,
    epoch,
    bestWeight: progress.bestWeight,
    bestEpoch: progress.metrics.best.epoch,
    metrics: progress.metrics,
  }, improved);
}

function epochLine({ config }: Training, m: EpochMetrics, ms: number, improved: boolean): string {
  return `epoch ${m.epoch}/${config.epochs}  lr ${m.lr.toExponential(3)}  train loss ` +
    `${fmt(m.train_loss)} acc ${fmt(m.train_acc, 2)}%  test acc ${fmt(m.test_acc, 2)}% ` +
    `(aux ${fmt(m.aux_acc, 2)}%) loss ${fmt(m.test_loss)}  ` +
    `${(ms / 1000).toFixed(2)} s` + (improved ? "  *best" : "");
}

/** A complete run's final metrics.json, and its best weights again when `rewriteBest` (a
 * finished run resumed, so no epoch wrote them in this call). */
function finishRun(
  { problem, log }: Training,
  run: RunDir,
  progress: Progress,
  rewriteBest: boolean,
): void {
  const { metrics } = progress;
  run.saveMetrics(metrics);
  if (rewriteBest) run.saveBest(progress.bestWeight, problem.classes, problem.dim, metrics);
  log(`best: epoch ${metrics.best.epoch}, test acc ${fmt(metrics.best.test_acc, 2)}%`);
}

/** The learning rate of every step, as the session uploaded it. */
function stepRates(session: AmuSession): Float32Array {
  const stepLr = new Float32Array(session.totalSteps);
  for (let t = 0; t < stepLr.length; t++) stepLr[t] = session.schedule[t * 4];
  return stepLr;
}

function fmt(x: number, digits = 4): string {
  return x.toFixed(digits);
}

/** Stops training at the first non-finite loss among epoch `epoch`'s iterations so far
 * (`losses`): nothing of the epoch is saved, so the run directory keeps the last finite
 * checkpoint. */
function checkFinite(t: Training, losses: ArrayLike<number>, epoch: number): void {
  const i = firstNonFinite(losses);
  if (i >= 0) {
    throw divergence(t, `the loss at epoch ${epoch}, iteration ${i + 1} is ${losses[i]}`);
  }
}

function divergence({ config, run }: Training, what: string): EngineError {
  return new EngineError(
    `training diverged: ${what} (lr ${config.lr}); lower --lr or check the features` +
      (run ? `. ${run.file("last")} still holds the last finite epoch` : ""),
  );
}
