/** Tip-Adapter (training-free cache model, (beta, alpha) grid search) and Tip-Adapter-F
 * (trainable keys) on cached CLIP features, as the original code (gaopengcuhk/Tip-Adapter,
 * main.py / main_imagenet.py / utils.py) computes them:
 *   keys    = normalize(mean over augmented views of each few-shot image's raw CLIP features)
 *   values  = one-hot labels of the images
 *   logits  = 100 * f @ clip_weights + alpha * exp(-(beta - beta * f @ keys^T)) @ values
 *   search  = beta_i = i * (scale0 - 0.1) / step0 + 0.1 (i < step0), alpha_j likewise; beta outer,
 *             alpha inner; the first pair with strictly higher accuracy than the best so far
 *             (starting at 0) wins; the result is the test accuracy at that pair.
 *   -F      = keys trained with cross-entropy at (init_beta, init_alpha) on every cached view,
 *             AdamW(lr, eps 1e-4, weight decay 0.01), cosine schedule per iteration; the keys of
 *             the epoch with the strictly best test accuracy are kept and searched with.
 * The search looks at the validation split, or at test when the features have none (as
 * Tip-Adapter does for ImageNet); `search_split` says which. GPU work is in
 * tip_adapter_session.ts; the grid's accuracies are all counted on the GPU in one submission (the
 * host only compares the counts), because every pair needs a pass over all rows x cache entries. */
import { EngineError } from "../util/errors.ts";
import { getGpu, type Gpu } from "../gpu/mod.ts";
import { type AmuFeatures, type FeatureMatrix, validateFeatures } from "../models/features.ts";
import type { EpochRecord, MethodResult } from "./method.ts";
import { makeOrder, validateOrder } from "./order.ts";
import { TipSession } from "./tip_adapter_session.ts";

/** Tip-Adapter's hyper-parameters, named by its config keys. */
export interface TipAdapterConfig {
  init_beta: number;
  init_alpha: number;
  /** Largest beta and alpha of the search. */
  search_scale: [number, number];
  /** Number of betas and alphas in the search. */
  search_step: [number, number];
  lr: number;
  train_epoch: number;
  batch_size: number;
  /** Seed of the batch order when none is given (ours: Tip-Adapter uses PyTorch's shuffle). */
  seed: number;
}

/** Tip-Adapter's configs/imagenet.yaml (batch 256 from its train_loader_F). */
export const TIP_ADAPTER_DEFAULTS: Readonly<TipAdapterConfig> = {
  init_beta: 1,
  init_alpha: 1.17,
  search_scale: [7, 3],
  search_step: [200, 20],
  lr: 0.001,
  train_epoch: 20,
  batch_size: 256,
  seed: 1,
};

export function validateTipConfig(c: TipAdapterConfig): void {
  const bad = (msg: string) => {
    throw new EngineError(`Tip-Adapter config: ${msg}`);
  };
  for (const k of ["init_beta", "init_alpha", "lr"] as const) {
    if (!Number.isFinite(c[k])) bad(`${k} must be a finite number, is ${c[k]}`);
  }
  if (!(c.lr >= 0)) bad(`lr must be >= 0, is ${c.lr}`);
  for (let i = 0; i < 2; i++) {
    if (!Number.isFinite(c.search_scale[i])) bad(`search_scale[${i}] must be finite`);
    if (!Number.isInteger(c.search_step[i]) || c.search_step[i] < 1) {
      bad(`search_step[${i}] must be a positive integer, is ${c.search_step[i]}`);
    }
  }
  for (const k of ["train_epoch", "batch_size"] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) bad(`${k} must be a positive integer, is ${c[k]}`);
  }
}

/** The search's betas and alphas in float64, as utils.search_hp lists them. */
export function searchGrid(c: TipAdapterConfig): { betas: number[]; alphas: number[] } {
  const list = (scale: number, step: number) =>
    Array.from({ length: step }, (_, i) => i * (scale - 0.1) / step + 0.1);
  return {
    betas: list(c.search_scale[0], c.search_step[0]),
    alphas: list(c.search_scale[1], c.search_step[1]),
  };
}

/** The winning pair of a grid of hit counts [betas, alphas]: beta outer, alpha inner, strictly
 * better than the best so far, starting from accuracy 0 at (0, 0) like search_hp. */
export function pickBest(
  hits: ArrayLike<number>,
  betas: readonly number[],
  alphas: readonly number[],
): { beta: number; alpha: number; hits: number } {
  let best = { beta: 0, alpha: 0, hits: 0 };
  for (let i = 0; i < betas.length; i++) {
    for (let j = 0; j < alphas.length; j++) {
      // Same denominator everywhere: comparing counts is comparing accuracies.
      const h = hits[i * alphas.length + j];
      if (h > best.hits) best = { beta: betas[i], alpha: alphas[j], hits: h };
    }
  }
  return best;
}

/** The cache built from the training rows. */
export interface TipCache {
  /** [images, D] float32: normalised mean of each image's raw views. */
  keys: Float32Array;
  /** [images]: each image's label (the one-hot values). */
  labels: Int32Array;
  images: number;
  /** [R]: the image of each training row. */
  imageOfRow: Int32Array;
  /** Whether imageOfRow came from the features (false: derived as row % images). */
  recorded: boolean;
}

/** Keys and values from the training rows. Rows belong to images by `trainImage` when the
 * features record it; otherwise rows are taken as view-major (row r = view floor(r / n) of image
 * r % n, as the feature extractor writes them) with n = rows / views. */
export function buildCache(features: AmuFeatures, views = 1): TipCache {
  const R = features.trainClip.rows, D = features.trainClip.cols;
  let imageOfRow: Int32Array;
  let images: number;
  const recorded = features.trainImage !== undefined;
  if (features.trainImage) {
    imageOfRow = features.trainImage;
    if (imageOfRow.length !== R) {
      throw new EngineError(`train_image has ${imageOfRow.length} entries, train_clip ${R} rows`);
    }
    images = 0;
    for (const i of imageOfRow) {
      if (!(i >= 0)) throw new EngineError(`train_image holds ${i}, not an image index`);
      images = Math.max(images, i + 1);
    }
  } else {
    if (!Number.isInteger(views) || views < 1 || R % views !== 0) {
      throw new EngineError(
        `cannot group ${R} training rows into ${views} views per image (rows must be ` +
          `views x images); pass the cache's augment_views`,
      );
    }
    images = R / views;
    imageOfRow = new Int32Array(R);
    for (let r = 0; r < R; r++) imageOfRow[r] = r % images;
  }
  const sums = new Float64Array(images * D);
  const counts = new Int32Array(images);
  const labels = new Int32Array(images).fill(-1);
  const x = features.trainClip.data;
  for (let r = 0; r < R; r++) {
    const i = imageOfRow[r];
    counts[i]++;
    if (labels[i] < 0) labels[i] = features.trainLabels[r];
    else if (labels[i] !== features.trainLabels[r]) {
      throw new EngineError(
        `training row ${r} (image ${i}) has label ${features.trainLabels[r]}, another view of ` +
          `the image has ${labels[i]}`,
      );
    }
    for (let k = 0; k < D; k++) sums[i * D + k] += x[r * D + k];
  }
  const keys = new Float32Array(images * D);
  for (let i = 0; i < images; i++) {
    if (counts[i] === 0) throw new EngineError(`train_image never names image ${i}`);
    let ss = 0;
    for (let k = 0; k < D; k++) {
      const m = sums[i * D + k] / counts[i];
      sums[i * D + k] = m;
      ss += m * m;
    }
    const norm = Math.sqrt(ss);
    for (let k = 0; k < D; k++) keys[i * D + k] = sums[i * D + k] / norm;
  }
  return { keys, labels, images, imageOfRow, recorded };
}

export interface TipOptions {
  gpu?: Gpu;
  log?: (line: string) => void;
  /** Tip-Adapter-F's batch order [train_epoch * rows] (default: drawn from config.seed). */
  order?: Int32Array;
  /** Augmented views per image, used when the features do not record train_image. */
  views?: number;
  /** Bytes of the widest buffer a split's row chunk may use (tests shrink it). */
  chunkBytes?: number;
}

export interface TipAdapterResult extends MethodResult {
  method: "tip-adapter" | "tip-adapter-f";
  final: { test_acc: number; beta: number; alpha: number; [chosen: string]: number | string };
  search_split: "val" | "test";
  /** Accuracy at the searched pair on the search split. */
  search_acc: number;
  /** The grid: its betas, alphas and accuracies [betas, alphas] on the search split. */
  grid: { betas: number[]; alphas: number[]; acc: Float64Array };
}

export interface TipAdapterFResult extends TipAdapterResult {
  epochs: EpochRecord[];
  /** Per-iteration training losses (float32, as the GPU computed them). */
  iterLoss: Float32Array;
  /** [images, D]: the keys of the best epoch. */
  bestKeys: Float32Array;
}

function searchSplitOf(
  f: AmuFeatures,
): { name: "val" | "test"; clip: FeatureMatrix; labels: Int32Array } {
  if (f.valClip && f.valLabels) return { name: "val", clip: f.valClip, labels: f.valLabels };
  return { name: "test", clip: f.testClip, labels: f.testLabels };
}

async function openSession(
  features: AmuFeatures,
  options: TipOptions,
  log: (line: string) => void,
): Promise<{ session: TipSession; cache: TipCache; search: "val" | "test" }> {
  validateFeatures(features);
  const search = searchSplitOf(features);
  if (features.testClip.rows < 1) throw new EngineError("features: the test set is empty");
  if (search.clip.rows < 1) throw new EngineError("features: the validation set is empty");
  const cache = buildCache(features, options.views ?? 1);
  log(
    `Tip-Adapter cache: ${cache.images} images x ${features.trainClip.rows / cache.images} ` +
      `views (${cache.recorded ? "train_image" : "rows taken as view-major"}), ` +
      `${features.clipWeights.cols} classes; searching on ${search.name}`,
  );
  const gpu = options.gpu ?? await getGpu();
  const splits: Record<string, { clip: FeatureMatrix; labels: Int32Array }> = {
    test: { clip: features.testClip, labels: features.testLabels },
  };
  if (search.name === "val") splits.val = { clip: search.clip, labels: search.labels };
  const session = await TipSession.create(
    gpu,
    cache.keys,
    cache.labels,
    features.clipWeights,
    splits,
    options.chunkBytes,
  );
  return { session, cache, search: search.name };
}

async function searchAndTest(
  session: TipSession,
  config: TipAdapterConfig,
  search: "val" | "test",
  best: boolean,
) {
  const { betas, alphas } = searchGrid(config);
  const hits = await session.gridHits(search, betas, alphas, best);
  const rows = session.splitRows(search);
  const acc = Float64Array.from(hits, (h) => 100 * h / rows);
  const pick = pickBest(hits, betas, alphas);
  const testAcc = await session.accuracy("test", pick.beta, pick.alpha, best);
  return { betas, alphas, acc, pick, searchAcc: 100 * pick.hits / rows, testAcc };
}

/** Zero-shot accuracy from the session's test logits: alpha 0 leaves exactly the CLIP logits
 * (the cache term is finite, at most one per entry). */
function zeroShot(session: TipSession): Promise<number> {
  return session.accuracy("test", 1, 0);
}

/** Training-free Tip-Adapter: the cache, the search, the test accuracy at the searched pair. */
export async function runTipAdapter(
  features: AmuFeatures,
  config: TipAdapterConfig = TIP_ADAPTER_DEFAULTS,
  options: TipOptions = {},
): Promise<TipAdapterResult> {
  validateTipConfig(config);
  const log = options.log ?? (() => {});
  const { session, search } = await openSession(features, options, log);
  try {
    const zs = await zeroShot(session);
    const s = await searchAndTest(session, config, search, false);
    log(
      `Tip-Adapter: beta ${s.pick.beta.toFixed(3)}, alpha ${s.pick.alpha.toFixed(3)} ` +
        `(${search} ${s.searchAcc.toFixed(2)}%): test ${s.testAcc.toFixed(2)}%`,
    );
    return {
      method: "tip-adapter",
      zero_shot_acc: zs,
      final: { test_acc: s.testAcc, beta: s.pick.beta, alpha: s.pick.alpha },
      search_split: search,
      search_acc: s.searchAcc,
      grid: { betas: s.betas, alphas: s.alphas, acc: s.acc },
    };
  } finally {
    session.dispose();
  }
}

/** Tip-Adapter-F: trains the keys, keeps the best epoch's, then searches like Tip-Adapter. */
export async function runTipAdapterF(
  features: AmuFeatures,
  config: TipAdapterConfig = TIP_ADAPTER_DEFAULTS,
  options: TipOptions = {},
): Promise<TipAdapterFResult> {
  validateTipConfig(config);
  const log = options.log ?? (() => {});
  const R = features.trainClip.rows;
  const epochs = config.train_epoch;
  const order = options.order ?? makeOrder(config.seed, epochs, R);
  validateOrder(order, epochs, R, "Tip-Adapter-F batch order");
  const { session, search } = await openSession(features, options, log);
  try {
    const zs = await zeroShot(session);
    await session.prepareTraining({
      clip: features.trainClip,
      labels: features.trainLabels,
      order,
      epochs,
      batchSize: config.batch_size,
      lr: config.lr,
      beta: config.init_beta,
      alpha: config.init_alpha,
    }, "test");
    // Until an epoch beats 0%, the "best" keys are the initial ones.
    await session.keepBestKeys();
    const T = features.testClip.rows;
    const records: EpochRecord[] = [];
    const iterLoss: number[] = [];
    let bestAcc = 0, bestEpoch = 0;
    for (let e = 1; e <= epochs; e++) {
      const r = await session.runEpoch();
      let sum = 0, correct = 0;
      for (let i = 0; i < r.loss.length; i++) {
        sum += r.loss[i];
        correct += r.correct[i];
      }
      if (!Number.isFinite(sum)) {
        throw new EngineError(
          `Tip-Adapter-F diverged: epoch ${e} has a non-finite loss (try a smaller lr)`,
        );
      }
      iterLoss.push(...r.loss);
      const m: EpochRecord = {
        epoch: e,
        test_acc: 100 * r.evalHits / T,
        train_loss: sum / r.loss.length,
        train_acc: 100 * correct / R,
      };
      records.push(m);
      const isBest = m.test_acc > bestAcc;
      if (isBest) {
        bestAcc = m.test_acc;
        bestEpoch = e;
        await session.keepBestKeys();
      }
      log(
        `Tip-Adapter-F epoch ${e}/${epochs}: train loss ${m.train_loss.toFixed(4)} acc ` +
          `${m.train_acc.toFixed(2)}%, test ${m.test_acc.toFixed(2)}%${isBest ? "  *best" : ""}`,
      );
    }
    const s = await searchAndTest(session, config, search, true);
    log(
      `Tip-Adapter-F: best epoch ${bestEpoch}; beta ${s.pick.beta.toFixed(3)}, alpha ` +
        `${s.pick.alpha.toFixed(3)} (${search} ${s.searchAcc.toFixed(2)}%): test ` +
        `${s.testAcc.toFixed(2)}%`,
    );
    return {
      method: "tip-adapter-f",
      zero_shot_acc: zs,
      final: {
        test_acc: s.testAcc,
        beta: s.pick.beta,
        alpha: s.pick.alpha,
        best_epoch: bestEpoch,
      },
      search_split: search,
      search_acc: s.searchAcc,
      grid: { betas: s.betas, alphas: s.alphas, acc: s.acc },
      epochs: records,
      iterLoss: Float32Array.from(iterLoss),
      bestKeys: await session.readKeys(true),
    };
  } finally {
    session.dispose();
  }
}
