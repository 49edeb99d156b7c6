/** One AMU-Tuning experiment end to end, in phases: open the run folder (src/amu's `RunDir`:
 * fresh, interrupted -> resumed, finished), read a replayed batch order, say the adapter and
 * settings, gather the features (a sweep's, a feature cache, or extracted from the dataset's
 * seeded few-shot sample), record experiment.json, run the method (`trainAmu` or a baseline) and
 * sum up. Everything printed also goes to the run's train.log. */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import { readNpy } from "../../src/util/npy.ts";
import { getGpu, type Gpu } from "../../src/gpu/mod.ts";
import { type AmuFeatures, validateFeatures } from "../../src/models/features.ts";
import { type AmuConfig, amuConfig, configToJson } from "../../src/amu/config.ts";
import type { AmuMetrics } from "../../src/amu/metrics.ts";
import { chosenText, type MethodResult } from "../../src/amu/method.ts";
import { orderFromNpy } from "../../src/amu/order.ts";
import {
  CannotResumeError,
  RunDir,
  type RunFolderLayout,
  type RunState,
} from "../../src/amu/run_dir.ts";
import { trainAmu, type TrainResult } from "../../src/amu/train.ts";
import { findBpeFile } from "../../src/data/assets.ts";
import { type FeatureCacheManifest, readFeatureCache } from "../../src/data/feature_cache.ts";
import {
  buildFeatures,
  type FeatureJob,
  type FeaturePipelineResult,
  type ReuseMode,
  type SkippedRecord,
} from "../../src/data/feature_pipeline.ts";
import { FileHashes } from "../../src/data/file_hashes.ts";
import type { ProgressOptions } from "../../src/data/progress.ts";
import { type DataPlan, prepareData } from "./data_plan.ts";
import { DEMO_NOTE, ensureDemoAssets } from "./demo.ts";
import { type Encoders, prepareEncoders } from "./encoders.ts";
import { runBaseline } from "./methods.ts";
import { type ModelPaths, resolveModelPaths } from "./models.ts";
import {
  fewShotRecord,
  RESULT_FILES,
  skippedText,
  writeJson,
  writeMetricViews,
} from "./results.ts";
import type { ExperimentSettings } from "./settings.ts";
import { printSettings, resolvedSettings, shortPath } from "./settings_report.ts";

export interface ExperimentIo {
  /** Where lines go besides train.log (default console.log). */
  print?: (line: string) => void;
  /** Progress lines of feature extraction (default: stderr; false: none). */
  progress?: ProgressOptions | false;
  /** Parent of feature caches, demo assets and the model hash memo (default results/cache). */
  cacheRoot?: string;
  /** Folder of conventionally named models (default the repository's weights/). */
  weightsDir?: string;
  gpu?: Gpu;
  /** Stop training after this many epochs in total (tests of resuming). */
  stopAfterEpochs?: number;
  /** Features already gathered (a sweep cell's, from the shared store) for the dataset plan
   * `data`: no encoder is loaded and no image decoded. */
  preloaded?: PreloadedFeatures;
}

export interface PreloadedFeatures {
  features: AmuFeatures;
  manifest: FeatureCacheManifest;
  /** Where they came from, for messages and experiment.json. */
  source: string;
  data: DataPlan;
  skipped: SkippedRecord[];
}

export interface ExperimentOutcome {
  outDir: string;
  /** AMU's training result (AMU runs only). */
  result?: TrainResult;
  /** The method's record, as metrics.json holds it. */
  metrics: MethodResult | AmuMetrics;
  features: AmuFeatures;
  /** Where each feature part came from ("cache", "extracted", a sibling cache), if extracted. */
  sources?: FeaturePipelineResult["sources"];
  skipped: SkippedRecord[];
  resumed: boolean;
  cacheDir: string;
}

/** Says a line: printed, and appended to the run's train.log once it is started. */
type Say = (line: string) => void;

/** The command whose run folders these are, as experiment.json records it. */
const TRAIN_COMMAND = "deno task train";

/** An experiment's run folder as the trainer's RunDir sees it: the experiment's own files beside
 * the trainer's, with experiment.json (written first by every run) marking the folder as a run's. */
const EXPERIMENT_FOLDER: RunFolderLayout = {
  command: TRAIN_COMMAND,
  files: Object.values(RESULT_FILES),
  marker: RESULT_FILES.experiment,
};

function commandLine(s: ExperimentSettings): string {
  return [TRAIN_COMMAND, ...s.argv].join(" ");
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.\-]/g, "_");
}

/** Runs one experiment. A run that fails after its log was started ends its train.log with the
 * error that ended it. */
export async function runExperiment(
  s: ExperimentSettings,
  io: ExperimentIo = {},
): Promise<ExperimentOutcome> {
  const started = performance.now();
  checkContradictions(s);
  const folder = openRunFolder(s);
  try {
    return await experiment(s, io, folder, started);
  } catch (e) {
    folder.run.log.appendError(e);
    throw e;
  }
}

/** The experiment once its run folder is open: settings said, features gathered, the method
 * run, the results written and summed up. */
async function experiment(
  s: ExperimentSettings,
  io: ExperimentIo,
  folder: OpenedFolder,
  started: number,
): Promise<ExperimentOutcome> {
  const print = io.print ?? console.log;
  const say = (line: string) => {
    print(line);
    folder.run.log.append(line);
  };
  const replay = readReplayOrder(s);
  const gpu = io.gpu ?? await getGpu();
  announceRun(s, folder, gpu, say);
  const gathered = await gatherFeatures(s, io, gpu, replay, say);
  writeExperimentRecord(s, gathered, gpu);
  const method: MethodRun = { s, io, gathered, gpu, replay, folder, started, print, say };
  if (s.method !== "amu") return await finishBaseline(method);
  const result = await trainOnFeatures(method);
  summarizeTraining(method, result);
  return {
    outDir: s.outDir,
    result,
    metrics: result.metrics,
    features: gathered.features,
    sources: gathered.pipeline?.sources,
    skipped: gathered.pipeline?.skipped ?? [],
    resumed: folder.resume,
    cacheDir: gathered.cacheDir,
  };
}

function checkContradictions(s: ExperimentSettings): void {
  if (s.resume && s.overwrite) throw new EngineError("--resume and --overwrite contradict");
  if (s.freshFeatures && (s.loadPreFeat || s.loadAuxWeight)) {
    throw new EngineError("--fresh_features contradicts --load_pre_feat / --load_aux_weight");
  }
}

/** The run folder, opened for this run. */
interface OpenedFolder {
  run: RunDir;
  /** What the folder held (after --overwrite or a replaced demo run: fresh). */
  state: RunState;
  /** Whether the run continues one in the folder. */
  resume: boolean;
  /** A finished demo run was replaced. */
  replacedDemo: boolean;
}

/** The run folder: fresh, an interrupted run to resume, or a finished one; never a folder of
 * someone else's files that happen to share a run file's name. Marks the folder as a run's and
 * starts its train.log (a resumed run's log goes on). */
function openRunFolder(s: ExperimentSettings): OpenedFolder {
  const run = new RunDir(s.outDir, EXPERIMENT_FOLDER);
  run.checkNotForeign();
  let state = run.state();
  if (s.overwrite && state.kind !== "fresh") {
    run.clear();
    state = { kind: "fresh" };
  }
  let replacedDemo = false;
  if (state.kind === "finished") {
    if (s.mode === "demo" && !s.resume) {
      run.clear();
      state = { kind: "fresh" };
      replacedDemo = true;
    } else if (!s.resume) {
      throw new EngineError(
        `${s.outDir} already holds a finished run (${state.result}); choose another ` +
          `--exp_name, or pass --overwrite to replace it`,
      );
    }
  }
  // A baseline has no checkpoints to resume from (and takes seconds): an interrupted one runs
  // again from the start.
  if (s.method !== "amu" && state.kind === "unfinished") {
    run.clear();
    state = { kind: "fresh" };
  }
  const resume = s.resume || state.kind !== "fresh";
  if (state.kind === "unfinished" && !s.orderPath) run.checkSameSettings(s.amu);
  // Replaced by the full record once the features are known.
  run.markStarted({
    command: commandLine(s),
    written: new Date().toISOString(),
    mode: s.mode,
    status: "started",
  });
  if (!resume) run.log.restart();
  return { run, state, resume, replacedDemo };
}

/** The training config, and the batch order --order replays (with its epoch count). */
interface ReplayOrder {
  config: AmuConfig;
  order?: Int32Array;
}

/** A replayed batch order is read and checked before any feature work (extraction can take
 * hours; a bad --order must not wait for it). */
function readReplayOrder(s: ExperimentSettings): ReplayOrder {
  if (!s.orderPath) return { config: s.amu };
  const o = orderFromNpy(readNpy(s.orderPath), s.orderPath);
  if (s.values.has("train_epoch") && o.epochs !== s.amu.epochs) {
    throw new EngineError(
      `${s.orderPath} holds ${o.epochs} epochs of batches, --train_epoch is ${s.amu.epochs}`,
    );
  }
  return { config: amuConfig({ ...s.amu, epochs: o.epochs }), order: o.order };
}

function announceRun(s: ExperimentSettings, folder: OpenedFolder, gpu: Gpu, say: Say): void {
  const where = shortPath(s.outDir);
  say(`adapter: ${gpu.describe()}`);
  if (s.mode === "demo") say(DEMO_NOTE);
  if (folder.replacedDemo) say(`replacing the previous demo run in ${where}`);
  if (folder.state.kind === "unfinished") {
    say(
      `resuming the interrupted run in ${where} (${folder.state.epochs} of ` +
        `${s.amu.epochs} epochs done; --overwrite starts over)`,
    );
  }
  if (folder.state.kind === "finished" && s.resume) say(`${where}: the run is already complete`);
}

/** A run's features and where they came from. */
interface GatheredFeatures {
  features: AmuFeatures;
  manifest: FeatureCacheManifest;
  cacheDir: string;
  /** The dataset plan (not when training from a feature cache). */
  data?: DataPlan;
  /** The extraction's result (features from images only). */
  pipeline?: FeaturePipelineResult;
}

/** Features: gathered for this run already (a sweep's), from a cache directory, or from
 * images. */
async function gatherFeatures(
  s: ExperimentSettings,
  io: ExperimentIo,
  gpu: Gpu,
  replay: ReplayOrder,
  say: Say,
): Promise<GatheredFeatures> {
  if (io.preloaded) return preloadedFeatures(s, io.preloaded, say);
  if (s.mode === "features") return cachedFeatures(s, say);
  return await featuresFromImages(s, io, gpu, replay, say);
}

function preloadedFeatures(
  s: ExperimentSettings,
  pre: PreloadedFeatures,
  say: Say,
): GatheredFeatures {
  validateFeatures(pre.features, pre.source);
  const { features, manifest, data } = pre;
  const cacheDir = pre.source;
  printSettings(say, s, resolvedSettings(s), cacheDir);
  say(`features: gathered from ${shortPath(cacheDir)} (no image encoded for this run)`);
  reportSkipped(say, pre.skipped, s.outDir);
  writeFewShot(s, data, data.datasetLabel, pre.skipped);
  return { features, manifest, cacheDir, data };
}

function cachedFeatures(s: ExperimentSettings, say: Say): GatheredFeatures {
  const cacheDir = resolve(s.featuresDir!);
  printSettings(say, s, resolvedSettings(s), cacheDir);
  const { features, manifest, warnings } = readFeatureCache(cacheDir);
  for (const w of warnings) say(w);
  say(
    `features: ${shortPath(cacheDir)} (dataset ${manifest.dataset ?? "?"}, shots ` +
      `${manifest.shots ?? "?"}, ${manifest.class_names?.length ?? "?"} classes)`,
  );
  return { features, manifest, cacheDir };
}

/** The models and dataset of a run on images: the demo's generated ones, or the user's. */
interface ImageSources {
  models: ModelPaths;
  data: DataPlan;
  /** The dataset as cache names and few_shot.json record it ("demo" for the demo). */
  datasetLabel: string;
  bpePath?: string;
}

async function imageSources(
  s: ExperimentSettings,
  io: ExperimentIo,
  cacheRoot: string,
  say: Say,
): Promise<ImageSources> {
  if (s.mode !== "demo") {
    const models = await resolveModelPaths(s.models, { weightsDir: io.weightsDir, log: say });
    const bpePath = findBpeFile(s.models.bpe);
    const data = prepareData(s, s.root!, s.dataset);
    return { models, data, datasetLabel: data.datasetLabel, bpePath };
  }
  const assets = ensureDemoAssets(join(cacheRoot, "demo-assets"), say);
  const models = {
    clipVisual: assets.clipVisual,
    clipText: assets.clipText,
    aux: assets.aux,
    tag: "demo",
  };
  const data = prepareData(s, assets.imageRoot, "imagefolder");
  let bpePath: string | undefined;
  try {
    bpePath = findBpeFile();
  } catch {
    bpePath = undefined;
  }
  return { models, data, datasetLabel: "demo", bpePath };
}

/** Features extracted from the run's images, or reused from its feature cache. */
async function featuresFromImages(
  s: ExperimentSettings,
  io: ExperimentIo,
  gpu: Gpu,
  replay: ReplayOrder,
  say: Say,
): Promise<GatheredFeatures> {
  const cacheRoot = resolve(io.cacheRoot ?? "results/cache");
  const hashes = new FileHashes(join(cacheRoot, "file_hashes.json"));
  const { models, data, datasetLabel, bpePath } = await imageSources(s, io, cacheRoot, say);
  const cacheDir = s.cacheDir
    ? resolve(s.cacheDir)
    : defaultCacheDir(s, cacheRoot, datasetLabel, models);
  printSettings(say, s, resolvedSettings(s), cacheDir, models, data, bpePath);
  for (const w of data.warnings) say(w);
  checkOrderFits(s, replay, data);
  const rows = data.train.length * s.augmentEpoch + data.dataset.test.length +
    data.dataset.val.length;
  const encoders = await prepareEncoders(s, models, bpePath, hashes, gpu, say, rows);
  const mode = (require: boolean): ReuseMode =>
    s.freshFeatures ? "never" : require ? "require" : "auto";
  const pipeline = await buildFeatures(featureJob(s, data, datasetLabel, encoders), {
    cacheDir,
    train: mode(s.loadAuxWeight),
    test: mode(s.loadPreFeat),
    batchSize: s.valBatchSize,
    log: say,
    progress: io.progress,
    hashes,
  });
  reportSkipped(say, pipeline.skipped, s.outDir);
  writeFewShot(s, data, datasetLabel, pipeline.skipped);
  return { features: pipeline.features, manifest: pipeline.manifest, cacheDir, data, pipeline };
}

/** results/cache/<dataset>-<model>-<shots>shot-seed<rand_seed>-aug<augment_epoch>/ */
function defaultCacheDir(
  s: ExperimentSettings,
  cacheRoot: string,
  datasetLabel: string,
  models: ModelPaths,
): string {
  return join(
    cacheRoot,
    safeName(
      `${datasetLabel}-${models.tag}-${s.fewshotFile ? "list" : `${s.shots}shot`}-seed` +
        `${s.amu.seed}-aug${s.augmentEpoch}`,
    ),
  );
}

/** What the feature pipeline extracts for this run: its few-shot list (the views of each), the
 * test and validation images, the prompts, and the encoders. */
function featureJob(
  s: ExperimentSettings,
  data: DataPlan,
  datasetLabel: string,
  encoders: Encoders,
): FeatureJob {
  return {
    dataset: datasetLabel,
    root: data.root,
    classnames: data.dataset.classnames,
    templates: data.templates,
    train: data.train,
    test: data.dataset.test,
    val: data.dataset.val,
    shots: s.fewshotFile ? null : s.shots,
    seed: s.fewshotFile ? null : s.amu.seed,
    augmentSeed: s.augmentSeed,
    views: s.augmentEpoch,
    clip: encoders.clip,
    aux: encoders.aux,
    text: encoders.text,
  };
}

/** A replayed order must not name more training rows than the run can have: rows are images x
 * views, and unreadable images found later only lower the count. */
function checkOrderFits(s: ExperimentSettings, replay: ReplayOrder, data: DataPlan): void {
  if (!replay.order) return;
  const rows = replay.order.length / replay.config.epochs;
  const most = data.train.length * s.augmentEpoch;
  if (rows > most) {
    throw new EngineError(
      `${s.orderPath} orders ${rows} training rows per epoch, but this run has at most ` +
        `${data.train.length} images x ${s.augmentEpoch} view(s) = ${most}`,
    );
  }
}

function writeFewShot(
  s: ExperimentSettings,
  data: DataPlan,
  datasetLabel: string,
  skipped: SkippedRecord[],
): void {
  writeJson(
    join(s.outDir, RESULT_FILES.fewShot),
    fewShotRecord(
      datasetLabel,
      data.root,
      s.shots,
      s.amu.seed,
      data.sampling,
      data.dataset.classnames,
      data.train,
      skipped,
    ),
  );
}

/** experiment.json: every resolved setting, the dataset, models, feature cache and adapter. */
function writeExperimentRecord(s: ExperimentSettings, g: GatheredFeatures, gpu: Gpu): void {
  const { features, manifest, data, pipeline } = g;
  writeJson(join(s.outDir, RESULT_FILES.experiment), {
    command: commandLine(s),
    written: new Date().toISOString(),
    mode: s.mode,
    settings: resolvedSettings(s),
    sources: Object.fromEntries(s.sources),
    config_file: s.configFile ? resolve(s.configFile) : null,
    training: configToJson(s.amu),
    dataset: {
      name: manifest.dataset,
      root_path: data?.root ?? manifest.root_path ?? null,
      classes: features.clipWeights.cols,
      class_names: manifest.class_names,
      templates: data?.templates ?? manifest.templates ?? null,
      train_rows: features.trainAux.rows,
      test_rows: features.testAux.rows,
      augment_views: manifest.augment_views,
      skipped_images: pipeline?.skipped.length ?? manifest.skipped_images ?? 0,
    },
    models: manifest.encoders,
    preprocessing: manifest.preprocessing ?? null,
    feature_cache: g.cacheDir,
    feature_sources: pipeline?.sources ?? { all: "cache" },
    adapter: gpu.describe(),
  });
}

/** What the method phases share: the settings, the gathered features, the folder. */
interface MethodRun {
  s: ExperimentSettings;
  io: ExperimentIo;
  gathered: GatheredFeatures;
  gpu: Gpu;
  replay: ReplayOrder;
  folder: OpenedFolder;
  /** When the experiment started (performance.now()). */
  started: number;
  /** Where lines go besides train.log (`say`: to both). */
  print: Say;
  say: Say;
}

/** AMU's training in the run folder (resuming an interrupted run), with the metric views
 * rewritten after every epoch. The trainer's lines go to `print` and, through the folder, to
 * train.log. */
async function trainOnFeatures(r: MethodRun): Promise<TrainResult> {
  const { s, gathered, folder, say } = r;
  const outDir = s.outDir;
  const title = s.mode === "demo"
    ? `AMU-Tuning demo (untrained models), ${gathered.manifest.shots}-shot`
    : `AMU-Tuning: ${gathered.manifest.dataset}, ${gathered.manifest.shots ?? "?"}-shot`;
  let result: TrainResult;
  try {
    result = await trainAmu(r.replay.config, gathered.features, {
      gpu: r.gpu,
      outDir: folder.run,
      order: r.replay.order,
      resume: folder.resume,
      log: r.print,
      featuresSource: gathered.cacheDir,
      stopAfterEpochs: r.io.stopAfterEpochs,
      progressSteps: s.progressEvery > 0 ? s.progressEvery : undefined,
      onProgress: s.progressEvery > 0
        ? (p) => say(`  epoch ${p.epoch} iter ${p.iter}/${p.iters}  loss ${p.meanLoss.toFixed(4)}`)
        : undefined,
      onEpoch: (_, metrics) => writeMetricViews(outDir, metrics, title),
    });
  } catch (e) {
    if (e instanceof CannotResumeError) {
      throw new CannotResumeError(
        `${e.message}\n  (pass --overwrite to start a new run there, or choose another --exp_name)`,
      );
    }
    throw e;
  }
  writeMetricViews(outDir, result.metrics, title);
  return result;
}

/** The summary lines of an AMU run: accuracies, skipped images, where the results are. */
function summarizeTraining(r: MethodRun, result: TrainResult): void {
  const { s, say } = r;
  const m = result.metrics;
  const last = m.epochs[m.epochs.length - 1];
  say(
    `summary: zero-shot CLIP ${m.zero_shot_acc.toFixed(2)}%, best AMU ${
      m.best.test_acc.toFixed(2)
    }% at epoch ${m.best.epoch}` +
      (last
        ? `, final ${last.test_acc.toFixed(2)}% (aux branch ${last.aux_acc.toFixed(2)}%)`
        : "") +
      ` after ${((performance.now() - r.started) / 1000).toFixed(1)} s`,
  );
  const skipped = r.gathered.pipeline?.skipped ?? [];
  if (skipped.length) {
    say(
      `note: ${skipped.length} unreadable image(s) were skipped (listed in ` +
        `${shortPath(join(s.outDir, RESULT_FILES.skipped))})`,
    );
  }
  say(
    `results: ${shortPath(s.outDir)}/ (metrics.json, metrics.csv, accuracy.svg, ` +
      `checkpoint_best.npz, experiment.json, few_shot.json, train.log)`,
  );
  if (s.mode === "demo") {
    say(
      "reminder: the demo's models are untrained; these accuracies only show the pipeline working",
    );
  }
}

/** A baseline's run: the method on the features, its result said and written. */
async function finishBaseline(r: MethodRun): Promise<ExperimentOutcome> {
  const { s, gathered, say } = r;
  const result = await runBaseline(s, gathered.features, s.outDir, {
    gpu: r.gpu,
    order: r.replay.order && { order: r.replay.order, epochs: r.replay.config.epochs },
    log: say,
  });
  for (const e of result.epochs ?? []) {
    say(
      `epoch ${e.epoch}  train loss ${e.train_loss.toFixed(4)}  test acc ${e.test_acc.toFixed(2)}%`,
    );
  }
  const test_acc = result.final.test_acc;
  const chose = chosenText(result.final);
  say(
    `summary: zero-shot CLIP ${result.zero_shot_acc.toFixed(2)}%, ${s.method} ` +
      `${test_acc.toFixed(2)}%${chose ? ` (${chose}` : ""}` +
      `${result.search_split ? `${chose ? "; " : " ("}searched on ${result.search_split}` : ""}` +
      `${chose || result.search_split ? ")" : ""} after ` +
      `${((performance.now() - r.started) / 1000).toFixed(1)} s`,
  );
  say(
    `results: ${shortPath(s.outDir)}/ (metrics.json, experiment.json, few_shot.json, train.log)`,
  );
  return {
    outDir: s.outDir,
    metrics: result,
    features: gathered.features,
    sources: gathered.pipeline?.sources,
    skipped: gathered.pipeline?.skipped ?? [],
    resumed: r.folder.resume,
    cacheDir: gathered.cacheDir,
  };
}

function reportSkipped(
  say: (line: string) => void,
  skipped: readonly SkippedRecord[],
  outDir: string,
): void {
  const path = join(outDir, RESULT_FILES.skipped);
  if (skipped.length === 0) {
    if (existsSync(path)) Deno.removeSync(path);
    return;
  }
  Deno.writeTextFileSync(path, skippedText(skipped));
  say(`skipped ${skipped.length} unreadable image(s) (also in ${shortPath(path)}):`);
  const shown = 20;
  for (const x of skipped.slice(0, shown)) say(`  [${x.split}] ${x.path}: ${x.reason}`);
  if (skipped.length > shown) say(`  ... and ${skipped.length - shown} more`);
}
