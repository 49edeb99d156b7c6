/** The baselines of `deno task train --method`, on the same features as AMU: each writes its
 * run folder's metrics.json (src/amu/method.ts) and config.json, so a run is recognised as
 * finished like an AMU run. */
import { join } from "node:path";
import type { Gpu } from "../../src/gpu/mod.ts";
import type { AmuFeatures } from "../../src/models/features.ts";
import { writeFileAtomic } from "../../src/util/npy.ts";
import type { MethodResult } from "../../src/amu/method.ts";
import {
  runTipAdapter,
  runTipAdapterF,
  TIP_ADAPTER_DEFAULTS,
  type TipAdapterConfig,
} from "../../src/amu/tip_adapter.ts";
import { runZeroShot } from "../../src/amu/zero_shot.ts";
import { LINEAR_PROBE_DEFAULTS, runLinearProbe } from "../../src/amu/linear_probe.ts";
import { RUN_FILES } from "../../src/amu/run_dir.ts";
import type { ExperimentSettings } from "./settings.ts";

export interface BaselineRun {
  gpu: Gpu;
  /** A replayed batch order (Tip-Adapter-F), as --order gives it, and its epochs. */
  order?: { order: Int32Array; epochs: number };
  log: (line: string) => void;
}

/** Tip-Adapter's config from the run's flags (--lr, --train_epoch, --batch_size, --rand_seed
 * and the Tip-Adapter flags); what the command line leaves unset takes Tip-Adapter's own
 * defaults (20 epochs, batch 256), not AMU's. `epochs` is the count --order implies, if any. */
export function tipConfig(s: ExperimentSettings, epochs?: number): TipAdapterConfig {
  const given = (flag: string) => s.values.has(flag);
  return {
    init_beta: s.tip.initBeta,
    init_alpha: s.tip.initAlpha,
    search_scale: s.tip.searchScale,
    search_step: s.tip.searchStep,
    lr: given("lr") ? s.amu.lr : TIP_ADAPTER_DEFAULTS.lr,
    train_epoch: epochs ?? (given("train_epoch") ? s.amu.epochs : TIP_ADAPTER_DEFAULTS.train_epoch),
    batch_size: given("batch_size") ? s.amu.batchSize : TIP_ADAPTER_DEFAULTS.batch_size,
    seed: s.amu.seed,
  };
}

/** The hyper-parameters a baseline ran with, for config.json. */
function configOf(s: ExperimentSettings, epochs?: number): Record<string, unknown> {
  switch (s.method) {
    case "tip-adapter":
    case "tip-adapter-f":
      return { ...tipConfig(s, epochs) };
    case "linear-probe":
      return { ...LINEAR_PROBE_DEFAULTS };
    default:
      return {};
  }
}

/** Runs a baseline and writes its results into `outDir`. */
export async function runBaseline(
  s: ExperimentSettings,
  features: AmuFeatures,
  outDir: string,
  run: BaselineRun,
): Promise<MethodResult> {
  const options = { gpu: run.gpu, log: run.log };
  let result: MethodResult;
  switch (s.method) {
    case "zero-shot":
      result = await runZeroShot(features, { gpu: run.gpu });
      break;
    case "tip-adapter":
      result = await runTipAdapter(features, tipConfig(s), options);
      break;
    case "tip-adapter-f":
      result = await runTipAdapterF(features, tipConfig(s, run.order?.epochs), {
        ...options,
        order: run.order?.order,
      });
      break;
    case "linear-probe":
      result = await runLinearProbe(features, LINEAR_PROBE_DEFAULTS, options);
      break;
    case "amu":
      throw new Error("AMU runs through trainAmu");
  }
  // Only the common record: large diagnostics (search grids, keys) stay out of metrics.json.
  const record: MethodResult = {
    method: result.method,
    zero_shot_acc: result.zero_shot_acc,
    final: result.final,
    ...(result.search_split ? { search_split: result.search_split } : {}),
    ...(result.epochs ? { epochs: result.epochs } : {}),
  };
  writeFileAtomic(
    join(outDir, RUN_FILES.config),
    JSON.stringify({ method: s.method, config: configOf(s, run.order?.epochs) }, null, 2) + "\n",
  );
  writeFileAtomic(join(outDir, RUN_FILES.metrics), JSON.stringify(record, null, 2) + "\n");
  return record;
}
