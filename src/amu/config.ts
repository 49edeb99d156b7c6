/** AMU-Tuning training configuration: hyper-parameters, defaults (the reference's
 * `configs/*.yaml` and run script: lr 1e-3, 50 epochs, batch 8, alpha 0.5, lambda_merge 0.35),
 * validation, and the command-line flags that set them (named as the reference's run script
 * names them). Tasks combine `TRAINING_FLAGS` with their own groups (see `tasks/train.ts`). */
import { EngineError } from "../util/errors.ts";
import {
  isUncertaintyKind,
  UNCERTAINTY_KINDS,
  type UncertaintyKind,
} from "../kernels/amu_factor_shape.ts";
import type { FlagGroup, FlagValue } from "../util/flags.ts";

export { UNCERTAINTY_KINDS, type UncertaintyKind } from "../kernels/amu_factor_shape.ts";

export interface AmuConfig {
  /** Peak learning rate of the cosine schedule. */
  lr: number;
  epochs: number;
  batchSize: number;
  /** Weight of the auxiliary logits in the fused logits. */
  alpha: number;
  /** Weight of the fused loss; 1 - lambdaMerge weighs the auxiliary loss. */
  lambdaMerge: number;
  uncertainty: UncertaintyKind;
  uncertaintyPower: number;
  /** Seed of the batch orders (when no order is given). */
  seed: number;
  expName: string;
  /** Fixed by the method; exposed so tests and experiments can state them. */
  weightDecay: number;
  adamEps: number;
  adamBeta1: number;
  adamBeta2: number;
  /** CLIP's logit scale (100). */
  logitScale: number;
}

export const DEFAULT_AMU_CONFIG: Readonly<AmuConfig> = {
  lr: 1e-3,
  epochs: 50,
  batchSize: 8,
  alpha: 0.5,
  lambdaMerge: 0.35,
  uncertainty: "none",
  uncertaintyPower: 0.4,
  seed: 1,
  expName: "amu",
  weightDecay: 0.01,
  adamEps: 1e-4,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  logitScale: 100,
};

/** A full config from defaults and overrides, validated. */
export function amuConfig(overrides: Partial<AmuConfig> = {}): AmuConfig {
  const c = { ...DEFAULT_AMU_CONFIG, ...overrides };
  validateAmuConfig(c);
  return c;
}

export function validateAmuConfig(c: AmuConfig): void {
  const fail = (msg: string): never => {
    throw new EngineError(`config: ${msg}`);
  };
  if (!(c.lr > 0) || !Number.isFinite(c.lr)) fail(`lr must be > 0, got ${c.lr}`);
  if (!Number.isInteger(c.epochs) || c.epochs < 1) fail(`epochs must be >= 1, got ${c.epochs}`);
  if (!Number.isInteger(c.batchSize) || c.batchSize < 1) {
    fail(`batch size must be an integer >= 1, got ${c.batchSize}`);
  }
  if (!Number.isFinite(c.alpha)) fail(`alpha must be a number, got ${c.alpha}`);
  if (!(c.lambdaMerge >= 0 && c.lambdaMerge <= 1)) {
    fail(`lambda_merge must be in [0, 1], got ${c.lambdaMerge}`);
  }
  if (!isUncertaintyKind(c.uncertainty)) {
    fail(`uncertainty type '${c.uncertainty}' is not one of ${UNCERTAINTY_KINDS.join(", ")}`);
  }
  if (!Number.isFinite(c.uncertaintyPower)) fail(`uncent_power must be a number`);
  if (!Number.isInteger(c.seed)) fail(`rand_seed must be an integer, got ${c.seed}`);
  if (!/^[A-Za-z0-9_.\-]+$/.test(c.expName)) {
    fail(`exp_name '${c.expName}' may only use letters, digits, '_', '-' and '.'`);
  }
  // "." and ".." would put the run in results/ itself or above it, where a rerun or --overwrite
  // deletes run files.
  if (/^\.+$/.test(c.expName)) {
    fail(
      `exp_name '${c.expName}' names no folder inside results/: use a name with a letter or digit`,
    );
  }
  if (!(c.adamBeta1 >= 0 && c.adamBeta1 < 1 && c.adamBeta2 >= 0 && c.adamBeta2 < 1)) {
    fail("adam betas must be in [0, 1)");
  }
  if (!(c.adamEps > 0)) fail("adam eps must be > 0");
}

/** Flag name -> config key of the training flags. */
const FLAG_KEYS: Record<string, keyof AmuConfig> = {
  lr: "lr",
  train_epoch: "epochs",
  batch_size: "batchSize",
  alpha: "alpha",
  lambda_merge: "lambdaMerge",
  uncent_type: "uncertainty",
  uncent_power: "uncertaintyPower",
  rand_seed: "seed",
  exp_name: "expName",
};

const D = DEFAULT_AMU_CONFIG;

/** Training hyper-parameter flags, mapped onto AmuConfig keys by `configOverridesFromFlags`. */
export const TRAINING_FLAGS: FlagGroup = {
  title: "Training (AMU-Tuning hyper-parameters)",
  flags: [
    {
      name: "lr",
      type: "number",
      min: 0,
      exclusiveMin: true,
      help: "peak learning rate (cosine schedule over all iterations)",
      default: D.lr,
    },
    { name: "train_epoch", type: "int", min: 1, help: "epochs", default: D.epochs },
    { name: "batch_size", type: "int", min: 1, help: "training batch size", default: D.batchSize },
    {
      name: "alpha",
      type: "number",
      help: "weight of the auxiliary logits in the fusion",
      default: D.alpha,
    },
    {
      name: "lambda_merge",
      type: "number",
      min: 0,
      max: 1,
      help: "weight of the fused loss (1 - it weighs the auxiliary loss)",
      default: D.lambdaMerge,
    },
    {
      name: "uncent_type",
      type: "string",
      choices: UNCERTAINTY_KINDS,
      metavar: "TYPE",
      help: "uncertainty factor of the fusion",
      default: D.uncertainty,
    },
    {
      name: "uncent_power",
      type: "number",
      help: "power of the uncertainty factor",
      default: D.uncertaintyPower,
    },
    {
      name: "rand_seed",
      type: "int",
      help: "seed of the batch orders (ignored with --order)",
      default: D.seed,
    },
    {
      name: "exp_name",
      type: "string",
      metavar: "NAME",
      help: "run name; output goes to results/<exp_name>/",
      default: D.expName,
    },
  ],
};

/** The config keys set by parsed flags (only flags that were given). */
export function configOverridesFromFlags(values: ReadonlyMap<string, FlagValue>): Partial<
  AmuConfig
> {
  const out: Record<string, FlagValue> = {};
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    const v = values.get(flag);
    if (v !== undefined) out[key] = v;
  }
  return out as Partial<AmuConfig>;
}

/** The flag names of config keys (for messages that point at flags). */
export function flagForKey(key: keyof AmuConfig): string | undefined {
  return Object.entries(FLAG_KEYS).find(([, k]) => k === key)?.[0];
}

/** Config as the reference's snake_case names (for config.json in run directories). */
export function configToJson(c: AmuConfig): Record<string, unknown> {
  return {
    lr: c.lr,
    train_epoch: c.epochs,
    batch_size: c.batchSize,
    alpha: c.alpha,
    lambda_merge: c.lambdaMerge,
    uncent_type: c.uncertainty,
    uncent_power: c.uncertaintyPower,
    rand_seed: c.seed,
    exp_name: c.expName,
    weight_decay: c.weightDecay,
    adam_eps: c.adamEps,
    adam_betas: [c.adamBeta1, c.adamBeta2],
    logit_scale: c.logitScale,
  };
}

export function configFromJson(j: Record<string, unknown>, label: string): AmuConfig {
  const num = (k: string): number => {
    const v = j[k];
    if (typeof v !== "number") throw new EngineError(`${label}: "${k}" missing or not a number`);
    return v;
  };
  const betas = j.adam_betas;
  if (!Array.isArray(betas) || betas.length !== 2) {
    throw new EngineError(`${label}: "adam_betas" must be a pair`);
  }
  const c: AmuConfig = {
    lr: num("lr"),
    epochs: num("train_epoch"),
    batchSize: num("batch_size"),
    alpha: num("alpha"),
    lambdaMerge: num("lambda_merge"),
    uncertainty: String(j.uncent_type) as UncertaintyKind,
    uncertaintyPower: num("uncent_power"),
    seed: num("rand_seed"),
    expName: String(j.exp_name),
    weightDecay: num("weight_decay"),
    adamEps: num("adam_eps"),
    adamBeta1: Number(betas[0]),
    adamBeta2: Number(betas[1]),
    logitScale: num("logit_scale"),
  };
  validateAmuConfig(c);
  return c;
}

/** Training iterations per epoch (the last batch may be partial). */
export function itersPerEpoch(rows: number, batchSize: number): number {
  return Math.ceil(rows / batchSize);
}
