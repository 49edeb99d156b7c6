/** Prompt templates for CLIP zero-shot text weights, as AMU-Tuning / Tip-Adapter use them:
 * ImageNet ensembles seven templates; the ten other benchmarks use one each. */
import { EngineError } from "../util/errors.ts";

export const IMAGENET_TEMPLATES: readonly string[] = [
  "itap of a {}.",
  "a bad photo of the {}.",
  "a origami {}.",
  "a photo of the large {}.",
  "a {} in a video game.",
  "art of the {}.",
  "a photo of the small {}.",
];

/** Templates per dataset name (the `--dataset` values). */
export const DATASET_TEMPLATES: Readonly<Record<string, readonly string[]>> = {
  imagenet: IMAGENET_TEMPLATES,
  caltech101: ["a photo of a {}."],
  oxford_pets: ["a photo of a {}, a type of pet."],
  stanford_cars: ["a photo of a {}."],
  oxford_flowers: ["a photo of a {}, a type of flower."],
  food101: ["a photo of {}, a type of food."],
  fgvc: ["a photo of a {}, a type of aircraft."],
  sun397: ["a photo of a {}."],
  dtd: ["{} texture."],
  eurosat: ["a centered satellite photo of {}."],
  ucf101: ["a photo of a person doing {}."],
  imagefolder: ["a photo of a {}."],
};

export function templatesFor(dataset: string): readonly string[] {
  const t = DATASET_TEMPLATES[dataset];
  if (!t) {
    throw new EngineError(
      `no prompt templates for dataset '${dataset}' (known: ${
        Object.keys(DATASET_TEMPLATES).join(", ")
      })`,
    );
  }
  return t;
}

/** Prompts for one class: each template with the class name (underscores as spaces). */
export function classPrompts(className: string, templates: readonly string[]): string[] {
  const name = className.replaceAll("_", " ");
  return templates.map((t) => t.replace("{}", name));
}

/** Zero-shot class weights [dim, classes] (column c = class c): the mean of the L2-normalised
 * template embeddings, re-normalised. `embeddings` is [classes * templates, dim], class-major. */
export function classWeightsFromEmbeddings(
  embeddings: Float32Array,
  classes: number,
  templates: number,
  dim: number,
): Float32Array {
  if (embeddings.length !== classes * templates * dim) {
    throw new EngineError(
      `text embeddings: ${embeddings.length} values, expected ${classes}x${templates}x${dim}`,
    );
  }
  const out = new Float32Array(dim * classes);
  const mean = new Float64Array(dim);
  for (let c = 0; c < classes; c++) {
    mean.fill(0);
    for (let t = 0; t < templates; t++) {
      const row = (c * templates + t) * dim;
      let norm = 0;
      for (let d = 0; d < dim; d++) norm += embeddings[row + d] ** 2;
      norm = Math.sqrt(norm) || 1;
      for (let d = 0; d < dim; d++) mean[d] += embeddings[row + d] / norm / templates;
    }
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += mean[d] ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let d = 0; d < dim; d++) out[d * classes + c] = mean[d] / norm;
  }
  return out;
}
