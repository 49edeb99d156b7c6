/** Which ONNX files an experiment uses (weights/ conventions, explicit paths, the demo's generated
 * models), their SHA-256s (memoised by path, size and mtime, since hashing a 300 MB tower on
 * every run would be slow), and lazy loaders that build encoders with the right preprocessing:
 * input size from the model's declared input (or a flag), CLIP normalisation for CLIP and
 * ImageNet's for the auxiliary encoder, the text context from the model and the tokenizer's
 * largest id, so a text model over a smaller vocabulary is refused when it loads. */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { EngineError } from "../../src/gpu/errors.ts";
import type { Gpu } from "../../src/gpu/mod.ts";
import { loadModel } from "../../src/onnx/mod.ts";
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
import { sha256File } from "../../src/data/feature_cache.ts";
import { writeFileAtomic } from "../../src/data/npy.ts";
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

/** Paths of the three models from the flags and the weights/ conventions (weights/README.md). */
export function resolveModelPaths(choice: ModelChoice, weightsDir = join(REPO_ROOT, "weights")) {
  const name = backboneFileName(choice.backbone);
  const prefix = choice.clipModel ? resolve(choice.clipModel) : join(weightsDir, name);
  const from = choice.clipModel ? `--clip_model ${choice.clipModel}` : `--clip_backbone ${name}`;
  const readme = "see weights/README.md for where to get it";
  const clipVisual = choice.clipVisual
    ? mustExist(resolve(choice.clipVisual), "--clip_visual", "check the path")
    : mustExist(
      `${prefix}.visual.onnx`,
      `CLIP image tower (${from})`,
      `${readme}, or pass --clip_visual PATH (with no dataset and no model flags, ` +
        "`deno task train` runs the bundled demo)",
    );
  const clipText = choice.clipText
    ? mustExist(resolve(choice.clipText), "--clip_text", "check the path")
    : mustExist(
      `${prefix}.text.onnx`,
      `CLIP text tower (${from})`,
      `${readme}, or pass --clip_text PATH`,
    );
  const aux = choice.auxModel
    ? mustExist(resolve(choice.auxModel), "--aux_model", "check the path")
    : mustExist(
      join(weightsDir, DEFAULT_AUX_FILE),
      "auxiliary encoder",
      `${readme} (MoCo v3 ResNet-50), or pass --aux_model PATH`,
    );
  const stem = (p: string) =>
    p.split("/").pop()!.replace(/\.onnx$/, "").replace(/\.visual$/, "").replace(
      /[^A-Za-z0-9_.\-]/g,
      "_",
    );
  const tag = choice.clipVisual ? stem(clipVisual) : choice.clipModel ? stem(prefix) : name;
  return { clipVisual, clipText, aux, tag } satisfies ModelPaths;
}

interface HashMemo {
  [path: string]: { size: number; mtime: number; sha256: string };
}

/** SHA-256 of a model file, memoised in `memoFile` by (path, size, mtime). */
export async function modelFile(role: string, path: string, memoFile?: string): Promise<ModelFile> {
  const abs = resolve(path);
  const st = Deno.statSync(abs);
  const mtime = st.mtime?.getTime() ?? 0;
  let memo: HashMemo = {};
  if (memoFile && existsSync(memoFile)) {
    try {
      memo = JSON.parse(Deno.readTextFileSync(memoFile));
    } catch { /* rebuilt below */ }
  }
  const hit = memo[abs];
  let sha256: string;
  if (hit && hit.size === st.size && hit.mtime === mtime) sha256 = hit.sha256;
  else {
    sha256 = await sha256File(abs);
    if (memoFile) {
      memo[abs] = { size: st.size, mtime, sha256 };
      Deno.mkdirSync(dirname(memoFile), { recursive: true });
      writeFileAtomic(memoFile, JSON.stringify(memo, null, 1) + "\n");
    }
  }
  return { role, path: abs, sha256, bytes: st.size };
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
): LazyImageTower {
  return {
    file,
    sizeOverride: sizeOverride ?? null,
    async load(): Promise<LoadedImageTower> {
      const t0 = performance.now();
      const model = await loadModel(file.path, await gpu(), { maxPlans: 4 });
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
): LazyTextTower {
  return {
    file,
    tokenizerId,
    async load(): Promise<LoadedTextTower> {
      const t0 = performance.now();
      const tok = tokenizer();
      const model = await loadModel(file.path, await gpu(), { maxPlans: 4 });
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
