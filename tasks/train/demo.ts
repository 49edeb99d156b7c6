/** The bundled demo's inputs, generated on first use (no downloads): a labelled image folder of
 * coloured shapes and three CLIP/ResNet-shaped ONNX models with seeded random weights. The models
 * are untrained, so the demo's accuracies only show the pipeline working. When CLIP's BPE file is
 * not around (a fresh clone without the shared data), prompts are tokenized by a byte-level
 * stand-in so the demo still runs. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { writeDemoImageFolder } from "../../src/data/demo_data.ts";
import { writeFileAtomic } from "../../src/util/npy.ts";
import { demoAuxModel, demoTextModel, demoVisionModel } from "../../src/models/demo_models.ts";
import type { SizedTokenizer } from "./models.ts";

/** Bumped when the generated assets change, so old ones are regenerated. */
const DEMO_VERSION = 1;

export interface DemoAssets {
  root: string;
  imageRoot: string;
  clipVisual: string;
  clipText: string;
  aux: string;
  generated: boolean;
}

export const DEMO_NOTE =
  "DEMO: generated images (5 classes of coloured shapes) and generated, UNTRAINED CLIP-shaped " +
  "and ResNet-shaped models.\n      Its accuracies only show the pipeline working; for real " +
  "results pass --dataset/--root_path and models (see --help and weights/README.md).";

/** Writes the demo's images and models under `dir` unless they are there already. */
export function ensureDemoAssets(dir: string, log: (line: string) => void): DemoAssets {
  const marker = join(dir, "demo.json");
  const assets: DemoAssets = {
    root: dir,
    imageRoot: join(dir, "images"),
    clipVisual: join(dir, "models", "demo.visual.onnx"),
    clipText: join(dir, "models", "demo.text.onnx"),
    aux: join(dir, "models", "demo_aux.onnx"),
    generated: false,
  };
  let ok = false;
  if (existsSync(marker)) {
    try {
      ok = JSON.parse(Deno.readTextFileSync(marker)).version === DEMO_VERSION &&
        [assets.clipVisual, assets.clipText, assets.aux].every((p) => existsSync(p));
    } catch {
      ok = false;
    }
  }
  if (ok) return assets;
  const t0 = performance.now();
  if (existsSync(dir)) Deno.removeSync(dir, { recursive: true });
  Deno.mkdirSync(join(dir, "models"), { recursive: true });
  writeDemoImageFolder(assets.imageRoot, {
    trainPerClass: 16,
    testPerClass: 10,
    size: 40,
    seed: 1,
  });
  Deno.writeFileSync(assets.clipVisual, demoVisionModel(1));
  Deno.writeFileSync(assets.clipText, demoTextModel(2));
  Deno.writeFileSync(assets.aux, demoAuxModel(3));
  writeFileAtomic(marker, JSON.stringify({ version: DEMO_VERSION }) + "\n");
  log(
    `generated the demo's images and models in ${dir} in ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  assets.generated = true;
  return assets;
}

/** Stand-in tokenizer when CLIP's BPE file is absent: start token, the prompt's UTF-8 bytes as
 * ids 0-255 (valid ids of CLIP's vocabulary), end token. Only for the untrained demo models. */
export function byteTokenizer(): SizedTokenizer {
  const sot = 49406, eot = 49407;
  const utf8 = new TextEncoder();
  return {
    maxTokenId: eot,
    tokenizeBatch(texts, { contextLength }) {
      const out = new Float64Array(texts.length * contextLength);
      texts.forEach((t, row) => {
        const bytes = utf8.encode(t.toLowerCase()).subarray(0, contextLength - 2);
        const ids = [sot, ...bytes, eot];
        out.set(ids, row * contextLength);
      });
      return out;
    },
  };
}
