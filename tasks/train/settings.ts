/** Command line + optional config file -> the settings of one experiment. The config file (JSON,
 * or YAML such as the reference's `default.yaml`) sets flags by name; its values go through the
 * same parser as command-line flags, so they are checked the same way, and command-line flags
 * win. Then the mode is decided: the bundled demo, a dataset on disk, or a feature cache. */
import type { MethodName } from "../../src/amu/method.ts";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { EngineError } from "../../src/util/errors.ts";
import { type AmuConfig, amuConfig, configOverridesFromFlags } from "../../src/amu/config.ts";
import { type FlagGroup, type FlagValue, parseFlags } from "../../src/util/flags.ts";
import { DATASET_NAMES } from "../../src/data/datasets.ts";
import {
  DEFAULT_AUGMENT_EPOCH,
  DEFAULT_BACKBONE,
  DEFAULT_SHOTS,
  DEFAULT_VAL_BATCH,
  experimentFlagGroups,
  MODEL_FLAGS,
} from "./flags.ts";

export type FlagSource = "command line" | "config file";

export type ExperimentMode = "demo" | "dataset" | "features";

export type TuneMode = "budget" | "full" | "off";

export interface ModelChoice {
  backbone: string;
  clipModel?: string;
  clipVisual?: string;
  clipText?: string;
  /** A checkpoint (or ONNX file) holding both CLIP towers. */
  clipWeights?: string;
  /** The auxiliary encoder's file (`--aux_weights` or `--aux_model`), or "mocov3". */
  auxModel?: string;
  /** Released weights may be downloaded when not found locally. */
  download: boolean;
  bpe?: string;
  clipSize?: number;
  auxSize?: number;
}

export interface ExperimentSettings {
  mode: ExperimentMode;
  amu: AmuConfig;
  /** Dataset name as the loaders know it (demo: "imagefolder"). */
  dataset: string;
  root?: string;
  shots: number;
  numClasses?: number;
  fewshotFile?: string;
  models: ModelChoice;
  augmentEpoch: number;
  valBatchSize: number;
  /** Kernel tuning before extraction (`--tune`). */
  tune: TuneMode;
  augmentSeed: number;
  loadPreFeat: boolean;
  loadAuxWeight: boolean;
  freshFeatures: boolean;
  cacheDir?: string;
  featuresDir?: string;
  outDir: string;
  orderPath?: string;
  resume: boolean;
  overwrite: boolean;
  progressEvery: number;
  method: MethodName;
  /** Tip-Adapter(-F)'s own settings (`--init_beta`, `--init_alpha`, `--search_scale`,
   * `--search_step`). */
  tip: {
    initBeta: number;
    initAlpha: number;
    searchScale: [number, number];
    searchStep: [number, number];
  };
  /** Every flag that was set, and where. */
  values: ReadonlyMap<string, FlagValue>;
  sources: ReadonlyMap<string, FlagSource>;
  configFile?: string;
  /** The command line as given. */
  argv: readonly string[];
}

/** `--dataset` spellings: case, '-' and '_' are ignored; the reference's class names map too. */
const DATASET_ALIASES: Record<string, string> = {
  fgvcaircraft: "fgvc",
  aircraft: "fgvc",
  flowers102: "oxford_flowers",
  oxfordflowers102: "oxford_flowers",
  flowers: "oxford_flowers",
  pets: "oxford_pets",
  cars: "stanford_cars",
  describabletextures: "dtd",
  caltech: "caltech101",
  food: "food101",
};

export function normalizeDatasetName(name: string): string {
  const squash = (s: string) => s.toLowerCase().replace(/[-_\s]/g, "");
  const key = squash(name);
  const found = DATASET_NAMES.find((d) => squash(d) === key) ?? DATASET_ALIASES[key];
  if (!found) {
    throw new EngineError(
      `--dataset: unknown dataset '${name}' (known: ${DATASET_NAMES.join(", ")})`,
    );
  }
  return found;
}

/** Reads a JSON or YAML config file into flag name -> raw value. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new EngineError(`--config: cannot read ${path}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = path.toLowerCase().endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new EngineError(`--config ${path}: not valid JSON/YAML: ${(e as Error).message}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new EngineError(`--config ${path}: expected a mapping of flag names to values`);
  }
  return data as Record<string, unknown>;
}

/** Config-file values as command-line arguments (so the flag parser checks them). */
function configArgs(data: Record<string, unknown>, path: string): string[] {
  const args: string[] = [];
  for (const [key, value] of Object.entries(data)) {
    if (key === "config") {
      throw new EngineError(`--config ${path}: a config file cannot set 'config'`);
    }
    // An empty value means "not set" (the reference's default.yaml has root_path: "").
    if (value === null || value === undefined || value === "") continue;
    if (typeof value === "object") {
      throw new EngineError(`--config ${path}: '${key}' must be a single value, not a list or map`);
    }
    args.push(`--${key}=${String(value)}`);
  }
  return args;
}

/** The flags a config file sets, checked by the flag parser; its complaints name the file (the
 * file's own errors already do). */
function parseConfigFile(
  path: string,
  groups: readonly FlagGroup[],
): ReadonlyMap<string, FlagValue> {
  const args = configArgs(readConfigFile(path), path);
  try {
    return parseFlags(args, groups).values;
  } catch (e) {
    if (e instanceof EngineError) throw new EngineError(`--config ${path}: ${e.message}`);
    throw e;
  }
}

const MODEL_FLAG_NAMES = MODEL_FLAGS.flags.map((f) => f.name);
/** Pairs of model flags that name the same model two ways. */
const MODEL_FLAG_CLASHES: readonly (readonly [string, string])[] = [
  ["aux_weights", "aux_model"],
  ["clip_weights", "clip_model"],
  ["clip_weights", "clip_visual"],
  ["clip_weights", "clip_text"],
];
const DATA_ONLY = ["dataset", "root_path", "shots", "num_classes", "fewshot_file"];
const EXTRACTION_ONLY = [
  "augment_epoch",
  "tune",
  "val_batch_size",
  "torch_rand_seed",
  "load_pre_feat",
  "load_aux_weight",
  "fresh_features",
  "cache_dir",
];

/** Parses argv (and the config file it names) into settings, or "help". */
export function parseExperimentArgs(
  argv: readonly string[],
  groups: readonly FlagGroup[] = experimentFlagGroups(),
): ExperimentSettings | "help" {
  const cli = parseFlags(argv, groups);
  if (cli.help) return "help";
  const values = new Map<string, FlagValue>();
  const sources = new Map<string, FlagSource>();
  const configFile = cli.values.get("config") as string | undefined;
  if (configFile) {
    for (const [k, v] of parseConfigFile(configFile, groups)) {
      values.set(k, v);
      sources.set(k, "config file");
    }
  }
  for (const [k, v] of cli.values) {
    values.set(k, v);
    sources.set(k, "command line");
  }
  return settingsFrom(values, sources, configFile, argv);
}

function settingsFrom(
  values: Map<string, FlagValue>,
  sources: Map<string, FlagSource>,
  configFile: string | undefined,
  argv: readonly string[],
): ExperimentSettings {
  const str = (k: string) => values.get(k) as string | undefined;
  const num = (k: string) => values.get(k) as number | undefined;
  const bool = (k: string) => values.get(k) === true;
  const mode = experimentMode(values);
  const overrides = configOverridesFromFlags(values);
  if (mode === "demo" && !values.has("exp_name")) overrides.expName = "demo";
  const amu = amuConfig(overrides);
  const dataset = mode === "demo"
    ? "imagefolder"
    : normalizeDatasetName(str("dataset") ?? "imagenet");
  const out = str("out");
  return {
    mode,
    amu,
    dataset: mode === "features" ? "" : dataset,
    root: str("root_path") ? resolve(str("root_path")!) : undefined,
    shots: num("shots") ?? DEFAULT_SHOTS,
    numClasses: num("num_classes"),
    fewshotFile: str("fewshot_file"),
    models: {
      backbone: str("clip_backbone") ?? DEFAULT_BACKBONE,
      clipModel: str("clip_model"),
      clipVisual: str("clip_visual"),
      clipText: str("clip_text"),
      clipWeights: str("clip_weights"),
      auxModel: str("aux_weights") ?? str("aux_model"),
      download: !bool("no-download"),
      bpe: str("bpe"),
      clipSize: num("clip_size"),
      auxSize: num("aux_size"),
    },
    augmentEpoch: num("augment_epoch") ?? DEFAULT_AUGMENT_EPOCH,
    valBatchSize: num("val_batch_size") ?? DEFAULT_VAL_BATCH,
    tune: (str("tune") ?? "budget") as TuneMode,
    augmentSeed: num("torch_rand_seed") ?? 1,
    loadPreFeat: bool("load_pre_feat"),
    loadAuxWeight: bool("load_aux_weight"),
    freshFeatures: bool("fresh_features"),
    cacheDir: str("cache_dir"),
    featuresDir: str("features"),
    outDir: out ? resolve(out) : resolve("results", amu.expName),
    orderPath: str("order"),
    resume: bool("resume"),
    overwrite: bool("overwrite"),
    progressEvery: num("progress_every") ?? 0,
    method: (str("method") ?? "amu") as MethodName,
    tip: {
      initBeta: num("init_beta") ?? 1,
      initAlpha: num("init_alpha") ?? 1.17,
      searchScale: numberPair("search_scale", str("search_scale") ?? "7,3", false),
      searchStep: numberPair("search_step", str("search_step") ?? "200,20", true),
    },
    values,
    sources,
    configFile,
    argv: [...argv],
  };
}

/** The demo, a dataset on disk, or a feature cache, from which flags were given; flags that
 * do not apply to the mode (or name one model twice) are errors. */
function experimentMode(values: ReadonlyMap<string, FlagValue>): ExperimentMode {
  const given = (names: readonly string[]) => names.filter((n) => values.has(n));
  for (const [a, b] of MODEL_FLAG_CLASHES) {
    if (values.has(a) && values.has(b)) {
      throw new EngineError(`--${a} and --${b} both name a model file; give one`);
    }
  }
  if (values.get("features")) {
    const clash = given([...DATA_ONLY, ...MODEL_FLAG_NAMES, ...EXTRACTION_ONLY, "demo"]);
    if (clash.length) {
      throw new EngineError(
        `--features trains from a feature cache; ${clash.map((c) => `--${c}`).join(", ")} ` +
          `only apply when extracting features from images`,
      );
    }
    return "features";
  }
  const nothingToTrainOn = given(["dataset", "root_path", ...MODEL_FLAG_NAMES]).length === 0;
  if (values.get("demo") === true || nothingToTrainOn) {
    const clash = given([
      "dataset",
      "root_path",
      "fewshot_file",
      "num_classes",
      ...MODEL_FLAG_NAMES,
    ]);
    if (clash.length) {
      throw new EngineError(
        `--demo uses its own images and models; drop ${clash.map((c) => `--${c}`).join(", ")}`,
      );
    }
    return "demo";
  }
  if (!values.has("root_path")) {
    throw new EngineError(
      `--root_path DIR is needed to train on a dataset (with no dataset and no model flags, ` +
        `\`deno task train\` runs the bundled demo; --help lists the flags)`,
    );
  }
  return "dataset";
}

/** `B,A`: two positive numbers (integers for `steps`), naming the flag when malformed. */
function numberPair(flag: string, text: string, steps: boolean): [number, number] {
  const parts = text.split(",").map((x) => Number(x.trim()));
  const ok = parts.length === 2 &&
    parts.every((x) => Number.isFinite(x) && x > 0 && (!steps || Number.isInteger(x)));
  if (!ok) {
    throw new EngineError(
      `--${flag} ${text}: expected two ${steps ? "positive integers" : "positive numbers"} ` +
        `B,A (beta, alpha), e.g. ${steps ? "200,20" : "7,3"}`,
    );
  }
  return [parts[0], parts[1]];
}
