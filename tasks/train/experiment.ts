/** One AMU-Tuning experiment end to end: the run directory's state (fresh, interrupted ->
 * resumed, finished), the adapter and settings, the dataset and its seeded few-shot sample, the
 * models, features (from the cache or extracted on the GPU), zero-shot weights from prompts,
 * training (src/amu's `trainAmu`), and the result files. Everything printed also goes to the
 * run's train.log. */
import { FileHashes } from "../../src/data/file_hashes.ts";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import { getGpu, type Gpu } from "../../src/gpu/mod.ts";
import { type AmuConfig, configToJson } from "../../src/amu/config.ts";
import { RUN_FILES, runFile } from "../../src/amu/checkpoint.ts";
import type { AmuMetrics } from "../../src/amu/metrics.ts";
import { chosenText, type MethodResult } from "../../src/amu/method.ts";
import { runBaseline } from "./methods.ts";
import { orderFromNpy } from "../../src/amu/order.ts";
import { trainAmu, type TrainResult } from "../../src/amu/train.ts";
import { amuConfig } from "../../src/amu/config.ts";
import { findBpeFile } from "../../src/data/assets.ts";
import {
  type Dataset,
  IMAGE_TYPES,
  type LabeledImage,
  loadDataset,
  loadImageFolder,
  sampleFewShot,
} from "../../src/data/datasets.ts";
import { type AmuFeatures, validateFeatures } from "../../src/models/features.ts";
import { type FeatureCacheManifest, readFeatureCache } from "../../src/data/feature_cache.ts";
import {
  buildFeatures,
  type FeaturePipelineResult,
  type ReuseMode,
  type SkippedRecord,
} from "../../src/data/feature_pipeline.ts";
import { readNpy } from "../../src/util/npy.ts";
import type { ProgressOptions } from "../../src/data/progress.ts";
import { templatesFor } from "../../src/data/prompts.ts";
import { seededRandom } from "../../src/util/random.ts";
import { DEMO_NOTE, ensureDemoAssets } from "./demo.ts";
import { prepareEncoders } from "./encoders.ts";
import { type ModelPaths, resolveModelPaths } from "./models.ts";
import {
  fewShotRecord,
  readFewShotFile,
  RESULT_FILES,
  skippedText,
  writeJson,
  writeMetricViews,
} from "./results.ts";
import type { ExperimentSettings } from "./settings.ts";

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

type RunState = { kind: "fresh" } | { kind: "unfinished"; epochs: number } | {
  kind: "finished";
  /** Its result in words, e.g. "best test accuracy 63.10% at epoch 7". */
  result: string;
};

/** What the output directory holds: nothing, an interrupted run, or a finished one. */
export function runState(dir: string): RunState {
  const cfg = runFile(dir, "config");
  const metricsPath = runFile(dir, "metrics");
  if (!existsSync(cfg)) {
    if (existsSync(metricsPath) || existsSync(runFile(dir, "last"))) {
      throw new EngineError(
        `${dir} holds run files but no ${RUN_FILES.config}; pass --overwrite to start over there`,
      );
    }
    return { kind: "fresh" };
  }
  let planned = Infinity;
  try {
    const saved = JSON.parse(Deno.readTextFileSync(cfg));
    planned = Number(saved?.config?.train_epoch ?? Infinity);
  } catch { /* treated as unfinished; the trainer reports a broken config.json */ }
  if (existsSync(metricsPath)) {
    try {
      const m = JSON.parse(Deno.readTextFileSync(metricsPath)) as AmuMetrics & MethodResult;
      if (m.best && (m.final || m.epochs.length >= planned)) {
        const b = m.best;
        return {
          kind: "finished",
          result: `best test accuracy ${b.test_acc.toFixed(2)}% at epoch ${b.epoch}`,
        };
      }
      if (m.final) {
        return {
          kind: "finished",
          result: `${m.method} test accuracy ${m.final.test_acc.toFixed(2)}%`,
        };
      }
      return { kind: "unfinished", epochs: m.epochs?.length ?? 0 };
    } catch { /* fall through */ }
  }
  return { kind: "unfinished", epochs: 0 };
}

/** Before any feature work: an interrupted run resumes only with its own hyper-parameters. */
function checkSameTraining(dir: string, s: ExperimentSettings): void {
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(Deno.readTextFileSync(runFile(dir, "config"))).config;
  } catch {
    return; // the trainer reports a broken config.json
  }
  const now = configToJson(s.amu);
  for (const [k, v] of Object.entries(now)) {
    if (k === "exp_name" || JSON.stringify(saved?.[k]) === JSON.stringify(v)) continue;
    throw new EngineError(
      `${dir} holds an interrupted run with ${k} ${JSON.stringify(saved?.[k])}, now ` +
        `${JSON.stringify(v)}: run it again with its own settings to resume it, pass --overwrite ` +
        `to start a new run there, or choose another --exp_name`,
    );
  }
}

function commandLine(s: ExperimentSettings): string {
  return ["deno", "task", "train", ...s.argv].join(" ");
}

function readJsonObject(path: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(Deno.readTextFileSync(path));
    return v && typeof v === "object" && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `dir` holds a run of this tool: its config.json (written by the trainer) or its
 * experiment.json (written first by every run) has the shape this tool writes. */
function isRunFolder(dir: string): boolean {
  const config = readJsonObject(runFile(dir, "config"));
  if (
    config && typeof config.config === "object" && typeof config.iters_per_epoch === "number" &&
    typeof config.total_steps === "number"
  ) return true;
  const experiment = readJsonObject(join(dir, RESULT_FILES.experiment));
  return typeof experiment?.command === "string" &&
    experiment.command.startsWith("deno task train");
}

/** Refuses an output folder that holds files with a run file's name but is not a run's (a
 * user's own config.json, say): they would be taken for an interrupted run, replaced, or
 * deleted by --overwrite. Nothing is written or removed there. */
function checkRunFolder(dir: string): void {
  if (!existsSync(dir) || isRunFolder(dir)) return;
  const names = [...Object.values(RUN_FILES), ...Object.values(RESULT_FILES)];
  const clashing = names.filter((f) => existsSync(join(dir, f)));
  if (clashing.length > 0) {
    throw new EngineError(
      `${dir} holds ${clashing.join(", ")}, which a run would write, but is not the folder of ` +
        `a run of \`deno task train\`; nothing was changed there: choose an empty or new folder ` +
        `with --out (or --exp_name)`,
    );
  }
}

function removeRunFiles(dir: string): void {
  for (const f of [...Object.values(RUN_FILES), ...Object.values(RESULT_FILES)]) {
    const p = join(dir, f);
    if (existsSync(p)) Deno.removeSync(p);
  }
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.\-]/g, "_");
}

function shortPath(p: string): string {
  const cwd = Deno.cwd();
  return p.startsWith(cwd + "/") ? p.slice(cwd.length + 1) : p;
}

export interface DataPlan {
  dataset: Dataset;
  datasetLabel: string;
  root: string;
  templates: readonly string[];
  train: LabeledImage[];
  sampling: string;
  /** Said before any image is decoded (classes sampled with replacement). */
  warnings: string[];
}

/** The dataset, its prompt templates and the few-shot list of a run (sampled with the run's
 * seed, or read from --fewshot_file); refuses what can be refused before any image is decoded.
 * `loaded`: the dataset already listed (a sweep samples many lists from one listing). */
export function prepareData(
  s: ExperimentSettings,
  root: string,
  datasetName: string,
  loaded?: Dataset,
): DataPlan {
  const dataset = loaded ??
    (datasetName === "imagefolder" ? loadImageFolder(root) : loadDataset(datasetName, root));
  const C = dataset.classnames.length;
  if (s.numClasses !== undefined && s.numClasses !== C) {
    throw new EngineError(`--num_classes ${s.numClasses}, but ${dataset.name} has ${C} classes`);
  }
  if (C < 2) {
    throw new EngineError(
      `${dataset.name} under ${root} has ${C} class (${dataset.classnames.join(", ")}): ` +
        `few-shot classification needs at least 2`,
    );
  }
  // A class folder (or a dataset's class) without images, named as the user would look for it.
  const className = (label: number) => {
    const name = dataset.classnames[label];
    return datasetName === "imagefolder"
      ? `class ${label} ('${name}', folder ${join(root, "train", name)}, read for ${IMAGE_TYPES})`
      : `class ${label} ('${name}')`;
  };
  const warnings: string[] = [];
  if (dataset.test.length === 0) {
    throw new EngineError(`${dataset.name}: no test images under ${root}`);
  }
  if (dataset.train.length === 0 && !s.fewshotFile) {
    throw new EngineError(`${dataset.name}: no training images under ${root}`);
  }
  let train: LabeledImage[];
  let sampling: string;
  if (s.fewshotFile) {
    train = readFewShotFile(s.fewshotFile, root, C);
    sampling = `replayed from ${resolve(s.fewshotFile)}`;
  } else {
    train = sampleFewShot(dataset.train, C, s.shots, seededRandom(s.amu.seed), className);
    const counts = new Array<number>(C).fill(0);
    for (const it of dataset.train) counts[it.label]++;
    const short = counts.flatMap((n, c) => (n < s.shots ? [`${dataset.classnames[c]}: ${n}`] : []));
    if (short.length > 0) {
      warnings.push(
        `warning: ${short.length} class(es) have fewer than ${s.shots} training images ` +
          `(${short.slice(0, 5).join(", ")}${short.length > 5 ? ", ..." : ""}): sampled with ` +
          `replacement, so their images repeat in the ${s.shots}-shot set`,
      );
    }
    sampling = `${s.shots} per class, seeded (rand_seed ${s.amu.seed}); without replacement, ` +
      `with replacement for classes with fewer images`;
  }
  return {
    dataset,
    datasetLabel: dataset.name,
    root,
    templates: templatesFor(dataset.name),
    train,
    sampling,
    warnings,
  };
}

/** Runs one experiment. A run that fails after its log was started ends its train.log with the
 * error that ended it. */
export async function runExperiment(
  s: ExperimentSettings,
  io: ExperimentIo = {},
): Promise<ExperimentOutcome> {
  const run: { logPath?: string } = {};
  try {
    return await experiment(s, io, run);
  } catch (e) {
    if (run.logPath) {
      const message = e instanceof Error ? e.message : String(e);
      try {
        Deno.writeTextFileSync(run.logPath, `error: ${message}\n`, { append: true });
      } catch { /* the error itself (a full disk, say) is what the user must see */ }
    }
    throw e;
  }
}

async function experiment(
  s: ExperimentSettings,
  io: ExperimentIo,
  run: { logPath?: string },
): Promise<ExperimentOutcome> {
  const print = io.print ?? console.log;
  const cacheRoot = resolve(io.cacheRoot ?? "results/cache");
  const outDir = s.outDir;
  const started = performance.now();
  if (s.resume && s.overwrite) throw new EngineError("--resume and --overwrite contradict");
  if (s.freshFeatures && (s.loadPreFeat || s.loadAuxWeight)) {
    throw new EngineError("--fresh_features contradicts --load_pre_feat / --load_aux_weight");
  }

  // The run directory: fresh, an interrupted run to resume, or a finished one; never a folder
  // of someone else's files that happen to share a run file's name.
  checkRunFolder(outDir);
  let state = runState(outDir);
  if (s.overwrite && state.kind !== "fresh") {
    removeRunFiles(outDir);
    state = { kind: "fresh" };
  }
  let replacedDemo = false;
  if (state.kind === "finished") {
    if (s.mode === "demo" && !s.resume) {
      removeRunFiles(outDir);
      state = { kind: "fresh" };
      replacedDemo = true;
    } else if (!s.resume) {
      throw new EngineError(
        `${outDir} already holds a finished run (${state.result}); choose another ` +
          `--exp_name, or pass --overwrite to replace it`,
      );
    }
  }
  // A baseline has no checkpoints to resume from (and takes seconds): an interrupted one runs
  // again from the start.
  if (s.method !== "amu" && state.kind === "unfinished") {
    removeRunFiles(outDir);
    state = { kind: "fresh" };
  }
  const resume = s.resume || state.kind !== "fresh";
  if (state.kind === "unfinished" && !s.orderPath) checkSameTraining(outDir, s);
  Deno.mkdirSync(outDir, { recursive: true });
  // Marks the folder as a run's before anything else is written (replaced once features exist).
  if (!existsSync(join(outDir, RESULT_FILES.experiment))) {
    writeJson(join(outDir, RESULT_FILES.experiment), {
      command: commandLine(s),
      written: new Date().toISOString(),
      mode: s.mode,
      status: "started",
    });
  }
  const logPath = runFile(outDir, "log");
  if (!resume) Deno.writeTextFileSync(logPath, "");
  run.logPath = logPath;
  const say = (line: string) => {
    print(line);
    Deno.writeTextFileSync(logPath, line + "\n", { append: true });
  };

  // A replayed batch order is read and checked before any feature work (extraction can take
  // hours; a bad --order must not wait for it).
  let config = s.amu;
  let order: Int32Array | undefined;
  if (s.orderPath) {
    const o = orderFromNpy(readNpy(s.orderPath), s.orderPath);
    if (s.values.has("train_epoch") && o.epochs !== config.epochs) {
      throw new EngineError(
        `${s.orderPath} holds ${o.epochs} epochs of batches, --train_epoch is ${config.epochs}`,
      );
    }
    config = amuConfig({ ...config, epochs: o.epochs });
    order = o.order;
  }

  const gpu = io.gpu ?? await getGpu();
  say(`adapter: ${gpu.describe()}`);
  if (s.mode === "demo") say(DEMO_NOTE);
  if (replacedDemo) say(`replacing the previous demo run in ${shortPath(outDir)}`);
  if (state.kind === "unfinished") {
    say(
      `resuming the interrupted run in ${shortPath(outDir)} (${state.epochs} of ` +
        `${s.amu.epochs} epochs done; --overwrite starts over)`,
    );
  }
  if (state.kind === "finished" && s.resume) {
    say(`${shortPath(outDir)}: the run is already complete`);
  }

  // Features: from a cache directory, or from images.
  let features: AmuFeatures;
  let manifest: FeatureCacheManifest;
  let pipeline: FeaturePipelineResult | undefined;
  let cacheDir: string;
  let models: ModelPaths | undefined;
  let data: DataPlan | undefined;
  const settingsJson = resolvedSettings(s);
  if (io.preloaded) {
    const pre = io.preloaded;
    validateFeatures(pre.features, pre.source);
    ({ features, manifest, data } = pre);
    cacheDir = pre.source;
    printSettings(say, s, settingsJson, cacheDir);
    say(`features: gathered from ${shortPath(cacheDir)} (no image encoded for this run)`);
    reportSkipped(say, pre.skipped, outDir);
    writeJson(
      join(outDir, RESULT_FILES.fewShot),
      fewShotRecord(
        data.datasetLabel,
        data.root,
        s.shots,
        s.amu.seed,
        data.sampling,
        data.dataset.classnames,
        data.train,
        pre.skipped,
      ),
    );
  } else if (s.mode === "features") {
    cacheDir = resolve(s.featuresDir!);
    printSettings(say, s, settingsJson, cacheDir);
    const cache = readFeatureCache(cacheDir);
    ({ features, manifest } = cache);
    for (const w of cache.warnings) say(w);
    say(
      `features: ${shortPath(cacheDir)} (dataset ${manifest.dataset ?? "?"}, shots ` +
        `${manifest.shots ?? "?"}, ${manifest.class_names?.length ?? "?"} classes)`,
    );
  } else {
    const hashes = new FileHashes(join(cacheRoot, "file_hashes.json"));
    let bpePath: string | undefined;
    let datasetLabel: string;
    if (s.mode === "demo") {
      const assets = ensureDemoAssets(join(cacheRoot, "demo-assets"), say);
      models = {
        clipVisual: assets.clipVisual,
        clipText: assets.clipText,
        aux: assets.aux,
        tag: "demo",
      };
      data = prepareData(s, assets.imageRoot, "imagefolder");
      datasetLabel = "demo";
      try {
        bpePath = findBpeFile();
      } catch {
        bpePath = undefined;
      }
    } else {
      models = await resolveModelPaths(s.models, { weightsDir: io.weightsDir, log: say });
      bpePath = findBpeFile(s.models.bpe);
      data = prepareData(s, s.root!, s.dataset);
      datasetLabel = data.datasetLabel;
    }
    cacheDir = s.cacheDir ? resolve(s.cacheDir) : join(
      cacheRoot,
      safeName(
        `${datasetLabel}-${models.tag}-${s.fewshotFile ? "list" : `${s.shots}shot`}-seed` +
          `${s.amu.seed}-aug${s.augmentEpoch}`,
      ),
    );
    printSettings(say, s, settingsJson, cacheDir, models, data, bpePath);
    for (const w of data.warnings) say(w);
    if (order) {
      // Rows are images x views; unreadable images found later only lower the count.
      const rows = order.length / config.epochs;
      const most = data.train.length * s.augmentEpoch;
      if (rows > most) {
        throw new EngineError(
          `${s.orderPath} orders ${rows} training rows per epoch, but this run has at most ` +
            `${data.train.length} images x ${s.augmentEpoch} view(s) = ${most}`,
        );
      }
    }
    const rows = data.train.length * s.augmentEpoch + data.dataset.test.length +
      data.dataset.val.length;
    const encoders = await prepareEncoders(s, models, bpePath, hashes, gpu, say, rows);
    const mode = (require: boolean): ReuseMode =>
      s.freshFeatures ? "never" : require ? "require" : "auto";
    pipeline = await buildFeatures({
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
    }, {
      cacheDir,
      train: mode(s.loadAuxWeight),
      test: mode(s.loadPreFeat),
      batchSize: s.valBatchSize,
      log: say,
      progress: io.progress,
      hashes,
    });
    features = pipeline.features;
    manifest = pipeline.manifest;
    reportSkipped(say, pipeline.skipped, outDir);
    writeJson(
      join(outDir, RESULT_FILES.fewShot),
      fewShotRecord(
        datasetLabel,
        data.root,
        s.shots,
        s.amu.seed,
        data.sampling,
        data.dataset.classnames,
        data.train,
        pipeline.skipped,
      ),
    );
  }

  writeJson(join(outDir, RESULT_FILES.experiment), {
    command: commandLine(s),
    written: new Date().toISOString(),
    mode: s.mode,
    settings: settingsJson,
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
    feature_cache: cacheDir,
    feature_sources: pipeline?.sources ?? { all: "cache" },
    adapter: gpu.describe(),
  });

  if (s.method !== "amu") {
    return await finishBaseline(s, features, {
      outDir,
      gpu,
      order,
      config,
      say,
      started,
      resume,
      cacheDir,
      pipeline,
    });
  }

  // Training.
  const title = s.mode === "demo"
    ? `AMU-Tuning demo (untrained models), ${manifest.shots}-shot`
    : `AMU-Tuning: ${manifest.dataset}, ${manifest.shots ?? "?"}-shot`;
  let result: TrainResult;
  try {
    result = await trainAmu(config, features, {
      gpu,
      outDir,
      order,
      resume,
      log: print,
      featuresSource: cacheDir,
      stopAfterEpochs: io.stopAfterEpochs,
      progressSteps: s.progressEvery > 0 ? s.progressEvery : undefined,
      onProgress: s.progressEvery > 0
        ? (p) => say(`  epoch ${p.epoch} iter ${p.iter}/${p.iters}  loss ${p.meanLoss.toFixed(4)}`)
        : undefined,
      onEpoch: () => {
        const metricsPath = runFile(outDir, "metrics");
        if (existsSync(metricsPath)) {
          writeMetricViews(outDir, JSON.parse(Deno.readTextFileSync(metricsPath)), title);
        }
      },
    });
  } catch (e) {
    if (e instanceof EngineError && e.message.startsWith("cannot resume")) {
      throw new EngineError(
        `${e.message}\n  (pass --overwrite to start a new run there, or choose another --exp_name)`,
      );
    }
    throw e;
  }
  writeMetricViews(outDir, result.metrics, title);

  const m = result.metrics;
  const last = m.epochs[m.epochs.length - 1];
  say(
    `summary: zero-shot CLIP ${m.zero_shot_acc.toFixed(2)}%, best AMU ${
      m.best.test_acc.toFixed(2)
    }% at epoch ${m.best.epoch}` +
      (last
        ? `, final ${last.test_acc.toFixed(2)}% (aux branch ${last.aux_acc.toFixed(2)}%)`
        : "") +
      ` after ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  if (pipeline?.skipped.length) {
    say(
      `note: ${pipeline.skipped.length} unreadable image(s) were skipped (listed in ` +
        `${shortPath(join(outDir, RESULT_FILES.skipped))})`,
    );
  }
  say(
    `results: ${shortPath(outDir)}/ (metrics.json, metrics.csv, accuracy.svg, ` +
      `checkpoint_best.npz, experiment.json, few_shot.json, train.log)`,
  );
  if (s.mode === "demo") {
    say(
      "reminder: the demo's models are untrained; these accuracies only show the pipeline working",
    );
  }
  return {
    outDir,
    result,
    metrics: result.metrics,
    features,
    sources: pipeline?.sources,
    skipped: pipeline?.skipped ?? [],
    resumed: resume,
    cacheDir,
  };
}

/** A baseline's run: the method on the features, its result said and written. */
async function finishBaseline(
  s: ExperimentSettings,
  features: AmuFeatures,
  r: {
    outDir: string;
    gpu: Gpu;
    order: Int32Array | undefined;
    config: AmuConfig;
    say: (line: string) => void;
    started: number;
    resume: boolean;
    cacheDir: string;
    pipeline: FeaturePipelineResult | undefined;
  },
): Promise<ExperimentOutcome> {
  const result = await runBaseline(s, features, r.outDir, {
    gpu: r.gpu,
    order: r.order && { order: r.order, epochs: r.config.epochs },
    log: r.say,
  });
  for (const e of result.epochs ?? []) {
    r.say(
      `epoch ${e.epoch}  train loss ${e.train_loss.toFixed(4)}  test acc ${e.test_acc.toFixed(2)}%`,
    );
  }
  const test_acc = result.final.test_acc;
  const chose = chosenText(result.final);
  r.say(
    `summary: zero-shot CLIP ${result.zero_shot_acc.toFixed(2)}%, ${s.method} ` +
      `${test_acc.toFixed(2)}%${chose ? ` (${chose}` : ""}` +
      `${result.search_split ? `${chose ? "; " : " ("}searched on ${result.search_split}` : ""}` +
      `${chose || result.search_split ? ")" : ""} after ` +
      `${((performance.now() - r.started) / 1000).toFixed(1)} s`,
  );
  r.say(
    `results: ${shortPath(r.outDir)}/ (metrics.json, experiment.json, few_shot.json, train.log)`,
  );
  return {
    outDir: r.outDir,
    metrics: result,
    features,
    sources: r.pipeline?.sources,
    skipped: r.pipeline?.skipped ?? [],
    resumed: r.resume,
    cacheDir: r.cacheDir,
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

/** Every flag's effective value (given, from the config file, or its default). */
function resolvedSettings(s: ExperimentSettings): Record<string, unknown> {
  const v = (k: string) => s.values.get(k) ?? null;
  return {
    config: s.configFile ?? null,
    demo: s.mode === "demo",
    dataset: s.mode === "features" ? null : s.mode === "demo" ? "imagefolder (demo)" : s.dataset,
    root_path: s.root ?? null,
    shots: s.shots,
    num_classes: v("num_classes"),
    fewshot_file: v("fewshot_file"),
    clip_backbone: s.mode === "dataset" ? s.models.backbone : null,
    clip_model: v("clip_model"),
    clip_visual: v("clip_visual"),
    clip_text: v("clip_text"),
    clip_weights: v("clip_weights"),
    aux_model: v("aux_model"),
    aux_weights: v("aux_weights"),
    bpe: v("bpe"),
    clip_size: v("clip_size"),
    aux_size: v("aux_size"),
    augment_epoch: s.augmentEpoch,
    val_batch_size: s.valBatchSize,
    tune: s.tune,
    torch_rand_seed: s.augmentSeed,
    load_pre_feat: s.loadPreFeat,
    load_aux_weight: s.loadAuxWeight,
    fresh_features: s.freshFeatures,
    cache_dir: v("cache_dir"),
    features: v("features"),
    ...configToJson(s.amu),
    out: s.outDir,
    order: v("order"),
    resume: s.resume,
    overwrite: s.overwrite,
    progress_every: s.progressEvery,
  };
}

function printSettings(
  say: (line: string) => void,
  s: ExperimentSettings,
  all: Record<string, unknown>,
  cacheDir: string,
  models?: ModelPaths,
  data?: DataPlan,
  bpe?: string,
): void {
  const pick = (keys: string[]) =>
    keys.map((k) => `${k} ${typeof all[k] === "string" ? all[k] : JSON.stringify(all[k])}`).join(
      ", ",
    );
  const from = s.configFile ? ` (command line > ${s.configFile} > defaults)` : "";
  say(`config${from}:`);
  if (data) {
    say(
      `  dataset   ${s.mode === "demo" ? "demo image folder" : data.datasetLabel} at ` +
        `${shortPath(data.root)}: ${data.dataset.classnames.length} classes, ` +
        `${data.train.length} few-shot training images (${
          s.fewshotFile ? "from --fewshot_file" : `${s.shots} shots`
        }), ${data.dataset.test.length} test images`,
    );
  }
  if (models) {
    say(
      `  models    clip_visual ${shortPath(models.clipVisual)}, clip_text ` +
        `${shortPath(models.clipText)}, aux ${shortPath(models.aux)}, bpe ${
          bpe ? shortPath(bpe) : "(none: byte-level stand-in)"
        }`,
    );
  }
  if (s.mode !== "features") {
    say(
      `  features  ${pick(["augment_epoch", "val_batch_size", "torch_rand_seed"])}, cache ${
        shortPath(cacheDir)
      }`,
    );
  }
  say(
    `  training  ${
      pick([
        "lr",
        "train_epoch",
        "batch_size",
        "alpha",
        "lambda_merge",
        "uncent_type",
        "uncent_power",
        "rand_seed",
      ])
    }`,
  );
  say(`  output    ${shortPath(s.outDir)}`);
}
