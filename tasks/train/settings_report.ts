/** What a run says about its settings: every flag's effective value (experiment.json records
 * them) and the settings block printed before any work, with paths shown relative to the
 * working directory. */
import { configToJson } from "../../src/amu/config.ts";
import type { DataPlan } from "./data_plan.ts";
import type { ModelPaths } from "./models.ts";
import type { ExperimentSettings } from "./settings.ts";

/** `p` relative to the working directory when it lies inside it. */
export function shortPath(p: string): string {
  const cwd = Deno.cwd();
  return p.startsWith(cwd + "/") ? p.slice(cwd.length + 1) : p;
}

/** Every flag's effective value (given, from the config file, or its default). */
export function resolvedSettings(s: ExperimentSettings): Record<string, unknown> {
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

export function printSettings(
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
