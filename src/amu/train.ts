/** `trainAmu(config, features)`: AMU-Tuning's training loop on cached features, on the GPU.
 *
 * Per epoch the GPU runs every step and the test evaluation from one submission (see
 * session.ts); the host then reads the epoch's per-iteration losses and the evaluation totals
 * once, reads the head weights (and, when saving, the AdamW moments), computes the epoch's
 * metrics, and writes the run directory: metrics.json, checkpoint_last.npz (resumable),
 * checkpoint_best.npz. A run with the same config, features and order gives the same results bit
 * for bit on one adapter, whether it ran straight through or was resumed. */
import { existsSync } from "node:fs";
import { EngineError } from "../util/errors.ts";
import { getGpu, type Gpu } from "../gpu/mod.ts";
import { type AmuFeatures, validateFeatures } from "../models/features.ts";
import { readNpy, writeFileAtomic, writeNpy } from "../util/npy.ts";
import { minClassesFor } from "../kernels/amu_factor_ref.ts";
import {
  type AmuConfig,
  configFromJson,
  configToJson,
  flagForKey,
  itersPerEpoch,
  validateAmuConfig,
} from "./config.ts";
import { cosineLr } from "./schedule.ts";
import { makeOrder, orderFromNpy, orderToNpy, validateOrder } from "./order.ts";
import { AmuSession, type SessionPlan } from "./session.ts";
import { type AmuMetrics, bestOf, completed, type EpochMetrics, metricsJson } from "./metrics.ts";
import {
  type Checkpoint,
  featureFingerprint,
  loadCheckpoint,
  RUN_FILES,
  runFile,
  saveBestWeights,
  saveCheckpoint,
} from "./checkpoint.ts";

export interface TrainOptions {
  gpu?: Gpu;
  /** Run directory (metrics, order, checkpoints, log). Without it nothing is written. */
  outDir?: string;
  /** Batch order [epochs * N] to replay instead of one drawn from the seed. */
  order?: Int32Array;
  /** Continue the run in `outDir` from its last checkpoint. */
  resume?: boolean;
  /** Where progress lines go (default: nowhere; the CLI passes console.log). */
  log?: (line: string) => void;
  /** Called after each epoch's metrics are known. */
  onEpoch?: (m: EpochMetrics) => void;
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

interface RunDescription {
  config: Record<string, unknown>;
  features: Record<string, unknown>;
  iters_per_epoch: number;
  total_steps: number;
}

function describeRun(
  config: AmuConfig,
  f: AmuFeatures,
  source: string | undefined,
): RunDescription {
  return {
    config: configToJson(config),
    features: {
      source: source ?? null,
      train_rows: f.trainAux.rows,
      test_rows: f.testAux.rows,
      classes: f.clipWeights.cols,
      aux_dim: f.trainAux.cols,
      clip_dim: f.clipWeights.rows,
      fingerprint: featureFingerprint([
        f.trainClip.data,
        f.trainAux.data,
        f.trainLabels,
        f.testClip.data,
        f.testAux.data,
        f.testLabels,
        f.clipWeights.data,
      ]),
    },
    iters_per_epoch: itersPerEpoch(f.trainAux.rows, config.batchSize),
    total_steps: config.epochs * itersPerEpoch(f.trainAux.rows, config.batchSize),
  };
}

/** Refuses to resume a run with different hyper-parameters or features, naming what differs. */
function checkResumable(dir: string, saved: RunDescription, now: RunDescription): void {
  const path = runFile(dir, "config");
  const savedConfig = configFromJson(saved.config, path);
  const nowConfig = configFromJson(now.config, "current config");
  for (const key of Object.keys(nowConfig) as (keyof AmuConfig)[]) {
    if (key === "expName") continue;
    if (JSON.stringify(savedConfig[key]) !== JSON.stringify(nowConfig[key])) {
      const flag = flagForKey(key);
      throw new EngineError(
        `cannot resume ${dir}: ${flag ? `--${flag}` : key} was ${savedConfig[key]}, now ` +
          `${nowConfig[key]} (resume with the run's own settings)`,
      );
    }
  }
  const a = saved.features, b = now.features;
  for (const k of ["train_rows", "test_rows", "classes", "aux_dim", "clip_dim", "fingerprint"]) {
    if (a[k] !== b[k]) {
      throw new EngineError(
        `cannot resume ${dir}: the features differ from the run's (${k} ${a[k]} vs ${b[k]})`,
      );
    }
  }
}

function orderEquals(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function fmt(x: number, digits = 4): string {
  return x.toFixed(digits);
}

export async function trainAmu(
  config: AmuConfig,
  features: AmuFeatures,
  options: TrainOptions = {},
): Promise<TrainResult> {
  validateAmuConfig(config);
  validateFeatures(features);
  const classes = features.clipWeights.cols;
  const dim = features.trainAux.cols;
  const N = features.trainAux.rows;
  const T = features.testAux.rows;
  if (T < 1) throw new EngineError("features: the test set is empty");
  if (classes < minClassesFor(config.uncertainty)) {
    throw new EngineError(
      `uncertainty '${config.uncertainty}' needs at least ${minClassesFor(config.uncertainty)} ` +
        `classes; the features have ${classes}`,
    );
  }
  const dir = options.outDir;
  const logLines: string[] = [];
  const log = (line: string) => {
    options.log?.(line);
    if (dir) logLines.push(line);
  };
  const flushLog = () => {
    if (!dir || logLines.length === 0) return;
    Deno.writeTextFileSync(runFile(dir, "log"), logLines.join("\n") + "\n", { append: true });
    logLines.length = 0;
  };
  const iters = itersPerEpoch(N, config.batchSize);
  const description = describeRun(config, features, options.featuresSource);

  // Order and resume state.
  let order = options.order;
  let resumeFrom: Checkpoint | undefined;
  if (dir) {
    const lastPath = runFile(dir, "last");
    if (options.resume) {
      const cfgPath = runFile(dir, "config");
      if (!existsSync(cfgPath)) {
        throw new EngineError(`cannot resume: ${cfgPath} does not exist (no run to resume)`);
      }
      const saved = JSON.parse(Deno.readTextFileSync(cfgPath)) as RunDescription;
      checkResumable(dir, saved, description);
      const savedOrder = orderFromNpy(readNpy(runFile(dir, "order")), runFile(dir, "order"));
      if (order && !orderEquals(order, savedOrder.order)) {
        throw new EngineError(`cannot resume ${dir}: --order differs from the run's order.npy`);
      }
      order = savedOrder.order;
      if (existsSync(lastPath)) resumeFrom = loadCheckpoint(lastPath);
    } else if (existsSync(lastPath) || existsSync(runFile(dir, "metrics"))) {
      throw new EngineError(
        `${dir} already holds a run; pass --resume to continue it, or choose another ` +
          `--exp_name / --out`,
      );
    }
  }
  order ??= makeOrder(config.seed, config.epochs, N);
  validateOrder(order, config.epochs, N, "batch order");
  if (resumeFrom) {
    if (resumeFrom.classes !== classes || resumeFrom.dim !== dim) {
      throw new EngineError(
        `cannot resume: checkpoint head is [${resumeFrom.classes}, ${resumeFrom.dim}], ` +
          `features need [${classes}, ${dim}]`,
      );
    }
    if (resumeFrom.step !== resumeFrom.epoch * iters) {
      throw new EngineError(`checkpoint step ${resumeFrom.step} != epoch x iterations`);
    }
  }
  if (dir) {
    Deno.mkdirSync(dir, { recursive: true });
    if (!resumeFrom && !options.resume) {
      writeFileAtomic(runFile(dir, "config"), JSON.stringify(description, null, 2) + "\n");
      writeNpy(runFile(dir, "order"), orderToNpy(order, config.epochs, N));
    } else if (options.resume && !resumeFrom) {
      log(`no checkpoint in ${dir} yet: starting from epoch 1`);
    }
  }

  const gpu = options.gpu ?? await getGpu();
  const t0 = performance.now();
  const session = await AmuSession.create(gpu, config, features, order, options.plan);
  try {
    const setupMs = performance.now() - t0;
    const zeroShot = 100 * session.zeroShotHits / T;
    let metrics: AmuMetrics;
    let bestWeight: Float32Array;
    let finalWeight: Float32Array;
    let startEpoch = 0;
    if (resumeFrom) {
      metrics = resumeFrom.metrics;
      metrics.epochs = metrics.epochs.slice(0, resumeFrom.epoch);
      if (metrics.epochs.length !== resumeFrom.epoch) {
        throw new EngineError(
          `checkpoint records ${metrics.epochs.length} epochs, expected ` +
            `${resumeFrom.epoch}`,
        );
      }
      metrics.best = bestOf(metrics);
      session.setState(resumeFrom.weight, resumeFrom.expAvg, resumeFrom.expAvgSq);
      session.setStep(resumeFrom.step);
      bestWeight = resumeFrom.bestWeight;
      finalWeight = resumeFrom.weight;
      startEpoch = resumeFrom.epoch;
      log(`resuming ${dir} after epoch ${startEpoch} of ${config.epochs}`);
    } else {
      metrics = { zero_shot_acc: zeroShot, epochs: [], best: { epoch: 0, test_acc: zeroShot } };
      session.setStep(0);
      finalWeight = await session.readWeights();
      bestWeight = finalWeight;
    }
    log(
      `features: ${N} training rows, ${T} test rows, ${classes} classes, aux dim ${dim}, ` +
        `CLIP dim ${features.clipWeights.rows}; ${iters} iterations per epoch; setup ` +
        `${(setupMs / 1000).toFixed(2)} s`,
    );
    log(`zero-shot CLIP accuracy: ${fmt(zeroShot, 2)}%`);
    flushLog();

    const trace: TrainTrace | undefined = options.trace
      ? {
        loss: [],
        lossMerge: [],
        lossAux: [],
        correct: [],
        epochWeights: [],
        firstEpoch: startEpoch + 1,
        initialWeight: resumeFrom ? undefined : finalWeight,
      }
      : undefined;
    const epochMs: number[] = [];
    const stopAt = Math.min(config.epochs, options.stopAfterEpochs ?? config.epochs);
    for (let e = startEpoch; e < stopAt; e++) {
      const te = performance.now();
      const chunk = options.progressSteps && options.onProgress
        ? Math.max(1, Math.floor(options.progressSteps))
        : iters;
      let done = 0;
      let result: Awaited<ReturnType<AmuSession["run"]>> | undefined;
      while (done < iters) {
        const count = Math.min(chunk, iters - done);
        const last = done + count === iters;
        result = await session.run(count, last, done + count);
        checkFinite(result.records.loss, e + 1, config, dir);
        done += count;
        if (!last && options.onProgress) {
          const losses = result.records.loss;
          let s = 0;
          for (const v of losses) s += v;
          options.onProgress({ epoch: e + 1, iter: done, iters, meanLoss: s / losses.length });
        }
      }
      const { records, totals } = result!;
      let lossSum = 0, correct = 0;
      for (let i = 0; i < iters; i++) {
        lossSum += records.loss[i];
        correct += records.correct[i];
      }
      const t = totals!;
      const lambda = config.lambdaMerge;
      const m: EpochMetrics = {
        epoch: e + 1,
        lr: cosineLr(config.lr, (e + 1) * iters, config.epochs * iters),
        train_loss: lossSum / iters,
        train_acc: 100 * correct / N,
        test_acc: 100 * t.fusedHits / T,
        aux_acc: 100 * t.auxHits / T,
        test_loss: lambda * (t.lossMerge / T) + (1 - lambda) * (t.lossAux / T),
      };
      finalWeight = await session.readWeights();
      if (!Number.isFinite(m.test_loss) || firstNonFinite(finalWeight) >= 0) {
        throw divergence(`epoch ${m.epoch} ended with a non-finite head or test loss`, config, dir);
      }
      metrics.epochs.push(m);
      const isBest = m.test_acc > (metrics.best.epoch === 0 ? -Infinity : metrics.best.test_acc);
      if (isBest) {
        metrics.best = { epoch: m.epoch, test_acc: m.test_acc };
        bestWeight = finalWeight;
      }
      if (trace) {
        trace.loss.push(...records.loss);
        trace.lossMerge.push(...records.lossMerge);
        trace.lossAux.push(...records.lossAux);
        trace.correct.push(...records.correct);
        trace.epochWeights.push(finalWeight);
      }
      if (dir) {
        const { m: expAvg, v: expAvgSq } = await session.readMoments();
        saveCheckpoint(runFile(dir, "last"), {
          classes,
          dim,
          weight: finalWeight,
          expAvg,
          expAvgSq,
          step: (e + 1) * iters,
          epoch: e + 1,
          bestWeight,
          bestEpoch: metrics.best.epoch,
          metrics,
        });
        if (isBest) {
          saveBestWeights(runFile(dir, "best"), bestWeight, classes, dim, m.epoch, m.test_acc);
        }
        writeFileAtomic(runFile(dir, "metrics"), metricsJson(metrics));
      }
      epochMs.push(performance.now() - te);
      log(
        `epoch ${m.epoch}/${config.epochs}  lr ${m.lr.toExponential(3)}  train loss ` +
          `${fmt(m.train_loss)} acc ${fmt(m.train_acc, 2)}%  test acc ${fmt(m.test_acc, 2)}% ` +
          `(aux ${fmt(m.aux_acc, 2)}%) loss ${fmt(m.test_loss)}  ` +
          `${(epochMs[epochMs.length - 1] / 1000).toFixed(2)} s` + (isBest ? "  *best" : ""),
      );
      flushLog();
      options.onEpoch?.(m);
    }
    const epochsDone = startEpoch + epochMs.length;
    if (epochsDone === config.epochs) metrics = completed(metrics);
    if (dir && epochsDone === config.epochs) {
      writeFileAtomic(runFile(dir, "metrics"), metricsJson(metrics));
      if (resumeFrom && epochMs.length === 0) {
        saveBestWeights(
          runFile(dir, "best"),
          bestWeight,
          classes,
          dim,
          metrics.best.epoch,
          metrics.best.test_acc,
        );
      }
      log(`best: epoch ${metrics.best.epoch}, test acc ${fmt(metrics.best.test_acc, 2)}%`);
      flushLog();
    }
    const stepLr = new Float32Array(session.totalSteps);
    for (let t = 0; t < stepLr.length; t++) stepLr[t] = session.schedule[t * 4];
    return {
      metrics,
      classes,
      dim,
      finalWeight,
      bestWeight,
      order,
      stepLr,
      epochsDone,
      trace,
      timings: { setupMs, epochMs },
    };
  } finally {
    session.dispose();
  }
}

export { RUN_FILES };

function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) return i;
  }
  return -1;
}

/** Stops training at the first non-finite loss among epoch `epoch`'s iterations so far
 * (`losses`): nothing of the epoch is saved, so the run directory keeps the last finite
 * checkpoint. */
function checkFinite(
  losses: ArrayLike<number>,
  epoch: number,
  config: AmuConfig,
  dir: string | undefined,
): void {
  const i = firstNonFinite(losses);
  if (i >= 0) {
    throw divergence(
      `the loss at epoch ${epoch}, iteration ${i + 1} is ${losses[i]}`,
      config,
      dir,
    );
  }
}

function divergence(what: string, config: AmuConfig, dir: string | undefined): EngineError {
  return new EngineError(
    `training diverged: ${what} (lr ${config.lr}); lower --lr or check the features` +
      (dir ? `. ${runFile(dir, "last")} still holds the last finite epoch` : ""),
  );
}
