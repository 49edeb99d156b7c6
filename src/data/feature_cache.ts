/** The feature cache AMU-Tuning trains from: a directory with `features.npz` (numpy-readable) and
 * `manifest.json` saying where the features came from.
 *
 * `features.npz` holds, as `np.load` shows them:
 *   train_clip   float32 [N, Dc]   raw CLIP image embeddings of the training views (not normalised)
 *   train_aux    float32 [N, Da]   raw auxiliary-encoder features of the same views
 *   train_labels int64   [N]
 *   test_clip    float32 [T, Dc]
 *   test_aux     float32 [T, Da]
 *   test_labels  int64   [T]
 *   clip_weights float32 [Dc, C]   zero-shot classifier (unit text embeddings as columns)
 * and, where the dataset has a validation split and the cache records them (both optional, so
 * older caches load):
 *   val_clip     float32 [V, Dc]   val_aux float32 [V, Da]   val_labels int64 [V]
 *   train_image  int64   [N]       which few-shot image (0-based) each training row came from
 * Readers also accept float64 features (rounded to float32) and int32 labels, so a cache made by
 * hand in numpy with default dtypes loads too (a manifest without "format" with a warning). */
import { printable } from "../util/text.ts";
import { join } from "node:path";
import { EngineError } from "../util/errors.ts";
import {
  type AmuFeatures,
  type FeatureMatrix,
  featureMatrix,
  validateFeatures,
} from "../models/features.ts";
import { type NpyArray, npyArray, toNumbers, writeFileAtomic } from "../util/npy.ts";
import { npzGet, readNpz, writeNpz } from "../util/npz.ts";

/** One encoder file the features were computed with. */
export interface EncoderRecord {
  /** What it is for: "clip_visual", "clip_text", "aux", ... */
  role: string;
  path: string;
  sha256: string;
  bytes?: number;
}

/** `manifest.json` of a feature cache (snake_case keys, as Python code would read them). */
export interface FeatureCacheManifest {
  format: "amu-feature-cache";
  version: 1;
  dataset: string;
  /** Which split each half came from, e.g. {"train": "train (16-shot sample)", "test": "test"}. */
  split: Record<string, string>;
  shots: number | null;
  seed: number | null;
  /** Augmented views per training image (the reference's `augment_epoch`). */
  augment_views: number;
  class_names: string[];
  encoders: EncoderRecord[];
  /** Filled on write: each array's shape, for people reading the manifest. */
  shapes?: Record<string, number[]>;
  created?: string;
  /** Free-form extras (preprocessing, notes). */
  [extra: string]: unknown;
}

export const FEATURES_FILE = "features.npz";
export const MANIFEST_FILE = "manifest.json";

function matrixFrom(a: NpyArray, name: string, label: string): FeatureMatrix {
  if (a.shape.length !== 2) {
    throw new EngineError(`${label}: ${name} must be 2-D, has shape [${a.shape.join(",")}]`);
  }
  let data: Float32Array;
  if (a.data instanceof Float32Array && a.dtype === "float32") data = a.data;
  else if (a.dtype === "float64" || a.dtype === "float16") data = Float32Array.from(toNumbers(a));
  else throw new EngineError(`${label}: ${name} must be float32 or float64, is ${a.dtype}`);
  return featureMatrix(a.shape[0], a.shape[1], data);
}

function labelsFrom(a: NpyArray, name: string, label: string): Int32Array {
  if (a.shape.length !== 1) {
    throw new EngineError(`${label}: ${name} must be 1-D, has shape [${a.shape.join(",")}]`);
  }
  if (a.dtype !== "int64" && a.dtype !== "int32") {
    throw new EngineError(`${label}: ${name} must be int64 or int32, is ${a.dtype}`);
  }
  return Int32Array.from(toNumbers(a, `${label}: ${name}`));
}

function labelsArray(labels: Int32Array): NpyArray {
  return npyArray("int64", [labels.length], labels);
}

function matrixArray(m: FeatureMatrix): NpyArray {
  return { dtype: "float32", shape: [m.rows, m.cols], data: m.data };
}

/** The arrays of `features.npz`, keyed as in the file. */
export function featuresToArrays(f: AmuFeatures): Record<string, NpyArray> {
  return {
    train_clip: matrixArray(f.trainClip),
    train_aux: matrixArray(f.trainAux),
    train_labels: labelsArray(f.trainLabels),
    test_clip: matrixArray(f.testClip),
    test_aux: matrixArray(f.testAux),
    test_labels: labelsArray(f.testLabels),
    clip_weights: matrixArray(f.clipWeights),
    ...(f.valClip && f.valAux && f.valLabels
      ? {
        val_clip: matrixArray(f.valClip),
        val_aux: matrixArray(f.valAux),
        val_labels: labelsArray(f.valLabels),
      }
      : {}),
    ...(f.trainImage ? { train_image: labelsArray(f.trainImage) } : {}),
  };
}

export function featuresFromArrays(archive: Map<string, NpyArray>, label: string): AmuFeatures {
  const get = (k: string) => npzGet(archive, k, label);
  // Optional arrays appear as keys only when the file has them.
  const optional = <T>(key: string, name: string, read: (a: NpyArray, n: string, l: string) => T) =>
    archive.has(name) ? { [key]: read(get(name), name, label) } : {};
  const f: AmuFeatures = {
    trainClip: matrixFrom(get("train_clip"), "train_clip", label),
    trainAux: matrixFrom(get("train_aux"), "train_aux", label),
    trainLabels: labelsFrom(get("train_labels"), "train_labels", label),
    testClip: matrixFrom(get("test_clip"), "test_clip", label),
    testAux: matrixFrom(get("test_aux"), "test_aux", label),
    testLabels: labelsFrom(get("test_labels"), "test_labels", label),
    clipWeights: matrixFrom(get("clip_weights"), "clip_weights", label),
    ...optional("valClip", "val_clip", matrixFrom),
    ...optional("valAux", "val_aux", matrixFrom),
    ...optional("valLabels", "val_labels", labelsFrom),
    ...optional("trainImage", "train_image", labelsFrom),
  };
  validateFeatures(f, label);
  return f;
}

/** Writes `features.npz` and `manifest.json` into `dir` (created if needed). */
export function writeFeatureCache(
  dir: string,
  features: AmuFeatures,
  manifest: FeatureCacheManifest,
): void {
  validateFeatures(features, dir);
  if (manifest.class_names.length !== features.clipWeights.cols) {
    throw new EngineError(
      `${dir}: manifest names ${manifest.class_names.length} classes, clip_weights has ` +
        `${features.clipWeights.cols}`,
    );
  }
  Deno.mkdirSync(dir, { recursive: true });
  const arrays = featuresToArrays(features);
  writeNpz(join(dir, FEATURES_FILE), arrays);
  const shapes: Record<string, number[]> = {};
  for (const [k, a] of Object.entries(arrays)) shapes[k] = [...a.shape];
  const full: FeatureCacheManifest = {
    ...manifest,
    shapes,
    created: manifest.created ?? new Date().toISOString(),
  };
  writeFileAtomic(join(dir, MANIFEST_FILE), JSON.stringify(full, null, 2) + "\n");
}

export interface FeatureCache {
  features: AmuFeatures;
  manifest: FeatureCacheManifest;
  /** Things the reader should be told (a hand-made manifest without "format"). */
  warnings: string[];
}

/** Reads and validates a cache directory. */
export function readFeatureCache(dir: string): FeatureCache {
  const npzPath = join(dir, FEATURES_FILE);
  const manifestPath = join(dir, MANIFEST_FILE);
  let manifestText: string;
  try {
    manifestText = Deno.readTextFileSync(manifestPath);
  } catch (e) {
    throw new EngineError(
      `${dir} is not a feature cache: cannot read ${MANIFEST_FILE} (${(e as Error).message})`,
    );
  }
  let manifest: FeatureCacheManifest;
  try {
    manifest = JSON.parse(manifestText);
  } catch (e) {
    throw new EngineError(`${manifestPath}: invalid JSON (${printable((e as Error).message)})`);
  }
  const warnings: string[] = [];
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    throw new EngineError(`${manifestPath}: not a JSON object`);
  }
  if (manifest.format === undefined) {
    warnings.push(
      `warning: ${manifestPath} has no "format" (made by hand?); read as an amu-feature-cache`,
    );
  } else if (manifest.format !== "amu-feature-cache") {
    throw new EngineError(`${manifestPath}: "format" is not "amu-feature-cache"`);
  }
  const features = featuresFromArrays(readNpz(npzPath), npzPath);
  if (
    Array.isArray(manifest.class_names) &&
    manifest.class_names.length !== features.clipWeights.cols
  ) {
    throw new EngineError(
      `${manifestPath}: names ${manifest.class_names.length} classes, clip_weights has ` +
        `${features.clipWeights.cols}`,
    );
  }
  return { features, manifest, warnings };
}
