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

/** How a model tunes kernels (`ModelOptions.tuneKernels`; the cache is the model's). */
export interface KernelTuningOptions extends Omit<TuneOptions, "cache"> {
  /** File of saved choices: read into the cache before the first tuning (once per process) and
   * written back, merged, after a plan's tuning measured something new. Default
   * `defaultVariantCacheFile()` (results/variant-cache.json); null keeps choices in memory. */
  readonly cacheFile?: string | null;
  /** Progress lines (what was measured, and how long it took). */
  readonly log?: (line: string) => void;
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
  let failed = 0;
  for (const step of steps) {
    const op = step.op;
    if (!op.tune) continue;
    const ctx: TuneOpContext = {
      ...step.ctx,
      gpu,
      inputInfos: step.inputs,
      outputInfos: step.outputs,
      precision,
      tuning,
    };
    try {
      const found = await atNode(step.node, "tune", () => op.tune!(ctx));
      for (const r of found) {
        const key = `${r.kernel}:${r.problem}`;
        // The first sighting tells whether it was measured; repeats are cache hits.
        if (!results.has(key)) results.set(key, r);
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
  if (measured > 0) {
    for (const r of all.filter((r) => !r.cached)) {
      options.log?.(`  ${r.kernel} ${r.problem}: ${r.chosen}`);
    }
    options.log?.(
      `tuned ${measured} kernel problem(s) in ${(ms / 1000).toFixed(2)} s ` +
        `(${all.length - measured} cached)`,
    );
    if (file !== null) {
      try {
        cache.saveFile(file);
      } catch (e) {
        options.log?.(`could not save the variant cache ${file}: ${(e as Error).message}`);
      }
    }
  }
  return { problems: all.length, measured, failed, ms, results: all };
}
