/** `deno task train` from a feature cache: flag groups, parsing into a run request, and the run
 * itself with console output. The flag table is split into groups so the end-to-end pipeline
 * (datasets, encoders) can add its own groups and reuse the training and output ones. */
import { resolve } from "node:path";
import { EngineError } from "../util/errors.ts";
import { getGpu } from "../gpu/mod.ts";
import { readFeatureCache } from "../data/feature_cache.ts";
import { readNpy } from "../util/npy.ts";
import {
  type AmuConfig,
  amuConfig,
  configOverridesFromFlags,
  configToJson,
  TRAINING_FLAGS,
} from "./config.ts";
import { type FlagGroup, type FlagValue, formatHelp, parseFlags } from "../util/flags.ts";
import { orderFromNpy } from "./order.ts";
import { trainAmu, type TrainResult } from "./train.ts";

export const FEATURE_FLAGS: FlagGroup = {
  title: "Features",
  flags: [
    {
      name: "features",
      type: "string",
      metavar: "DIR",
      help: "feature cache directory (features.npz + manifest.json) to train from",
    },
  ],
};

export const OUTPUT_FLAGS: FlagGroup = {
  title: "Run",
  flags: [
    {
      name: "out",
      type: "string",
      metavar: "DIR",
      help: "output directory (default: results/<exp_name>/)",
    },
    {
      name: "order",
      type: "string",
      metavar: "FILE.npy",
      help: "replay this batch order (int64 [epochs, N]; every run saves its own as order.npy)",
    },
    {
      name: "resume",
      type: "boolean",
      help: "continue the interrupted run in the output directory from its last checkpoint",
    },
    {
      name: "progress_every",
      type: "int",
      min: 0,
      metavar: "STEPS",
      help: "print the running loss every STEPS iterations within an epoch (0: per epoch only)",
      default: 0,
    },
  ],
};

export const TRAIN_USAGE = "usage: deno task train --features CACHE_DIR [flags]";

const TRAIN_FOOTER = `Trains AMU-Tuning's auxiliary head on cached features on the GPU and writes
<out>/metrics.json, order.npy, config.json, checkpoint_last.npz, checkpoint_best.npz, train.log.`;

/** Flag groups of the feature-cache training command, in help order. */
export function trainFlagGroups(): FlagGroup[] {
  return [FEATURE_FLAGS, TRAINING_FLAGS, OUTPUT_FLAGS];
}

export function trainHelp(groups: readonly FlagGroup[] = trainFlagGroups()): string {
  return formatHelp(TRAIN_USAGE, groups, TRAIN_FOOTER);
}

/** What a parsed command line asks for. */
export interface TrainRequest {
  config: AmuConfig;
  featuresDir: string;
  outDir: string;
  orderPath?: string;
  resume: boolean;
  progressEvery: number;
  /** Every given flag, by name (for groups other code adds). */
  values: ReadonlyMap<string, FlagValue>;
}

/** Parses argv into a request, or returns "help". Unknown flags are errors. */
export function parseTrainArgs(
  argv: readonly string[],
  groups: readonly FlagGroup[] = trainFlagGroups(),
): TrainRequest | "help" {
  const { values, help } = parseFlags(argv, groups);
  if (help) return "help";
  const featuresDir = values.get("features") as string | undefined;
  if (!featuresDir) {
    throw new EngineError(`--features CACHE_DIR is required\n${TRAIN_USAGE} (--help for flags)`);
  }
  const config = amuConfig(configOverridesFromFlags(values));
  const out = values.get("out") as string | undefined;
  return {
    config,
    featuresDir,
    outDir: out ?? resolve("results", config.expName),
    orderPath: values.get("order") as string | undefined,
    resume: values.get("resume") === true,
    progressEvery: (values.get("progress_every") as number | undefined) ?? 0,
    values,
  };
}

/** Runs a parsed request, printing the adapter, the config and one line per epoch. */
export async function runTrainRequest(
  req: TrainRequest,
  print: (line: string) => void = console.log,
): Promise<TrainResult> {
  let config = req.config;
  const { features, manifest } = readFeatureCache(req.featuresDir);
  let order: Int32Array | undefined;
  if (req.orderPath) {
    const o = orderFromNpy(readNpy(req.orderPath), req.orderPath);
    if (req.values.has("train_epoch") && o.epochs !== config.epochs) {
      throw new EngineError(
        `${req.orderPath} holds ${o.epochs} epochs of batches, --train_epoch is ${config.epochs}`,
      );
    }
    config = amuConfig({ ...config, epochs: o.epochs });
    order = o.order;
  }
  const gpu = await getGpu();
  print(`adapter: ${gpu.describe()}`);
  print(
    `features: ${req.featuresDir} (dataset ${manifest.dataset ?? "?"}, shots ` +
      `${manifest.shots ?? "?"}, ${manifest.class_names?.length ?? "?"} classes)`,
  );
  print(`config: ${JSON.stringify(configToJson(config))}`);
  print(`output: ${req.outDir}`);
  const result = await trainAmu(config, features, {
    gpu,
    outDir: req.outDir,
    order,
    resume: req.resume,
    log: print,
    featuresSource: resolve(req.featuresDir),
    progressSteps: req.progressEvery > 0 ? req.progressEvery : undefined,
    onProgress: req.progressEvery > 0
      ? (p) => print(`  epoch ${p.epoch} iter ${p.iter}/${p.iters}  loss ${p.meanLoss.toFixed(4)}`)
      : undefined,
  });
  return result;
}
