/** The stages of a sweep, each runnable on its own (a Slurm array task) or one after another
 * (the local runner):
 *   extract  shard I of N of every dataset's shared feature store (shard 0 also the text weights)
 *   cell     one (dataset, shots, seed, method): its features gathered from the store, then the
 *            method, in a run folder like `deno task train`'s
 *   report   the table and figure (report.ts)
 * A finished cell (metrics.json with `final`) is skipped; a failed one leaves failed.json. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import { getGpu, type Gpu } from "../../src/gpu/mod.ts";
import { findBpeFile } from "../../src/data/assets.ts";
import { FileHashes } from "../../src/data/file_hashes.ts";
import { EXTRACTION_VERSION, TEST_VIEW, TRAIN_VIEWS } from "../../src/data/feature_pipeline.ts";
import type { FeatureCacheManifest } from "../../src/data/feature_cache.ts";
import {
  extractShard,
  gatherFeatures,
  type LoadedStore,
  loadStore,
  STORE_FORMAT,
  storeContents,
  textWeightsDone,
  writeTextWeights,
} from "../../src/data/feature_store.ts";
import { writeFileAtomic } from "../../src/util/npy.ts";
import type { ProgressOptions } from "../../src/data/progress.ts";
import { encodeClassWeights } from "../../src/data/text_features.ts";
import { type Encoders, prepareEncoders } from "../train/encoders.ts";
import { type DataPlan, prepareData } from "../train/data_plan.ts";
import { runExperiment } from "../train/experiment.ts";
import { resolveModelPaths } from "../train/models.ts";
import type { ExperimentSettings } from "../train/settings.ts";
import { type Cell, cellLabel, type Grid, type GridDataset } from "./grid.ts";

export interface StageIo {
  print: (line: string) => void;
  progress?: ProgressOptions | false;
  gpu?: Gpu;
  /** The model hash memo's folder (default results/cache). */
  cacheRoot?: string;
  /** Stores already set up in this process, by dataset (the local runner runs every stage in
   * one process: the dataset is listed and the models hashed once, not once per cell). */
  stores?: Map<GridDataset, DatasetStore>;
}

/** `--bpe none`: the demo's byte tokenizer instead of CLIP's BPE. */
export const BYTE_TOKENIZER = "none";

/** One dataset's store: where, under which key, with what, from which encoders. */
export interface DatasetStore {
  dir: string;
  key: string;
  encoders: Encoders;
  /** Data plans of the dataset's few-shot lists, by "shots/seed". */
  plans: Map<string, DataPlan>;
  base: ExperimentSettings;
  /** The complete store read for gathering (once per process, after extraction). */
  loaded?: LoadedStore;
}

const planKey = (shots: number, seed: number) => `${shots}/${seed}`;

async function datasetStore(
  grid: Grid,
  dataset: GridDataset,
  gpu: Gpu,
  io: StageIo,
): Promise<DatasetStore> {
  const known = io.stores?.get(dataset);
  if (known) return known;
  const cells = grid.cells.filter((c) => c.dataset === dataset);
  const base = cells[0].settings;
  // One listing of the dataset; each (shots, seed) samples its list from it.
  const first = prepareData(base, dataset.root, dataset.name);
  const plans = new Map<string, DataPlan>();
  for (const c of cells) {
    const k = planKey(c.shots, c.seed);
    if (!plans.has(k)) {
      plans.set(k, prepareData(c.settings, dataset.root, dataset.name, first.dataset));
    }
  }
  const models = await resolveModelPaths(base.models, { log: io.print });
  const bpe = base.models.bpe === BYTE_TOKENIZER ? undefined : findBpeFile(base.models.bpe);
  const hashes = new FileHashes(join(io.cacheRoot ?? "results/cache", "file_hashes.json"));
  const any = [...plans.values()][0];
  const rows = any.dataset.test.length + any.dataset.val.length +
    [...plans.values()].reduce((n, p) => n + p.train.length, 0) * base.augmentEpoch;
  const encoders = await prepareEncoders(base, models, bpe, hashes, gpu, io.print, rows);
  // Everything a stored row depends on besides the image itself.
  const identity = {
    format: STORE_FORMAT,
    extraction_version: EXTRACTION_VERSION,
    clip_visual: encoders.files.clip.sha256,
    clip_size: encoders.clip.sizeOverride,
    clip_normalization: encoders.clip.normalization,
    aux: encoders.files.aux.sha256,
    aux_size: encoders.aux.sizeOverride,
    aux_normalization: encoders.aux.normalization,
    views: base.augmentEpoch,
    augment_seed: base.augmentSeed,
    train_views: TRAIN_VIEWS,
    test_view: TEST_VIEW,
    clip_text: encoders.files.text.sha256,
    tokenizer: encoders.text.tokenizerId,
    classes: any.dataset.classnames,
    templates: any.templates,
  };
  const key = await sha256Hex(JSON.stringify(identity));
  const dir = join(grid.dir, "features", dataset.label, key.slice(0, 16));
  Deno.mkdirSync(dir, { recursive: true });
  const storeJson = join(dir, "store.json");
  if (!existsSync(storeJson)) {
    writeFileAtomic(storeJson, JSON.stringify({ ...identity, key }, null, 2) + "\n");
  }
  const store = { dir, key, encoders, plans, base };
  io.stores?.set(dataset, store);
  return store;
}

async function sha256Hex(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Extracts shard `index` of `count` of every dataset's store (and shard 0 the text weights).
 * Returns the views encoded, and how many the grid's cells would encode extracting on their own
 * (each its training views, test and validation images): what the shared store saves. */
export async function extractStage(
  grid: Grid,
  shard: { index: number; count: number },
  io: StageIo,
): Promise<{ encoded: number; separately: number }> {
  if (shard.count !== grid.shards) {
    throw new EngineError(
      `--shard ${shard.index}/${shard.count}: the grid ${grid.file} has shards: ${grid.shards}`,
    );
  }
  const gpu = io.gpu ?? await getGpu();
  let encoded = 0, separately = 0;
  for (const dataset of grid.datasets) {
    const store = await datasetStore(grid, dataset, gpu, io);
    const plans = [...store.plans.values()];
    const any = plans[0];
    for (const c of grid.cells.filter((c) => c.dataset === dataset)) {
      const p = store.plans.get(planKey(c.shots, c.seed))!;
      separately += p.train.length * store.base.augmentEpoch + p.dataset.test.length +
        p.dataset.val.length;
    }
    const contents = storeContents(
      dataset.root,
      plans.map((p) => p.train),
      [any.dataset.test, any.dataset.val],
    );
    encoded += await extractShard({
      storeDir: store.dir,
      key: store.key,
      contents,
      shard,
      views: store.base.augmentEpoch,
      augmentSeed: store.base.augmentSeed,
      batchSize: store.base.valBatchSize,
      log: io.print,
      progress: io.progress,
      towers: async () => {
        const clip = await store.encoders.clip.load();
        try {
          const aux = await store.encoders.aux.load();
          return {
            towers: [clip, aux],
            dispose: () => {
              aux.dispose();
              clip.dispose();
            },
          };
        } catch (e) {
          clip.dispose();
          throw e;
        }
      },
    });
    if (shard.index === 0 && !textWeightsDone(store.dir, store.key)) {
      const text = await store.encoders.text.load();
      try {
        const weights = await encodeClassWeights(
          text.encode,
          text.tokenizer,
          any.dataset.classnames,
          any.templates,
          { contextLength: text.contextLength, batchSize: store.base.valBatchSize },
        );
        writeTextWeights(store.dir, store.key, weights);
      } finally {
        text.dispose();
      }
    }
  }
  return { encoded, separately };
}

export const FAILED_FILE = "failed.json";

/** Whether a cell's run is complete (metrics.json with its `final` result). */
export function cellDone(cell: Cell): boolean {
  try {
    const m = JSON.parse(Deno.readTextFileSync(join(cell.dir, "metrics.json")));
    return typeof m?.final?.test_acc === "number";
  } catch {
    return false;
  }
}

/** Runs one cell from the store (skipped when done). Records a failure in failed.json before
 * rethrowing it. Returns whether it ran. */
export async function cellStage(grid: Grid, cell: Cell, io: StageIo): Promise<boolean> {
  if (cellDone(cell)) return false;
  const failedPath = join(cell.dir, FAILED_FILE);
  try {
    const gpu = io.gpu ?? await getGpu();
    const store = await datasetStore(grid, cell.dataset, gpu, io);
    const data = store.plans.get(planKey(cell.shots, cell.seed))!;
    store.loaded ??= loadStore(store.dir, store.key, grid.shards);
    const loaded = store.loaded;
    const gathered = gatherFeatures(loaded, cell.dataset.root, {
      train: data.train,
      test: data.dataset.test,
      val: data.dataset.val,
    });
    const manifest: FeatureCacheManifest = {
      format: "amu-feature-cache",
      version: 1,
      dataset: data.datasetLabel,
      split: { train: `train (${cell.shots}-shot sample, seed ${cell.seed})`, test: "test" },
      shots: cell.shots,
      seed: cell.seed,
      augment_views: store.base.augmentEpoch,
      class_names: [...data.dataset.classnames],
      encoders: [store.encoders.files.clip, store.encoders.files.text, store.encoders.files.aux],
      templates: [...data.templates],
      skipped_images: gathered.skipped.length,
      feature_store: store.dir,
    };
    if (existsSync(failedPath)) Deno.removeSync(failedPath);
    await runExperiment(cell.settings, {
      print: io.print,
      progress: io.progress,
      gpu,
      preloaded: {
        features: gathered.features,
        manifest,
        source: store.dir,
        data,
        skipped: gathered.skipped,
      },
    });
    return true;
  } catch (e) {
    Deno.mkdirSync(cell.dir, { recursive: true });
    writeFileAtomic(
      failedPath,
      JSON.stringify(
        { cell: cellLabel(cell), error: (e as Error).message, at: new Date().toISOString() },
        null,
        2,
      ) + "\n",
    );
    throw e;
  }
}
