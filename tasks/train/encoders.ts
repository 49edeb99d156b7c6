/** The three encoders of an experiment (CLIP image and text towers, the auxiliary encoder), as
 * the feature pipeline and the sweeps' store take them: files hashed for cache keys, the
 * tokenizer chosen, towers loaded only when a part must be extracted. */
import type { Gpu } from "../../src/gpu/mod.ts";
import { setupKernelTuning } from "../../src/onnx/mod.ts";
import type { FileHashes } from "../../src/data/file_hashes.ts";
import type { LazyImageTower, LazyTextTower, ModelFile } from "../../src/data/feature_pipeline.ts";
import { ClipTokenizer } from "../../src/data/tokenizer.ts";
import { byteTokenizer } from "./demo.ts";
import {
  lazyImageTower,
  lazyTextTower,
  modelFile,
  type ModelPaths,
  type SizedTokenizer,
} from "./models.ts";
import type { ExperimentSettings } from "./settings.ts";

export interface Encoders {
  files: { clip: ModelFile; text: ModelFile; aux: ModelFile };
  clip: LazyImageTower;
  aux: LazyImageTower;
  text: LazyTextTower;
}

/** Hashes the model files and the BPE file (none: the demo's byte tokenizer) and prepares lazy
 * towers; kernel tuning follows `s.tune`, its budget scaled by the `rows` to encode. */
export async function prepareEncoders(
  s: ExperimentSettings,
  models: ModelPaths,
  bpePath: string | undefined,
  hashes: FileHashes,
  gpu: Gpu,
  say: (line: string) => void,
  rows: number,
): Promise<Encoders> {
  let tokenizerId: string;
  let makeTokenizer: () => SizedTokenizer;
  if (bpePath) {
    const path = bpePath;
    tokenizerId = (await modelFile("bpe", path, hashes)).sha256;
    makeTokenizer = () => {
      const tok = ClipTokenizer.fromFile(path);
      return {
        maxTokenId: tok.vocabSize - 1,
        tokenizeBatch: (texts, o) => tok.tokenizeBatch(texts, o),
      };
    };
  } else {
    tokenizerId = "demo-byte-tokenizer";
    makeTokenizer = byteTokenizer;
  }
  const files = {
    clip: await modelFile("clip_visual", models.clipVisual, hashes),
    text: await modelFile("clip_text", models.clipText, hashes),
    aux: await modelFile("aux", models.aux, hashes),
  };
  const gpuFn = () => Promise.resolve(gpu);
  // Saved kernel choices (e.g. from `deno task tune`) apply in every mode; new problems are
  // measured within a budget that grows with the rows this extraction will encode.
  const tuning = setupKernelTuning({ tune: s.tune !== "off" });
  const tuneKernels = tuning && {
    ...tuning,
    progress: say,
    budgetMs: s.tune === "full" ? Infinity : undefined,
    workRuns: Math.max(1, Math.ceil(rows / s.valBatchSize)),
  };
  return {
    files,
    clip: lazyImageTower(files.clip, "clip", s.models.clipSize, gpuFn, say, tuneKernels),
    aux: lazyImageTower(files.aux, "aux", s.models.auxSize, gpuFn, say, tuneKernels),
    text: lazyTextTower(files.text, makeTokenizer, tokenizerId, gpuFn, say, tuneKernels),
  };
}
