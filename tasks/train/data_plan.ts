/** The dataset side of a run on images: the dataset listed, its prompt templates, and the
 * few-shot training list (sampled with the run's seed, or replayed from --fewshot_file). */
import { join, resolve } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import {
  type Dataset,
  IMAGE_TYPES,
  type LabeledImage,
  loadDataset,
  loadImageFolder,
  sampleFewShot,
} from "../../src/data/datasets.ts";
import { templatesFor } from "../../src/data/prompts.ts";
import { seededRandom } from "../../src/util/random.ts";
import { readFewShotFile } from "./results.ts";
import type { ExperimentSettings } from "./settings.ts";

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
