/** A per-image feature store for sweeps: every image of a dataset is encoded once per encoder
 * pair and view, whatever few-shot lists (shot counts, seeds) and methods use it.
 *
 * Layout of a store folder (one per dataset and encoders):
 *   store.json                 {"format": "amu-feature-store", "key": ..., "shards": n}
 *   text.npz                   clip_weights [Dc, C] (written by shard 0)
 *   shard-<i>-of-<n>/          one extraction shard: a slice of the images
 *     features.npz             train_clip/train_aux [rows, D]: training views; eval_clip/eval_aux
 *     index.json               which image (path relative to the root, occurrence) and view each
 *                              row holds; images that could not be read
 *     partial/                 segments of an interrupted extraction (resumed)
 * Shards are written independently (Slurm array tasks) and never merged on disk: `loadStore`
 * reads every shard's index and arrays, and `gatherFeatures` picks a cell's rows by image.
 *
 * Training views are seeded by (augment seed, the image's path and occurrence, view) (see
 * extract.ts pathViewIds), so a view is the same in every list that holds the image, and a cell
 * sees the views `deno task train` makes for its list (encoded in other batches, so equal up to
 * float32 rounding where a kernel's choice depends on the batch size). An image a class draws twice
 * (sampling with replacement) has two entries, occurrences 0 and 1, with views of their own. */
import { existsSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { EngineError } from "../util/errors.ts";
import type { LabeledImage } from "./datasets.ts";
import { extractFeatures, type ImageTower, type SkippedImage, viewId } from "./extract.ts";
import { type AmuFeatures, type FeatureMatrix, featureMatrix } from "../models/features.ts";
import { type NpyArray, npyArray, writeFileAtomic } from "../util/npy.ts";
import { npzGet, readNpz, writeNpz } from "../util/npz.ts";
import type { ProgressOptions } from "./progress.ts";

export const STORE_FORMAT = "amu-feature-store";

/** One training entry: an image path (relative to the root) and its occurrence in a list. */
export interface TrainEntry {
  readonly path: string;
  readonly occurrence: number;
}

/** What a store must hold: the union of every cell's lists. */
export interface StoreContents {
  /** Absolute dataset root; paths in the store are relative to it. */
  root: string;
  /** Training entries (path, occurrence) whose views are needed, in a fixed order. */
  train: TrainEntry[];
  /** Images needing the evaluation view (test and validation), relative paths, fixed order. */
  eval: string[];
  /** Labels by relative path (for the rows a cell gathers). */
  labels: Map<string, number>;
}

/** The entries of a set of few-shot lists plus evaluation lists, deduplicated and sorted so
 * every process (each Slurm task) computes the same order. */
export function storeContents(
  root: string,
  trainLists: readonly (readonly LabeledImage[])[],
  evalLists: readonly (readonly LabeledImage[])[],
): StoreContents {
  const abs = resolve(root);
  const labels = new Map<string, number>();
  const train = new Map<string, TrainEntry>();
  for (const list of trainLists) {
    const seen = new Map<string, number>();
    for (const it of list) {
      const path = relative(abs, it.path);
      labels.set(path, it.label);
      const occurrence = seen.get(path) ?? 0;
      seen.set(path, occurrence + 1);
      train.set(`${path}#${occurrence}`, { path, occurrence });
    }
  }
  const evalSet = new Set<string>();
  for (const list of evalLists) {
    for (const it of list) {
      const path = relative(abs, it.path);
      labels.set(path, it.label);
      evalSet.add(path);
    }
  }
  const byPath = (a: TrainEntry, b: TrainEntry) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : a.occurrence - b.occurrence;
  return {
    root: abs,
    train: [...train.values()].sort(byPath),
    eval: [...evalSet].sort(),
    labels,
  };
}

export function shardName(index: number, count: number): string {
  return `shard-${index}-of-${count}`;
}

/** The slice [start, end) of `n` items that shard `index` of `count` extracts. */
export function shardRange(n: number, index: number, count: number): [number, number] {
  return [Math.floor(n * index / count), Math.floor(n * (index + 1) / count)];
}

/** Parses `I/N` (shard I of N, 0-based). */
export function parseShard(text: string, flag = "--shard"): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) {
    throw new EngineError(`${flag} ${text}: expected I/N with 0 <= I < N, e.g. 0/4`);
  }
  return { index, count };
}

interface ShardIndex {
  format: typeof STORE_FORMAT;
  key: string;
  views: number;
  /** Per training entry of the shard: its path, occurrence, and its first row (views follow). */
  train: { path: string; occurrence: number; row: number }[];
  eval: { path: string; row: number }[];
  skipped: SkippedImage[];
}

export interface ShardJob {
  storeDir: string;
  /** Identity of the encoders and views; a shard written under another key is redone. */
  key: string;
  contents: StoreContents;
  shard: { index: number; count: number };
  views: number;
  augmentSeed: number;
  towers: () => Promise<{ towers: ImageTower[]; dispose(): void }>;
  batchSize: number;
  log: (line: string) => void;
  progress?: ProgressOptions | false;
}

/** Whether shard `index` of `count` is complete under `key`. */
export function shardDone(storeDir: string, key: string, index: number, count: number): boolean {
  const dir = join(storeDir, shardName(index, count));
  if (!existsSync(join(dir, "index.json")) || !existsSync(join(dir, "features.npz"))) return false;
  try {
    return (JSON.parse(Deno.readTextFileSync(join(dir, "index.json"))) as ShardIndex).key === key;
  } catch {
    return false;
  }
}

/** Extracts one shard's images (skipped when already complete under the same key). Returns
 * the number of views encoded (0 when the shard was complete). */
export async function extractShard(job: ShardJob): Promise<number> {
  const { index, count } = job.shard;
  if (shardDone(job.storeDir, job.key, index, count)) {
    job.log(`${shardName(index, count)}: complete, skipped`);
    return 0;
  }
  const dir = join(job.storeDir, shardName(index, count));
  Deno.mkdirSync(dir, { recursive: true });
  const [t0, t1] = shardRange(job.contents.train.length, index, count);
  const [e0, e1] = shardRange(job.contents.eval.length, index, count);
  const root = job.contents.root;
  const trainEntries = job.contents.train.slice(t0, t1);
  const evalPaths = job.contents.eval.slice(e0, e1);
  const item = (path: string): LabeledImage => ({
    path: join(root, path),
    label: job.contents.labels.get(path) ?? 0,
  });
  const { towers, dispose } = await job.towers();
  try {
    // The views of entry (path, occurrence) are seeded as pathViewIds seeds them in a list.
    const trainItems = trainEntries.map((e) => item(e.path));
    const imageIds = trainEntries.map((e) => viewId(e.path, e.occurrence));
    const train = trainItems.length === 0 ? undefined : await extractFeatures(
      trainItems,
      towers,
      { kind: "train", views: job.views, seed: job.augmentSeed, imageIds },
      {
        batchSize: job.batchSize,
        label: `${shardName(index, count)} training views`,
        progress: job.progress,
        segmentDir: join(dir, "partial", "train"),
        segmentKey: job.key,
        log: job.log,
      },
    );
    const evaluation = evalPaths.length === 0 ? undefined : await extractFeatures(
      evalPaths.map(item),
      towers,
      { kind: "eval" },
      {
        batchSize: job.batchSize,
        label: `${shardName(index, count)} test and validation images`,
        progress: job.progress,
        segmentDir: join(dir, "partial", "eval"),
        segmentKey: job.key,
        log: job.log,
      },
    );
    const dims = train?.dims ?? evaluation?.dims ?? [0, 0];
    const empty = (d: number) => npyArray("float32", [0, d], new Float32Array(0));
    const matrix = (data: Float32Array | undefined, rows: number, d: number): NpyArray =>
      data ? npyArray("float32", [rows, d], data) : empty(d);
    writeNpz(join(dir, "features.npz"), {
      train_clip: matrix(train?.features[0], train?.rows ?? 0, dims[0]),
      train_aux: matrix(train?.features[1], train?.rows ?? 0, dims[1]),
      eval_clip: matrix(evaluation?.features[0], evaluation?.rows ?? 0, dims[0]),
      eval_aux: matrix(evaluation?.features[1], evaluation?.rows ?? 0, dims[1]),
    });
    // Rows are view-major within the shard: row v * K + k is view v of kept entry k.
    const record: ShardIndex = {
      format: STORE_FORMAT,
      key: job.key,
      views: job.views,
      train: (train?.kept ?? []).map((k, i) => ({ ...trainEntries[k], row: i })),
      eval: (evaluation?.kept ?? []).map((k, i) => ({ path: evalPaths[k], row: i })),
      skipped: [...(train?.skipped ?? []), ...(evaluation?.skipped ?? [])].map((s) => ({
        path: relative(root, s.path),
        reason: s.reason,
      })),
    };
    writeFileAtomic(join(dir, "index.json"), JSON.stringify(record) + "\n");
    Deno.removeSync(join(dir, "partial"), { recursive: true });
    return trainItems.length * job.views + evalPaths.length;
  } finally {
    dispose();
  }
}

/** Writes the text weights (once per store). */
export function writeTextWeights(storeDir: string, key: string, weights: FeatureMatrix): void {
  writeNpz(join(storeDir, "text.npz"), {
    clip_weights: npyArray("float32", [weights.rows, weights.cols], weights.data),
    key: npyArray("uint8", [key.length], new TextEncoder().encode(key)),
  });
}

export function textWeightsDone(storeDir: string, key: string): boolean {
  const path = join(storeDir, "text.npz");
  if (!existsSync(path)) return false;
  try {
    const k = readNpz(path).get("key");
    return k !== undefined && new TextDecoder().decode(k.data as Uint8Array) === key;
  } catch {
    return false;
  }
}

/** Every shard of a store, read for lookups. */
export interface LoadedStore {
  clipWeights: FeatureMatrix;
  views: number;
  dims: [number, number];
  /** `path#occurrence` -> [shard, first row]. */
  train: Map<string, [number, number]>;
  /** path -> [shard, row]. */
  eval: Map<string, [number, number]>;
  /** Unreadable images by path, with the reason. */
  skipped: Map<string, string>;
  shards: {
    trainClip: Float32Array;
    trainAux: Float32Array;
    trainRows: number;
    evalClip: Float32Array;
    evalAux: Float32Array;
  }[];
}

/** Reads a complete store of `count` shards under `key`; names what is missing otherwise. */
export function loadStore(storeDir: string, key: string, count: number): LoadedStore {
  const missing = [...Array(count).keys()].filter((i) => !shardDone(storeDir, key, i, count));
  if (missing.length > 0) {
    throw new EngineError(
      `the feature store ${storeDir} lacks shard(s) ${missing.join(", ")} of ${count}: run ` +
        `the extraction stage first`,
    );
  }
  if (!textWeightsDone(storeDir, key)) {
    throw new EngineError(`the feature store ${storeDir} has no text weights for these settings`);
  }
  const text = npzGet(readNpz(join(storeDir, "text.npz")), "clip_weights");
  const clipWeights = featureMatrix(text.shape[0], text.shape[1], text.data as Float32Array);
  const store: LoadedStore = {
    clipWeights,
    views: 0,
    dims: [0, 0],
    train: new Map(),
    eval: new Map(),
    skipped: new Map(),
    shards: [],
  };
  for (let s = 0; s < count; s++) {
    const dir = join(storeDir, shardName(s, count));
    const index = JSON.parse(Deno.readTextFileSync(join(dir, "index.json"))) as ShardIndex;
    const arrays = readNpz(join(dir, "features.npz"));
    const get = (k: string) => npzGet(arrays, k, join(dir, "features.npz"));
    const trainClip = get("train_clip"), evalClip = get("eval_clip");
    store.views = index.views;
    for (const [t, a] of [[0, trainClip], [1, get("train_aux")]] as const) {
      if (a.shape[0] > 0) store.dims[t] = a.shape[1];
    }
    if (evalClip.shape[0] > 0) store.dims = [evalClip.shape[1], get("eval_aux").shape[1]];
    store.shards.push({
      trainClip: trainClip.data as Float32Array,
      trainAux: get("train_aux").data as Float32Array,
      trainRows: trainClip.shape[0],
      evalClip: evalClip.data as Float32Array,
      evalAux: get("eval_aux").data as Float32Array,
    });
    for (const e of index.train) store.train.set(`${e.path}#${e.occurrence}`, [s, e.row]);
    for (const e of index.eval) store.eval.set(e.path, [s, e.row]);
    for (const k of index.skipped) store.skipped.set(k.path, k.reason);
  }
  return store;
}

/** An image of a cell's lists that could not be read, and from which split. */
export interface SkippedSplitImage extends SkippedImage {
  readonly split: "train" | "test" | "val";
}

/** One cell's features from a loaded store: its few-shot list's views (view-major, unreadable
 * images left out, as extraction does), its test and validation images. `skipped` lists the
 * list's unreadable images. */
export function gatherFeatures(
  store: LoadedStore,
  root: string,
  lists: {
    train: readonly LabeledImage[];
    test: readonly LabeledImage[];
    val: readonly LabeledImage[];
  },
): {
  features: AmuFeatures;
  skipped: SkippedSplitImage[];
  trainKept: number[];
} {
  const abs = resolve(root);
  const [dc, da] = store.dims;
  const skipped: SkippedSplitImage[] = [];
  // Training entries present in the store, in list order (occurrences counted as in extraction).
  const seen = new Map<string, number>();
  const kept: { shard: number; row: number; label: number; index: number }[] = [];
  lists.train.forEach((it, index) => {
    const path = relative(abs, it.path);
    const occurrence = seen.get(path) ?? 0;
    seen.set(path, occurrence + 1);
    const at = store.train.get(`${path}#${occurrence}`);
    if (at) kept.push({ shard: at[0], row: at[1], label: it.label, index });
    else {
      const reason = store.skipped.get(path);
      if (reason === undefined) {
        throw new EngineError(`the feature store has no training views of ${path}`);
      }
      skipped.push({ split: "train", path: it.path, reason });
    }
  });
  const K = kept.length, V = store.views;
  const trainClip = new Float32Array(K * V * dc), trainAux = new Float32Array(K * V * da);
  const trainLabels = new Int32Array(K * V), trainImage = new Int32Array(K * V);
  for (let v = 0; v < V; v++) {
    kept.forEach((e, k) => {
      const shard = store.shards[e.shard];
      const K_s = shard.trainRows / V; // entries kept in that shard
      const src = v * K_s + e.row, dst = v * K + k;
      trainClip.set(shard.trainClip.subarray(src * dc, (src + 1) * dc), dst * dc);
      trainAux.set(shard.trainAux.subarray(src * da, (src + 1) * da), dst * da);
      trainLabels[dst] = e.label;
      trainImage[dst] = k;
    });
  }
  const evalRows = (split: "test" | "val", list: readonly LabeledImage[]) => {
    const rows: { shard: number; row: number; label: number }[] = [];
    for (const it of list) {
      const path = relative(abs, it.path);
      const at = store.eval.get(path);
      if (at) rows.push({ shard: at[0], row: at[1], label: it.label });
      else {
        const reason = store.skipped.get(path);
        if (reason === undefined) throw new EngineError(`the feature store has no view of ${path}`);
        skipped.push({ split, path: it.path, reason });
      }
    }
    const clip = new Float32Array(rows.length * dc), aux = new Float32Array(rows.length * da);
    const labels = new Int32Array(rows.length);
    rows.forEach((r, i) => {
      const shard = store.shards[r.shard];
      clip.set(shard.evalClip.subarray(r.row * dc, (r.row + 1) * dc), i * dc);
      aux.set(shard.evalAux.subarray(r.row * da, (r.row + 1) * da), i * da);
      labels[i] = r.label;
    });
    return {
      clip: featureMatrix(rows.length, dc, clip),
      aux: featureMatrix(rows.length, da, aux),
      labels,
    };
  };
  const test = evalRows("test", lists.test);
  const val = lists.val.length > 0 ? evalRows("val", lists.val) : undefined;
  const features: AmuFeatures = {
    trainClip: featureMatrix(K * V, dc, trainClip),
    trainAux: featureMatrix(K * V, da, trainAux),
    trainLabels,
    testClip: test.clip,
    testAux: test.aux,
    testLabels: test.labels,
    clipWeights: store.clipWeights,
    ...(val ? { valClip: val.clip, valAux: val.aux, valLabels: val.labels } : {}),
    trainImage,
  };
  return { features, skipped, trainKept: kept.map((e) => e.index) };
}
