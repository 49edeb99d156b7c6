/** Which model files an experiment uses (checkpoints or ONNX: weights/ conventions, explicit
 * paths, released checkpoints found or downloaded by src/data/released_weights.ts), their
 * SHA-256s (memoised by path, size and mtime, since hashing a 300 MB tower on every run would be
 * slow), and lazy loaders that build encoders with the right preprocessing: input size from the
 * model's declared input (or a flag), CLIP normalisation for CLIP and ImageNet's for the
 * auxiliary encoder, the text context from the model and the tokenizer's largest id, so a text
 * model over a smaller vocabulary is refused when it loads. */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import type { Gpu } from "../../src/gpu/mod.ts";
import type { KernelTuningOptions } from "../../src/onnx/mod.ts";
import { loadTowerModel } from "../../src/models/model_file.ts";
import {
  availableClipModels,
  clipCacheDir,
  releasedAux,
  releasedClip,
  resolveReleased,
} from "../../src/data/released_weights.ts";
import { Encoder } from "../../src/models/encoder.ts";
import {
  clipImage,
  imagenetImage,
  type TextPreprocessing,
} from "../../src/models/preprocessing.ts";
import { towerFromEncoder } from "../../src/data/extract.ts";
import type {
  LazyImageTower,
  LazyTextTower,
  LoadedImageTower,
  LoadedTextTower,
  ModelFile,
} from "../../src/data/feature_pipeline.ts";
import type { FileHashes } from "../../src/data/file_hashes.ts";
import { type PromptTokenizer, textEncodeFn } from "../../src/data/text_features.ts";
import { REPO_ROOT } from "../../src/data/assets.ts";
import type { ModelChoice } from "./settings.ts";
import { DEFAULT_AUX_FILE } from "./flags.ts";

/** `ViT-B/16` -> `ViT-B-16` (file names cannot hold '/'). */
export function backboneFileName(backbone: string): string {
  return backbone.trim().replaceAll("/", "-");
}

export interface ModelPaths {
  clipVisual: string;
  clipText: string;
  aux: string;
  /** Short name for cache directories ("RN50", "ViT-B-16", a file stem). */
  tag: string;
}

function mustExist(path: string, what: string, hint: string): string {
  if (!existsSync(path)) throw new EngineError(`${what} not found: ${path}\n  ${hint}`);
  return path;
}

export interface ResolveOptions {
  /** Folder of the weights/ conventions. */
  readonly weightsDir?: string;
  /** Where released checkpoints are cached (default: clip.load's ~/.cache/clip). */
  readonly cacheDir?: string;
  readonly log?: (line: string) => void;
}

/** A file stem usable in cache folder names. */
function stem(p: string): string {
  return p.split("/").pop()!.replace(/\.(onnx|pt|pth|pth\.tar|tar|safetensors)$/, "")
    .replace(/\.visual$/, "").replace(/[^A-Za-z0-9_.\-]/g, "_");
}

/** The CLIP file(s) of `--clip_backbone NAME`: OpenAI's checkpoint in weights/ or clip.load's
 * cache, the ONNX pair in weights/, else a download; a name OpenAI did not release is looked for
 * under the same names but never downloaded. */
async function backboneFiles(
  choice: ModelChoice,
  weightsDir: string,
  cacheDir: string,
  log: (line: string) => void,
): Promise<{ visual: string; text: string }> {
  const name = backboneFileName(choice.backbone);
  const onnx = [join(weightsDir, `${name}.visual.onnx`), join(weightsDir, `${name}.text.onnx`)];
  const released = releasedClip(choice.backbone);
  if (released) {
    const [visual, text = visual] = await resolveReleased(released.name, {
      what: `CLIP ${released.name}`,
      download: choice.download,
      weightsDir,
      cacheDir,
      standIn: onnx,
      log,
    });
    return { visual, text };
  }
  const checkpoints = [join(weightsDir, `${name}.pt`), join(cacheDir, `${name}.pt`)];
  const found = checkpoints.find((p) => existsSync(p));
  if (found) return { visual: found, text: found };
  if (onnx.every((p) => existsSync(p))) return { visual: onnx[0], text: onnx[1] };
  throw new EngineError(
    `CLIP model '${choice.backbone}' not found; looked at:\n` +
      [...checkpoints, ...onnx].map((p) => `    ${p}`).join("\n") +
      `\n  '${choice.backbone}' is not one of OpenAI's released models (` +
      `${availableClipModels().join(", ")}); pass --clip_weights FILE`,
  );
}

/** The auxiliary encoder: `--aux_weights FILE|mocov3`, else weights/mocov3_rn50.onnx, else MoCo
 * v3's released checkpoint (weights/, the cache, or a download). */
async function auxFile(
  choice: ModelChoice,
  weightsDir: string,
  cacheDir: string,
  log: (line: string) => void,
): Promise<string> {
  const given = choice.auxModel;
  if (given && !releasedAux(given)) {
    return mustExist(resolve(given), "--aux_weights", "check the path");
  }
  if (!given && existsSync(join(weightsDir, DEFAULT_AUX_FILE))) {
    return join(weightsDir, DEFAULT_AUX_FILE);
  }
  const [path] = await resolveReleased(given ?? "mocov3", {
    what: "auxiliary encoder (MoCo v3 ResNet-50)",
    download: choice.download,
    weightsDir,
    cacheDir,
    log,
  });
  return path;
}

/** Paths of the three models from the flags and the weights/ conventions (weights/README.md);
 * a CLIP checkpoint serves as both towers. Released checkpoints are downloaded when missing
 * unless `choice.download` is false. */
export async function resolveModelPaths(
  choice: ModelChoice,
  opts: ResolveOptions = {},
): Promise<ModelPaths> {
  const weightsDir = opts.weightsDir ?? join(REPO_ROOT, "weights");
  const cacheDir = opts.cacheDir ?? clipCacheDir();
  const log = opts.log ?? (() => {});
  let visual: string, text: string, tag: string;
  if (choice.clipWeights) {
    visual = text = mustExist(resolve(choice.clipWeights), "--clip_weights", "check the path");
    tag = stem(visual);
  } else if (choice.clipModel) {
    const prefix = resolve(choice.clipModel);
    const hint = `the files PATH.visual.onnx and PATH.text.onnx (--clip_model ${choice.clipModel})`;
    visual = mustExist(`${prefix}.visual.onnx`, "CLIP image tower", hint);
    text = mustExist(`${prefix}.text.onnx`, "CLIP text tower", hint);
    tag = stem(prefix);
  } else if (!choice.clipVisual || !choice.clipText) {
    ({ visual, text } = await backboneFiles(choice, weightsDir, cacheDir, log));
    tag = backboneFileName(choice.backbone);
  } else {
    visual = "";
    text = "";
    tag = "";
  }
  if (choice.clipVisual) {
    visual = mustExist(resolve(choice.clipVisual), "--clip_visual", "check the path");
    tag = stem(visual);
  }
  if (choice.clipText) text = mustExist(resolve(choice.clipText), "--clip_text", "check the path");
  const aux = await auxFile(choice, weightsDir, cacheDir, log);
  return { clipVisual: visual, clipText: text, aux, tag };
}

/** A model file's record for the manifest: its SHA-256 (from `hashes`' memo while the file's
 * size and mtime are unchanged). */
export async function modelFile(
  role: string,
  path: string,
  hashes: FileHashes,
): Promise<ModelFile> {
  const h = await hashes.hash(path);
  hashes.save();
  return { role, path: h.path, sha256: h.sha256, bytes: h.bytes };
}

/** Side of a square image input the model declares (dims [batch, 3, H, W]), if fixed. */
function declaredSize(
  dims: readonly (number | string | undefined)[] | undefined,
): number | undefined {
  const h = dims?.[2], w = dims?.[3];
  return typeof h === "number" && h === w ? h : undefined;
}

export interface LoadLog {
  (line: string): void;
}

/** A lazily loaded image tower: CLIP normalisation for CLIP, ImageNet's for the aux encoder. */
export function lazyImageTower(
  file: ModelFile,
  kind: "clip" | "aux",
  sizeOverride: number | undefined,
  gpu: () => Promise<Gpu>,
  log: LoadLog,
  tuneKernels: KernelTuningOptions | false = false,
): LazyImageTower {
  return {
    file,
    sizeOverride: sizeOverride ?? null,
    normalization: kind === "clip" ? "CLIP mean/std" : "ImageNet mean/std",
    async load(): Promise<LoadedImageTower> {
      const t0 = performance.now();
      const tower = kind === "clip" ? "visual" : undefined;
      const model = await loadTowerModel(file.path, tower, {
        gpu: await gpu(),
        maxPlans: 4,
        tuneKernels,
      });
      for (const w of model.warnings) log(w);
      try {
        const input = model.inputs[0];
        const size = sizeOverride ?? declaredSize(input?.dims) ?? 224;
        const pre = kind === "clip" ? clipImage(size) : imagenetImage(size);
        const encoder = new Encoder(model, pre);
        log(
          `loaded ${file.role} ${file.path} (${size}px, ${
            kind === "clip" ? "CLIP" : "ImageNet"
          } normalisation, ${encoder.featureDim ?? "?"}-d) in ${secs(t0)}`,
        );
        return {
          ...towerFromEncoder(file.role, encoder),
          featureDim: encoder.featureDim,
          dispose: () => encoder.dispose(),
        };
      } catch (e) {
        model.dispose();
        throw rejected(kind === "clip" ? "CLIP image tower" : "auxiliary encoder", e);
      }
    },
  };
}

/** Largest id a tokenizer emits (the model's embedding table needs more rows). */
export interface SizedTokenizer extends PromptTokenizer {
  readonly maxTokenId: number;
}

/** A lazily loaded CLIP text tower with its tokenizer. */
export function lazyTextTower(
  file: ModelFile,
  tokenizer: () => SizedTokenizer,
  tokenizerId: string,
  gpu: () => Promise<Gpu>,
  log: LoadLog,
  tuneKernels: KernelTuningOptions | false = false,
): LazyTextTower {
  return {
    file,
    tokenizerId,
    async load(): Promise<LoadedTextTower> {
      const t0 = performance.now();
      const tok = tokenizer();
      const model = await loadTowerModel(file.path, "text", {
        gpu: await gpu(),
        maxPlans: 4,
        tuneKernels,
      });
      for (const w of model.warnings) log(w);
      try {
        const ids = model.inputs.find((d) => d.dtype === "int64" || d.dtype === "int32");
        const declared = ids?.dims?.[1];
        const contextLength = typeof declared === "number" ? declared : 77;
        const pre: TextPreprocessing = { kind: "text", contextLength, maxTokenId: tok.maxTokenId };
        const encoder = new Encoder(model, pre);
        log(
          `loaded ${file.role} ${file.path} (context ${contextLength}, vocabulary ` +
            `${encoder.vocabSize ?? "?"}, ${encoder.featureDim ?? "?"}-d) in ${secs(t0)}`,
        );
        return {
          encode: textEncodeFn(encoder),
          contextLength,
          tokenizer: tok,
          featureDim: encoder.featureDim,
          dispose: () => encoder.dispose(),
        };
      } catch (e) {
        model.dispose();
        throw rejected("CLIP text tower", e);
      }
    },
  };
}

/** An encoder's refusal, saying which of the experiment's models it concerns. */
function rejected(what: string, e: unknown): unknown {
  return e instanceof EngineError ? new EngineError(`${what} rejected: ${e.message}`) : e;
}

function secs(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}
