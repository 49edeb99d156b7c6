/** Kernel tuning at first use: before a plan prepares its dispatches, every node whose operator
 * can measure its kernel variants (`OpImpl.tune`: MatMul, Gemm, Conv) has its problem measured on
 * the adapter unless a choice is cached already, so that preparing the node picks the fastest
 * variant (the kernel bindings consult the cache). Distinct problems are measured once per
 * adapter and process (and across processes through the cache file). */
import type { Gpu } from "../gpu/mod.ts";
import {
  defaultVariantCacheFile,
  type TuneOptions,
  type VariantCache,
  variantCache,
} from "../kernels/variants.ts";
import { atNode, type Step } from "./plan.ts";
import type { ComputePrecision, KernelTuning, TuneOpContext } from "./types.ts";

/** Time tuning may take before the rest of a plan's problems keep their default kernels
 * (`KernelTuningOptions.budgetMs`), and how it grows with the work it serves. */
export const DEFAULT_TUNING_BUDGET_MS = 10_000;
/** Share of the run's estimated kernel time (default kernels, times `workRuns`) added to the
 * budget: tuning may cost at most about half of what it can speed up. */
export const TUNING_BUDGET_SHARE = 0.5;
/** Tuning shorter than this says nothing unless asked (`log`). */
const QUIET_TUNING_MS = 2_000;

/** How a model tunes kernels (`ModelOptions.tuneKernels`; the cache is the model's). */
export interface KernelTuningOptions extends Omit<TuneOptions, "cache"> {
  /** File of saved choices: read into the cache before the first tuning (once per process) and
   * written back, merged, after a plan's tuning measured something new. Default
   * `defaultVariantCacheFile()` (results/variant-cache.json); null keeps choices in memory. */
  readonly cacheFile?: string | null;
  /** Progress lines (what was measured, and how long it took). */
  readonly log?: (line: string) => void;
  /** Where a tuning that takes more than about two seconds says so (progress every few seconds
   * and a one-line summary), verbose or not; the CLIs pass stderr, train its log. */
  readonly progress?: (line: string) => void;
  /** Base time budget of one plan's tuning, ms (default DEFAULT_TUNING_BUDGET_MS). It grows by
   * TUNING_BUDGET_SHARE of the measured default kernel time times `workRuns`. Problems left
   * when it is spent keep their default kernels and are measured in a later run (their choice
   * is not saved). Infinity: measure everything (`deno task tune`, `--tune full`). */
  readonly budgetMs?: number;
  /** How many times the plan will run (batches of an extraction); default 1. */
  readonly workRuns?: number;
}

/** What tuning a plan did. */
export interface TuningSummary {
  /** Distinct kernel problems of the plan with a tunable kernel. */
  readonly problems: number;
  /** Problems measured now (the rest were cached). */
  readonly measured: number;
  /** Nodes whose tuning failed (their kernels fall back to the default choice). */
  readonly failed: number;
  readonly ms: number;
  readonly results: readonly KernelTuning[];
  /** Tunable nodes not measured because the budget was spent (they run default kernels). */
  readonly deferred: number;
  /** The budget it ran under, ms (Infinity for a full search). */
  readonly budgetMs: number;
  /** Summed per-run time of the measured problems' default and chosen kernels, ms. */
  readonly defaultMs: number;
  readonly chosenMs: number;
}

/** Cache files already read, per cache (a file is loaded once per process). */
const loadedFiles = new WeakMap<VariantCache, Set<string>>();

/** What a command-line tool does at start: loads the saved choices (`cacheFile`, default
 * results/variant-cache.json; null: none) into the process-wide cache, so that kernels use them
 * even without tuning, and returns the `tuneKernels` option for its models and encoders: false
 * when `tune` is false, else tuning that saves new choices back to the same file. A missing or
 * corrupt file is ignored. */
export function setupKernelTuning(
  options: { tune?: boolean; cacheFile?: string | null; log?: (line: string) => void } = {},
): false | KernelTuningOptions {
  const file = options.cacheFile === undefined ? defaultVariantCacheFile() : options.cacheFile;
  if (file !== null) {
    let loaded = loadedFiles.get(variantCache);
    if (!loaded) loadedFiles.set(variantCache, loaded = new Set());
    loaded.add(file);
    if (variantCache.loadFile(file)) {
      options.log?.(`kernel variants: ${variantCache.size} saved choice(s) from ${file}`);
    }
  }
  return options.tune === false ? false : { cacheFile: file, log: options.log };
}

/** Resolves `tuneKernels` (true: defaults) to options, or undefined when tuning is off. */
export function kernelTuningOptions(
  option: boolean | KernelTuningOptions | undefined,
): KernelTuningOptions | undefined {
  if (option === undefined || option === false) return undefined;
  return option === true ? {} : option;
}

/** Tunes the kernel problems of `steps` not cached yet (in plan order, one at a time), then
 * saves the cache file when anything was measured. A node whose tuning fails is reported in
 * the log and prepared with the default choice. */
export async function tuneSteps(
  gpu: Gpu,
  steps: readonly Step[],
  precision: ComputePrecision,
  options: KernelTuningOptions,
  cache: VariantCache = variantCache,
): Promise<TuningSummary> {
  const file = options.cacheFile === undefined ? defaultVariantCacheFile() : options.cacheFile;
  if (file !== null) {
    let loaded = loadedFiles.get(cache);
    if (!loaded) loadedFiles.set(cache, loaded = new Set());
    if (!loaded.has(file)) {
      loaded.add(file);
      cache.loadFile(file);
    }
  }
  const t0 = performance.now();
  const tuning: TuneOptions = { ...options, cache };
  const results = new Map<string, KernelTuning>();
  const tunable = steps.filter((step) => step.op.tune);
  const base = options.budgetMs ?? DEFAULT_TUNING_BUDGET_MS;
  const runs = options.workRuns ?? 1;
  let defaultMs = 0, chosenMs = 0;
  const budget = () => base + TUNING_BUDGET_SHARE * runs * defaultMs;
  let failed = 0, deferred = 0, lastProgress = t0;
  const seconds = (ms: number) => Number.isFinite(ms) ? `${(ms / 1000).toFixed(0)} s` : "none";
  for (const [i, step] of tunable.entries()) {
    const now = performance.now();
    if (now - t0 > budget()) {
      deferred = tunable.length - i;
      break;
    }
    if (options.progress && now - t0 > QUIET_TUNING_MS && now - lastProgress > QUIET_TUNING_MS) {
      lastProgress = now;
      options.progress(
        `tuning kernels: ${i}/${tunable.length} problems, ${seconds(now - t0)}, budget ` +
          seconds(budget()),
      );
    }
    const ctx: TuneOpContext = {
      ...step.ctx,
      gpu,
      inputInfos: step.inputs,
      outputInfos: step.outputs,
      precision,
      // A problem started near the end of the budget stops starting candidates at its end.
      tuning: { ...tuning, deadline: t0 + budget() },
    };
    try {
      const found = await atNode(step.node, "tune", () => step.op.tune!(ctx));
      for (const r of found) {
        const key = `${r.kernel}:${r.problem}`;
        // The first sighting tells whether it was measured; repeats are cache hits.
        if (results.has(key)) continue;
        results.set(key, r);
        if (!r.cached && r.defaultMs !== undefined && r.chosenMs !== undefined) {
          defaultMs += r.defaultMs;
          chosenMs += r.chosenMs;
        }
      }
    } catch (e) {
      failed++;
      options.log?.(
        `kernel tuning skipped for node '${step.node.name}' (${step.node.opType}): ` +
          `${(e as Error).message.split("\n")[0]}`,
      );
    }
  }
  const all = [...results.values()];
  const measured = all.filter((r) => !r.cached).length;
  const ms = performance.now() - t0;
  for (const r of all.filter((r) => !r.cached)) {
    options.log?.(`  ${r.kernel} ${r.problem}: ${r.chosen}`);
  }
  const summary = `kernel tuning: measured ${measured} problem(s) in ${(ms / 1000).toFixed(1)} s ` +
    `(budget ${seconds(budget())}, ${all.length - measured} cached)` +
    (deferred > 0
      ? `; ${deferred} left at default kernels until a later run or ` +
        "`deno task tune`"
      : "") +
    (measured > 0
      ? `; measured kernels ${defaultMs.toFixed(1)} ms per run with defaults, ` +
        `${chosenMs.toFixed(1)} ms as chosen`
      : "");
  // Said once: where progress goes when the tuning was long enough to show, else to the log.
  if (options.progress && (ms > QUIET_TUNING_MS || deferred > 0)) options.progress(summary);
  else if (measured > 0 || deferred > 0) options.log?.(summary);
  if (measured > 0 && file !== null) {
    try {
      cache.saveFile(file);
    } catch (e) {
      // Not fatal (the choices are in use for this run), but said where the user looks.
      const warn = options.progress ?? options.log ?? ((line: string) => console.warn(line));
      warn(`warning: ${(e as Error).message}; kernel choices will be measured again next run`);
    }
  }
  return {
    problems: all.length,
    measured,
    failed,
    ms,
    results: all,
    deferred,
    budgetMs: budget(),
    defaultMs,
    chosenMs,
  };
}
