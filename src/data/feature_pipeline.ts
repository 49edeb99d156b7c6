/** From images to the AMU feature cache, reusing what an earlier run already computed.
 *
 * The cache (features.npz + manifest.json, see feature_cache.ts) has three parts, each stamped in
 * the manifest with a key of everything it depends on:
 *   train  training views of the few-shot list: images (paths relative to the dataset root,
 *          labels and each file's SHA-256, so another dataset with the same file names or an
 *          image edited in place never matches), shots, sampling seed, augmentation views and
 *          seed, CLIP image tower and auxiliary encoder (file SHA-256s, input sizes,
 *          normalisation) and the view transforms
 *   test   the test images and the validation images where the dataset has them (the same
 *          way) and the same two image encoders
 *   text   class names, prompt templates, CLIP text tower and tokenizer
 * A part whose key matches is reused; otherwise it is extracted again (saying why), or, when the
 * run asked to reuse it (`--load_aux_weight` for train, `--load_pre_feat` for test and text),
 * refused with what differs. A part missing here may come from a sibling cache with the same key
 * (the test features of another shot count, say). Extraction saves segments under
 * `<cache>/partial/`, so an interrupted run resumes there. Encoders are loaded only when a part
 * must be extracted, all of them before any image is decoded, so a mismatched model fails early. */
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { EngineError } from "../util/errors.ts";
import type { Normalization } from "../models/preprocessing.ts";
import type { LabeledImage } from "./datasets.ts";
import {
  extractFeatures,
  type ExtractResult,
  type ImageTower,
  pathViewIds,
  type SkippedImage,
} from "./extract.ts";
import { type AmuFeatures, type FeatureMatrix, featureMatrix } from "../models/features.ts";
import {
  type EncoderRecord,
  type FeatureCacheManifest,
  MANIFEST_FILE,
  readFeatureCache,
  writeFeatureCache,
} from "./feature_cache.ts";
import type { ProgressOptions } from "./progress.ts";
import { ProgressLine } from "./progress.ts";
import { encodeClassWeights, type PromptTokenizer, type TextEncodeFn } from "./text_features.ts";
import { FileHashes } from "./file_hashes.ts";

/** Bumped when extraction changes in a way that invalidates old caches (2: keys hold image
 * contents and preprocessing). */
export const EXTRACTION_VERSION = 2;

/** The view transforms, as recorded in keys and manifests. */
export const TRAIN_VIEWS = "RandomResizedCrop(scale 0.5-1, ratio 3/4-4/3, bicubic) + " +
  "RandomHorizontalFlip, seeded per (augment_seed, image, view)";
export const TEST_VIEW = "Resize(shorter side, bicubic, antialiased) + CenterCrop";

/** A model file as the manifest records it. */
export interface ModelFile extends EncoderRecord {
  bytes: number;
}

export interface LoadedImageTower extends ImageTower {
  /** Feature size when the model declares it (checked against the text tower early). */
  featureDim?: number;
  dispose(): void;
}

export interface LazyImageTower {
  file: ModelFile;
  /** Input size forced by the user (null: the model's own). Part of the cache key. */
  sizeOverride: number | null;
  /** The input normalisation, e.g. "CLIP mean/std". Part of the cache key. */
  normalization: string;
  load(): Promise<LoadedImageTower>;
}

export interface LoadedTextTower {
  encode: TextEncodeFn;
  contextLength: number;
  tokenizer: PromptTokenizer;
  featureDim?: number;
  dispose(): void;
}

export interface LazyTextTower {
  file: ModelFile;
  /** Identity of the tokenizer (the BPE file's SHA-256, or a name). Part of the cache key. */
  tokenizerId: string;
  load(): Promise<LoadedTextTower>;
}

/** What to extract. */
export interface FeatureJob {
  dataset: string;
  /** Dataset root: image paths are keyed relative to it. */
  root: string;
  classnames: readonly string[];
  templates: readonly string[];
  /** The few-shot training list. */
  train: readonly LabeledImage[];
  test: readonly LabeledImage[];
  /** The validation split (extracted with the test part; empty or absent: none). */
  val?: readonly LabeledImage[];
  shots: number | null;
  /** Seed of the few-shot sampling. */
  seed: number | null;
  /** Seed of the training views' augmentation. */
  augmentSeed: number;
  /** Augmented views per training image. */
  views: number;
  clip: LazyImageTower;
  aux: LazyImageTower;
  text: LazyTextTower;
}

/** auto: reuse a matching part, extract otherwise; require: reuse or fail; never: extract. */
export type ReuseMode = "auto" | "require" | "never";

export interface FeaturePipelineOptions {
  cacheDir: string;
  train: ReuseMode;
  /** Test features and text weights. */
  test: ReuseMode;
  /** Images (or prompts) per encoder batch. */
  batchSize: number;
  log: (line: string) => void;
  progress?: ProgressOptions | false;
  /** Images per resumable segment (default 1024). */
  segmentImages?: number;
  /** Look for matching parts in sibling cache directories (default true). */
  siblings?: boolean;
  /** Which flag asked for reuse, for messages. */
  flagNames?: { train: string; test: string };
  /** Image content hashes, remembered between runs (default: for this run only). */
  hashes?: FileHashes;
}

export type PartName = "train" | "test" | "text";

export interface SkippedRecord extends SkippedImage {
  split: "train" | "test" | "val";
}

export interface FeaturePipelineResult {
  features: AmuFeatures;
  manifest: FeatureCacheManifest;
  /** Where each part came from: "cache", "extracted", or a sibling cache directory. */
  sources: Record<PartName, string>;
  skipped: SkippedRecord[];
  /** Training images that produced rows (the few-shot list minus unreadable ones). */
  trainKept: LabeledImage[];
}

type Key = Record<string, string | number | null | readonly string[]>;

async function sha256Text(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Digest of an image list: paths relative to the root, labels and file contents, in order. */
async function listDigest(
  items: readonly LabeledImage[],
  root: string,
  hashes: FileHashes,
  line: ProgressLine | undefined,
): Promise<string> {
  const lines: string[] = [];
  for (const it of items) {
    const { sha256 } = await hashes.hash(it.path);
    lines.push(`${relative(root, it.path)}\t${it.label}\t${sha256}`);
    line?.advance(1);
  }
  return await sha256Text(lines.join("\n"));
}

/** The three parts' keys (see the module comment). Hashing the images shows progress unless
 * `progress` is false. */
export async function featureKeys(
  job: FeatureJob,
  hashes: FileHashes = new FileHashes(),
  progress?: ProgressOptions | false,
): Promise<Record<PartName, Key>> {
  const root = resolve(job.root);
  const images = {
    clip_visual: job.clip.file.sha256,
    clip_size: job.clip.sizeOverride ?? "model",
    clip_normalization: job.clip.normalization,
    aux: job.aux.file.sha256,
    aux_size: job.aux.sizeOverride ?? "model",
    aux_normalization: job.aux.normalization,
    extraction_version: EXTRACTION_VERSION,
  };
  const val = job.val ?? [];
  const total = job.train.length + job.test.length + val.length;
  const line = progress === false
    ? undefined
    : new ProgressLine("hashing images", total, "files", progress);
  let trainImages: string, testImages: string, valImages: string | null;
  try {
    trainImages = await listDigest(job.train, root, hashes, line);
    testImages = await listDigest(job.test, root, hashes, line);
    valImages = val.length > 0 ? await listDigest(val, root, hashes, line) : null;
  } finally {
    line?.finish();
    hashes.save();
  }
  return {
    train: {
      dataset: job.dataset,
      images: trainImages,
      count: job.train.length,
      shots: job.shots,
      seed: job.seed,
      augment_views: job.views,
      augment_seed: job.augmentSeed,
      views: TRAIN_VIEWS,
      ...images,
    },
    test: {
      dataset: job.dataset,
      images: testImages,
      count: job.test.length,
      val_images: valImages,
      val_count: val.length,
      views: TEST_VIEW,
      ...images,
    },
    text: {
      classes: await sha256Text(JSON.stringify(job.classnames)),
      class_count: job.classnames.length,
      templates: [...job.templates],
      clip_text: job.text.file.sha256,
      tokenizer: job.text.tokenizerId,
      extraction_version: EXTRACTION_VERSION,
    },
  };
}

const KEY_LABELS: Record<string, string> = {
  dataset: "dataset",
  images: "images (paths, labels and contents)",
  val_images: "validation images (paths, labels and contents)",
  val_count: "number of validation images",
  count: "number of images",
  shots: "shots",
  seed: "sampling seed (--rand_seed)",
  augment_views: "views per image (--augment_epoch)",
  augment_seed: "augmentation seed (--torch_rand_seed)",
  clip_visual: "CLIP image tower (SHA-256)",
  clip_size: "CLIP input size",
  clip_normalization: "CLIP input normalisation",
  aux: "auxiliary encoder (SHA-256)",
  aux_size: "auxiliary input size",
  aux_normalization: "auxiliary input normalisation",
  views: "view transforms",
  classes: "class names",
  class_count: "number of classes",
  templates: "prompt templates",
  clip_text: "CLIP text tower (SHA-256)",
  tokenizer: "tokenizer",
  extraction_version: "extraction version",
};

function show(v: unknown): string {
  if (typeof v === "string" && /^[0-9a-f]{64}$/.test(v)) return v.slice(0, 12) + "…";
  return JSON.stringify(v);
}

/** What differs between a saved key and the current one, or "" when they match. */
export function keyDifference(saved: unknown, now: Key): string {
  if (!saved || typeof saved !== "object") return "it was not recorded";
  const old = saved as Record<string, unknown>;
  const diffs: string[] = [];
  for (const k of new Set([...Object.keys(now), ...Object.keys(old)])) {
    if (JSON.stringify(old[k]) !== JSON.stringify(now[k])) {
      diffs.push(`${KEY_LABELS[k] ?? k} was ${show(old[k])}, now ${show(now[k])}`);
    }
  }
  return diffs.join("; ");
}

function readManifest(dir: string): FeatureCacheManifest | undefined {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(Deno.readTextFileSync(path)) as FeatureCacheManifest;
  } catch {
    return undefined;
  }
}

function savedKeys(m: FeatureCacheManifest | undefined): Partial<Record<PartName, unknown>> {
  const keys = m?.keys;
  return keys && typeof keys === "object" ? keys as Partial<Record<PartName, unknown>> : {};
}

function normalizationJson(n: Normalization) {
  return { mean: [...n.mean], std: [...n.std] };
}

/** Arrays of one split, however obtained. */
interface SplitPart {
  clip: FeatureMatrix;
  aux: FeatureMatrix;
  labels: Int32Array;
  kept: number[];
  skipped: SkippedImage[];
}

/** The training rows, and which kept image each came from. */
interface TrainPart extends SplitPart {
  image?: Int32Array;
}

/** The test rows, and the validation rows where the dataset has a validation split. */
interface TestPart extends SplitPart {
  val?: SplitPart;
}

type Split = "train" | "test" | "val";

const SPLIT_TITLES: Record<Split, string> = {
  train: "training features",
  test: "test features",
  val: "validation features",
};

const PART_TITLES: Record<PartName, string> = {
  train: "training features",
  test: "test features",
  text: "text weights",
};

/** One run of the pipeline: the job, the cache folder and what is known of it. */
interface Build {
  job: FeatureJob;
  options: FeaturePipelineOptions;
  /** The cache folder (resolved). */
  dir: string;
  keys: Record<PartName, Key>;
  /** The cache's manifest before this run (none: no cache there yet). */
  manifest?: FeatureCacheManifest;
  /** Where each part comes from: "cache", "extracted", or a sibling cache directory. */
  sources: Record<PartName, string>;
  caches: CacheReader;
}

/** The encoders loaded for the parts that are extracted (none for a part reused). */
interface LoadedTowers {
  text?: LoadedTextTower;
  clip?: LoadedImageTower;
  aux?: LoadedImageTower;
}

/** Runs the job against the cache in `options.cacheDir`; see the module comment. */
export async function buildFeatures(
  job: FeatureJob,
  options: FeaturePipelineOptions,
): Promise<FeaturePipelineResult> {
  const dir = resolve(options.cacheDir);
  checkCacheFolder(dir);
  const keys = await featureKeys(job, options.hashes, options.progress);
  const manifest = readManifest(dir);
  const sources = chooseSources(dir, keys, manifest, options);
  const b: Build = { job, options, dir, keys, manifest, sources, caches: new CacheReader(dir) };
  const loaded: { dispose(): void }[] = [];
  try {
    const towers = await loadTowers(b, loaded);
    checkOneClipSpace(b, towers);
    const clipWeights = await textWeights(b, towers.text);
    const imageTowers = towers.clip && towers.aux ? [towers.clip, towers.aux] : [];
    const train = sources.train === "extracted"
      ? await extractTrain(b, imageTowers)
      : cachedTrain(b);
    const test = sources.test === "extracted" ? await extractTest(b, imageTowers) : cachedTest(b);
    const features = assembleFeatures(train, test, clipWeights);
    const skipped = skippedRecords(train, test);
    const written = saveCache(b, features, cacheManifest(b, towers, train, test, skipped));
    const trainKept = train.kept.map((i) => job.train[i]).filter((x) => x !== undefined);
    return { features, manifest: written ?? manifest!, sources, skipped, trainKept };
  } finally {
    for (const m of loaded.reverse()) m.dispose();
  }
}

/** Where each part comes from: the cache when its key matches, else a sibling cache with the
 * same key, else extraction (saying why the cache's part is stale). A part whose reuse was
 * required fails here, naming what differs. */
function chooseSources(
  dir: string,
  keys: Record<PartName, Key>,
  manifest: FeatureCacheManifest | undefined,
  options: FeaturePipelineOptions,
): Record<PartName, string> {
  const saved = savedKeys(manifest);
  const modes: Record<PartName, ReuseMode> = {
    train: options.train,
    test: options.test,
    text: options.test,
  };
  const flags = options.flagNames ?? { train: "--load_aux_weight", test: "--load_pre_feat" };
  const flagOf: Record<PartName, string> = {
    train: flags.train,
    test: flags.test,
    text: flags.test,
  };
  const sources: Record<PartName, string> = { train: "", test: "", text: "" };
  const parts: PartName[] = ["text", "train", "test"];
  for (const part of parts) {
    const mode = modes[part];
    if (mode === "never") {
      sources[part] = "extracted";
      continue;
    }
    const diff = manifest ? keyDifference(saved[part], keys[part]) : "no cache";
    if (diff === "") {
      sources[part] = "cache";
      continue;
    }
    if (mode === "require") {
      throw new EngineError(
        manifest
          ? `${flagOf[part]}: the feature cache ${dir} holds ${PART_TITLES[part]} for other ` +
            `settings (${diff}); run without ${flagOf[part]} to extract them again`
          : `${flagOf[part]}: there is no feature cache at ${dir} yet; run once without ` +
            `${flagOf[part]} to extract the features`,
      );
    }
    const sibling = options.siblings === false ? undefined : findSibling(dir, part, keys[part]);
    if (sibling) {
      sources[part] = sibling;
      continue;
    }
    sources[part] = "extracted";
    if (manifest) options.log(`feature cache ${dir}: ${PART_TITLES[part]} are stale (${diff})`);
  }
  return sources;
}

/** Cached arrays (the own cache's and siblings'), each directory read once. */
class CacheReader {
  #read = new Map<string, { f: AmuFeatures; m: FeatureCacheManifest }>();

  constructor(readonly dir: string) {}

  /** The arrays and manifest of `source`: "cache" (the own cache) or a sibling's directory. */
  of(source: string): { f: AmuFeatures; m: FeatureCacheManifest } {
    const d = source === "cache" ? this.dir : source;
    let cached = this.#read.get(d);
    if (!cached) {
      const read = readFeatureCache(d);
      cached = { f: read.features, m: read.manifest };
      this.#read.set(d, cached);
    }
    return cached;
  }
}

/** Every encoder some extracted part needs, loaded before any image is decoded (each added to
 * `loaded` as it loads, for the caller to dispose). */
async function loadTowers(b: Build, loaded: { dispose(): void }[]): Promise<LoadedTowers> {
  const towers: LoadedTowers = {};
  if (b.sources.text === "extracted") loaded.push(towers.text = await b.job.text.load());
  if (b.sources.train === "extracted" || b.sources.test === "extracted") {
    loaded.push(towers.clip = await b.job.clip.load());
    loaded.push(towers.aux = await b.job.aux.load());
  }
  return towers;
}

/** The two CLIP towers must embed into one space: checked before any image is decoded, from the
 * loaded models or the cached parts. */
function checkOneClipSpace(b: Build, { text, clip }: LoadedTowers): void {
  const { sources, caches, job } = b;
  const textDim = text?.featureDim ??
    (sources.text !== "extracted" ? caches.of(sources.text).f.clipWeights.rows : undefined);
  const imageDim = clip?.featureDim ??
    (sources.train !== "extracted" ? caches.of(sources.train).f.trainClip.cols : undefined);
  if (textDim !== undefined && imageDim !== undefined && textDim !== imageDim) {
    throw new EngineError(
      `the CLIP text tower ${job.text.file.path} gives ${textDim}-d features but the image ` +
        `tower ${job.clip.file.path} ${imageDim}-d: they are not the same CLIP model`,
    );
  }
}

/** The zero-shot classifier: every class's prompts encoded by the loaded text tower, or the
 * cached weights. */
async function textWeights(b: Build, text: LoadedTextTower | undefined): Promise<FeatureMatrix> {
  const { job, options } = b;
  if (!text) {
    const { f } = b.caches.of(b.sources.text);
    options.log(
      `text weights: reused from ${sourceText(b.sources.text, b.dir)} ` +
        `(${whyMatched(b.keys.text)})`,
    );
    return f.clipWeights;
  }
  const t0 = performance.now();
  const total = job.classnames.length * job.templates.length;
  const line = options.progress === false
    ? undefined
    : new ProgressLine("text prompts", total, "prompts", options.progress);
  let clipWeights: FeatureMatrix;
  try {
    clipWeights = await encodeClassWeights(
      text.encode,
      text.tokenizer,
      job.classnames,
      job.templates,
      {
        contextLength: text.contextLength,
        batchSize: options.batchSize,
        onProgress: (done) => line?.advance(done - line.done),
      },
    );
  } finally {
    line?.finish();
  }
  options.log(
    `text weights: ${job.classnames.length} classes x ${job.templates.length} template(s) ` +
      `-> [${clipWeights.rows}, ${clipWeights.cols}] in ${secs(t0)}`,
  );
  return clipWeights;
}

/** One split's images through both image towers, saved in resumable segments. */
async function extractSplit(
  b: Build,
  towers: readonly LoadedImageTower[],
  split: Split,
  items: readonly LabeledImage[],
): Promise<SplitPart & { views: number }> {
  const { job, options } = b;
  const t0 = performance.now();
  const plan = split === "train"
    ? {
      kind: "train" as const,
      views: job.views,
      seed: job.augmentSeed,
      imageIds: pathViewIds(items, resolve(job.root)),
    }
    : { kind: "eval" as const };
  const title = SPLIT_TITLES[split];
  options.log(
    `extracting ${title}: ${items.length} images` +
      (split === "train" ? ` x ${job.views} augmented view(s)` : "") +
      `, ${towers.map((t) => `${t.role} ${t.size}px`).join(", ")}, batch ${options.batchSize}`,
  );
  const part = split === "train" ? "train" : "test";
  const r: ExtractResult = await extractFeatures(items, towers, plan, {
    batchSize: options.batchSize,
    label: split === "train"
      ? "training views"
      : `${split === "val" ? "validation" : "test"} images`,
    progress: options.progress,
    segmentDir: join(b.dir, "partial", split),
    segmentKey: JSON.stringify(b.keys[part]),
    segmentImages: options.segmentImages,
    log: options.log,
  });
  options.log(
    `${title}: ${r.rows} rows (clip ${r.dims[0]}-d, aux ${r.dims[1]}-d) from ` +
      `${r.kept.length} images in ${secs(t0)}` +
      (r.skipped.length ? `; ${r.skipped.length} unreadable image(s) skipped` : ""),
  );
  return {
    clip: featureMatrix(r.rows, r.dims[0], r.features[0]),
    aux: featureMatrix(r.rows, r.dims[1], r.features[1]),
    labels: r.labels,
    kept: r.kept,
    skipped: r.skipped,
    views: r.views,
  };
}

async function extractTrain(b: Build, towers: readonly LoadedImageTower[]): Promise<TrainPart> {
  const t = await extractSplit(b, towers, "train", b.job.train);
  // Rows are view-major: row v * K + k is view v of kept image k.
  const K = t.kept.length;
  const image = new Int32Array(t.clip.rows);
  for (let r = 0; r < image.length; r++) image[r] = r % K;
  return { ...t, image };
}

async function extractTest(b: Build, towers: readonly LoadedImageTower[]): Promise<TestPart> {
  const test = await extractSplit(b, towers, "test", b.job.test);
  const val = b.job.val?.length ? await extractSplit(b, towers, "val", b.job.val) : undefined;
  return { ...test, val };
}

/** Which images of `split` a cached part kept and skipped, as its manifest records them. */
function splitRecord(
  m: FeatureCacheManifest,
  split: Split,
): { kept?: number[]; skipped?: SkippedImage[] } | undefined {
  return (m.parts as Record<string, { kept?: number[]; skipped?: SkippedImage[] }> | undefined)
    ?.[split];
}

/** A cached part's arrays, saying where they came from. */
function reuseCached(
  b: Build,
  part: "train" | "test",
): { f: AmuFeatures; m: FeatureCacheManifest } {
  const cached = b.caches.of(b.sources[part]);
  b.options.log(
    `${PART_TITLES[part]}: reused from ${sourceText(b.sources[part], b.dir)} ` +
      `(${whyMatched(b.keys[part])})`,
  );
  return cached;
}

function cachedTrain(b: Build): TrainPart {
  const { f, m } = reuseCached(b, "train");
  const record = splitRecord(m, "train");
  return {
    clip: f.trainClip,
    aux: f.trainAux,
    labels: f.trainLabels,
    image: f.trainImage,
    kept: record?.kept ?? [],
    skipped: record?.skipped ?? [],
  };
}

function cachedTest(b: Build): TestPart {
  const { f, m } = reuseCached(b, "test");
  const record = splitRecord(m, "test");
  const valRecord = splitRecord(m, "val");
  return {
    clip: f.testClip,
    aux: f.testAux,
    labels: f.testLabels,
    kept: record?.kept ?? [],
    skipped: record?.skipped ?? [],
    val: f.valClip && f.valAux && f.valLabels
      ? {
        clip: f.valClip,
        aux: f.valAux,
        labels: f.valLabels,
        kept: valRecord?.kept ?? [],
        skipped: valRecord?.skipped ?? [],
      }
      : undefined,
  };
}

/** The feature set of the three parts; the text and image towers must agree on the CLIP size. */
function assembleFeatures(
  train: TrainPart,
  test: TestPart,
  clipWeights: FeatureMatrix,
): AmuFeatures {
  const features: AmuFeatures = {
    trainClip: train.clip,
    trainAux: train.aux,
    trainLabels: train.labels,
    testClip: test.clip,
    testAux: test.aux,
    testLabels: test.labels,
    clipWeights,
    ...(test.val
      ? { valClip: test.val.clip, valAux: test.val.aux, valLabels: test.val.labels }
      : {}),
    ...(train.image ? { trainImage: train.image } : {}),
  };
  if (clipWeights.rows !== train.clip.cols) {
    throw new EngineError(
      `the CLIP text tower gives ${clipWeights.rows}-d features but the image tower ` +
        `${train.clip.cols}-d: they are not the same CLIP model`,
    );
  }
  return features;
}

function skippedRecords(train: TrainPart, test: TestPart): SkippedRecord[] {
  return [
    ...train.skipped.map((s) => ({ split: "train" as const, ...s })),
    ...test.skipped.map((s) => ({ split: "test" as const, ...s })),
    ...(test.val?.skipped ?? []).map((s) => ({ split: "val" as const, ...s })),
  ];
}

/** The manifest of the cache this run leaves: keys, encoders, preprocessing (a reused part's
 * from the previous manifest) and each split's kept and skipped images. */
function cacheManifest(
  b: Build,
  towers: LoadedTowers,
  train: TrainPart,
  test: TestPart,
  skipped: SkippedRecord[],
): FeatureCacheManifest {
  const { job } = b;
  const preprocessing = (t: LoadedImageTower | undefined, part: "clip" | "aux") => {
    if (t) return { size: t.size, ...normalizationJson(t.normalization) };
    const prev = b.manifest?.preprocessing as Record<string, unknown> | undefined;
    return prev?.[part] ?? null;
  };
  return {
    format: "amu-feature-cache",
    version: 1,
    dataset: job.dataset,
    split: {
      train: `train (${job.shots ?? "all"}-shot sample, seed ${job.seed ?? "-"}; ` +
        `${job.views} augmented view(s) per image, view-major rows)`,
      test: "test (resize + center crop)",
    },
    shots: job.shots,
    seed: job.seed,
    augment_views: job.views,
    class_names: [...job.classnames],
    encoders: [job.clip.file, job.text.file, job.aux.file].map((f) => ({ ...f })),
    root_path: resolve(job.root),
    templates: [...job.templates],
    keys: b.keys,
    preprocessing: {
      clip: preprocessing(towers.clip, "clip"),
      aux: preprocessing(towers.aux, "aux"),
      train_views: TRAIN_VIEWS,
      test_view: TEST_VIEW,
    },
    parts: {
      train: { kept: train.kept, skipped: train.skipped },
      test: { kept: test.kept, skipped: test.skipped },
      ...(test.val ? { val: { kept: test.val.kept, skipped: test.val.skipped } } : {}),
    },
    skipped_images: skipped.length,
  };
}

/** Writes the cache when any part is new (returning its manifest), and removes the extraction's
 * segments. */
function saveCache(
  b: Build,
  features: AmuFeatures,
  manifest: FeatureCacheManifest,
): FeatureCacheManifest | undefined {
  const anyNew = Object.values(b.sources).some((s) => s !== "cache");
  if (anyNew) {
    writeFeatureCache(b.dir, features, manifest);
    b.options.log(`feature cache written: ${b.dir}`);
  }
  const partial = join(b.dir, "partial");
  if (existsSync(partial)) Deno.removeSync(partial, { recursive: true });
  return anyNew ? manifest : undefined;
}

function secs(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

/** Refuses a cache folder that holds something other than a feature cache (a user's own
 * manifest.json, or unrelated files): writing the cache there would replace files, and an
 * interrupted extraction's `partial/` is deleted when the cache is complete. An empty folder, a
 * cache of ours, and the `partial/` of an interrupted first extraction are fine. */
function checkCacheFolder(dir: string): void {
  if (!existsSync(dir)) return;
  const manifest = readManifest(dir);
  if (manifest?.format === "amu-feature-cache") return;
  const entries = readdirSync(dir);
  const ours = (name: string) =>
    name === "partial" && statSync(join(dir, name)).isDirectory() &&
    readdirSync(join(dir, name)).every((p) => p === "train" || p === "test");
  const foreign = entries.filter((e) => !ours(e));
  if (foreign.length > 0) {
    throw new EngineError(
      `the feature cache folder ${dir} holds ${foreign.slice(0, 5).join(", ")}` +
        `${foreign.length > 5 ? ", ..." : ""} but no feature cache's ${MANIFEST_FILE}: nothing ` +
        `was changed there; choose an empty or new folder with --cache_dir`,
    );
  }
}

/** Why a cached part was taken: the key it matched, in words. */
function whyMatched(key: Key): string {
  if (key.class_count !== undefined) {
    return `same ${key.class_count} class names, ${(key.templates as string[]).length} ` +
      `template(s), text tower ${show(key.clip_text)} and tokenizer`;
  }
  return `same ${key.count} images by path, label and content (digest ${show(key.images)}), ` +
    `encoders ${show(key.clip_visual)} and ${show(key.aux)}, input sizes, normalisation and ` +
    `views` + (key.shots !== undefined ? ", shots and seeds" : "");
}

function sourceText(source: string, dir: string): string {
  return source === "cache" ? `the feature cache ${dir}` : `the feature cache ${source}`;
}

/** A sibling cache directory (same parent) whose manifest has `part` under the same key. */
function findSibling(dir: string, part: PartName, key: Key): string | undefined {
  const parent = dirname(dir);
  if (!existsSync(parent)) return undefined;
  for (const entry of readdirSync(parent, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const other = join(parent, entry.name);
    if (other === dir) continue;
    const m = readManifest(other);
    if (m && keyDifference(savedKeys(m)[part], key) === "") return other;
  }
  return undefined;
}
