/** Kernel tuning at first use: before a plan prepares its dispatches, every node whose operator
 * can measure its kernel variants (`OpImpl.tune`: MatMul, Gemm, Conv) has its problem measured on
 * the adapter unless a choice is cached already, so that preparing the node picks the fastest
 * variant (the kernel bindings consult the cache). Distinct problems are measured once per
 * adapter and process (and across processes through the cache file). */
import { type Dispatch, encodeDispatches, type Gpu } from "../gpu/mod.ts";
import {
  defaultVariantCacheFile,
  type TuneOptions,
  type TuneResult,
  VariantCache,
  variantCache,
} from "../kernels/variants.ts";
import type { Graph } from "./graph.ts";
import { analyze, type InputFacts, type Step } from "./analyze.ts";
import { type ConstantUploader, Plan } from "./plan.ts";
import { onNode } from "./ops/common.ts";
import type { ComputePrecision, KernelTuning, OpImpl, TuneOpContext } from "./types.ts";

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
      const found = await onNode(step.node, () => step.op.tune!(ctx), "tune");
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

// ---- In-plan tuning ------------------------------------------------------------------------
// `tuneSteps` times each problem's candidates alone, one kernel repeated; inside a model the
// kernel runs between others (caches, texture/buffer traffic, the neighbours' layouts), and
// near-ties measured alone can lose there (see `TuneOptions.keepDefaultWithin`). In-plan tuning
// starts from the isolated choices and, problem by problem, builds the whole plan with each
// candidate swapped in and times the plan's full command stream; a candidate replaces the
// current choice only when the whole plan gets faster by more than `keepWithin`.

/** What in-plan tuning needs of a model (a `Model` provides all but `facts` and `ops`). */
export interface InPlanTarget {
  readonly gpu: Gpu;
  readonly graph: Graph;
  readonly ops: ReadonlyMap<string, OpImpl>;
  /** Where the plans' constants come from (the model). */
  readonly constants: ConstantUploader;
  readonly precision: ComputePrecision;
  /** The input dtypes and shapes to plan for. */
  readonly facts: ReadonlyMap<string, InputFacts>;
}

export interface InPlanTuningOptions extends KernelTuningOptions {
  /** Where the final choices go (default: the process-wide cache). The isolated phase measures
   * into a private cache, so existing choices there do not skip it. */
  readonly cache?: VariantCache;
  /** Rounds of whole-plan runs, the candidates taking turns (the fastest counts). Default 3. */
  readonly planBatches?: number;
  /** A candidate must make the whole plan faster by more than this fraction of its time to
   * replace the current choice. Default 0.1, as `keepDefaultWithin`: whole-plan times of
   * ResNet-50 on the shared 2-core llvmpipe machine moved by 25% or more between rounds while
   * other processes ran (docs/tuning.md), and smaller margins then swap kernels on noise. */
  readonly keepWithin?: number;
}

export interface InPlanProblem {
  readonly kernel: string;
  readonly problem: string;
  /** Candidates' isolated times, ms (undefined: errored or pruned). */
  readonly isolatedMs: Readonly<Record<string, number | undefined>>;
  readonly isolated: string;
  /** Whole-plan time with each candidate tried in place, ms. */
  readonly planMs: Readonly<Record<string, number>>;
  readonly inPlan: string;
}

export interface InPlanSummary {
  readonly problems: readonly InPlanProblem[];
  /** Whole-plan time with the isolated choices and with the in-plan ones, ms. */
  readonly isolatedPlanMs: number;
  readonly inPlanMs: number;
  /** Plan with every problem at its kernels' default (first) variant, ms. */
  readonly defaultPlanMs: number;
  readonly ms: number;
  /** Problems not tried in place because the budget was spent (in either phase; a node the
   * isolated phase did not reach counts once). */
  readonly deferred: number;
}

/** Per-invocation wall time of a plan's dispatches: one warm run, then `batches` (default 1)
 * command buffers of repeated invocations (at least `targetMs` each) with one fence; the fastest
 * batch. */
async function timePlan(
  gpu: Gpu,
  dispatches: readonly Dispatch[],
  batches: number | undefined,
  targetMs: number,
): Promise<number> {
  const run = async (reps: number) => {
    const encoder = gpu.device.createCommandEncoder();
    for (let i = 0; i < reps; i++) encodeDispatches(encoder, dispatches);
    const t0 = performance.now();
    gpu.device.queue.submit([encoder.finish()]);
    await gpu.sync("in-plan tuning");
    return (performance.now() - t0) / reps;
  };
  await run(1);
  const warm = await run(1);
  const reps = Math.max(1, Math.min(20, Math.ceil(targetMs / Math.max(warm, 1e-3))));
  let best = Infinity;
  for (let b = 0; b < (batches ?? 1); b++) best = Math.min(best, await run(reps));
  return best;
}

/** Noise in [-1, 1) for float inputs: plans are timed on data, not on zeroed buffers. */
function fillInputs(gpu: Gpu, plan: Plan): void {
  let s = 12345;
  for (const t of plan.inputBuffers.values()) {
    if (t.dtype !== "float32") continue;
    const a = new Float32Array(t.buffer.size / 4);
    for (let i = 0; i < a.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      a[i] = s / 2147483648 - 1;
    }
    gpu.device.queue.writeBuffer(t.buffer, 0, a);
  }
}

/** A cache copy with `entries` ("kernel:problem" -> variant) set on top of `base`. */
function cacheWith(
  gpu: Gpu,
  base: VariantCache,
  entries: ReadonlyMap<string, string>,
): VariantCache {
  const c = new VariantCache();
  c.load(base.toJSON());
  for (const [key, v] of entries) {
    const at = key.indexOf(":");
    c.set(gpu, key.slice(0, at), key.slice(at + 1), v);
  }
  return c;
}

/** Isolated tuning of every problem of the plan, then the in-place comparison described above,
 * within the same budget rule as `tuneSteps` (base budget plus a share of the kernel time it
 * serves). The in-plan choices are written to `options.cache` (and its file, unless
 * `cacheFile` is null). */
export async function tuneInPlan(
  target: InPlanTarget,
  options: InPlanTuningOptions = {},
): Promise<InPlanSummary> {
  const { gpu, graph, ops, constants, precision, facts } = target;
  const t0 = performance.now();
  const analysis = analyze(graph, ops, facts);
  const measured = new Map<string, TuneResult>();
  const isolatedCache = new VariantCache();
  const iso = await tuneSteps(gpu, analysis.steps, precision, {
    ...options,
    cacheFile: null,
    onMeasured: (kernel, problem, r) => measured.set(`${kernel}:${problem}`, r),
  }, isolatedCache);
  const batches = options.planBatches ?? 3;
  const targetMs = options.targetMs ?? 80;
  const keepWithin = options.keepWithin ?? 0.1;
  // One budget for both phases, by `tuneSteps`'s rule (base plus a share of the kernel time it
  // serves): the in-place phase gets what the isolated one left.
  const budget = (options.budgetMs ?? DEFAULT_TUNING_BUDGET_MS) +
    TUNING_BUDGET_SHARE * (options.workRuns ?? 1) * iso.defaultMs;

  const planTime = async (cache: VariantCache, reps?: number): Promise<number> => {
    const plan = await Plan.create(gpu, graph, analysis, constants, "in-plan tuning", {
      precision,
      variantCache: cache,
    });
    try {
      fillInputs(gpu, plan);
      return await timePlan(gpu, plan.dispatches, reps, targetMs);
    } finally {
      plan.dispose();
    }
  };
  // Plans timed in turns, one batch each per round, the fastest batch counting: a change in the
  // machine's load (a shared CPU adapter) then falls on every candidate alike, not on whichever
  // was timed last. One plan lives at a time (a large model's activations are not doubled).
  const compare = async (caches: readonly VariantCache[]): Promise<number[]> => {
    const best = caches.map(() => Infinity);
    for (let round = 0; round < batches; round++) {
      for (const [i, c] of caches.entries()) best[i] = Math.min(best[i], await planTime(c));
    }
    return best;
  };
  const defaults = new Map<string, string>();
  for (const [key, r] of measured) if (r.trials[0]) defaults.set(key, r.trials[0].name);

  // Problems with a choice to make, largest first: they have the most to gain when the budget
  // runs out.
  const order = [...measured.entries()].filter(([, r]) =>
    r.trials.filter((t) => t.ms !== undefined).length > 1
  ).sort((a, b) => (b[1].defaultMs ?? 0) - (a[1].defaultMs ?? 0));
  const current = new Map<string, string>();
  const problems: InPlanProblem[] = [];
  let deferred = 0;
  for (const [i, [key, r]] of order.entries()) {
    if (performance.now() - t0 > budget) {
      deferred = order.length - i;
      break;
    }
    const at = key.indexOf(":");
    const [kernel, problem] = [key.slice(0, at), key.slice(at + 1)];
    const names = [
      r.chosen,
      ...r.trials.filter((t) => t.ms !== undefined && t.name !== r.chosen)
        .map((t) => t.name),
    ];
    const times = await compare(
      names.map((n) => cacheWith(gpu, isolatedCache, new Map(current).set(key, n))),
    );
    const planMs = Object.fromEntries(names.map((n, j) => [n, times[j]]));
    // The isolated choice stays unless a candidate makes the whole plan clearly faster.
    let best = r.chosen;
    for (const [j, n] of names.entries()) {
      if (times[j] < times[0] * (1 - keepWithin) && times[j] < planMs[best]) best = n;
    }
    if (best !== r.chosen) current.set(key, best);
    problems.push({
      kernel,
      problem,
      isolatedMs: Object.fromEntries(r.trials.map((t) => [t.name, t.ms])),
      isolated: r.chosen,
      planMs,
      inPlan: best,
    });
    options.log?.(
      `  in-plan ${kernel} ${problem}: isolated ${r.chosen}, in plan ${best} ` +
        `(${names.map((n, j) => `${n} ${times[j].toFixed(1)}`).join(", ")} ms)`,
    );
  }
  const finalCache = cacheWith(gpu, isolatedCache, current);
  const [defaultPlanMs, isolatedPlanMs, inPlanMs] = await compare([
    cacheWith(gpu, isolatedCache, defaults),
    isolatedCache,
    finalCache,
  ]);
  const out = options.cache ?? variantCache;
  out.load(finalCache.toJSON());
  const file = options.cacheFile === undefined ? defaultVariantCacheFile() : options.cacheFile;
  if (file !== null && measured.size > 0) out.saveFile(file);
  return {
    problems,
    isolatedPlanMs,
    inPlanMs,
    defaultPlanMs,
    ms: performance.now() - t0,
    deferred: deferred + iso.deferred,
  };
}

/** The in-plan target of a loaded model at the given input shapes (every input's dtype from the
 * graph); `ops` must be the operator table the model was loaded with (default: all). */
export function inPlanTarget(
  model: {
    readonly gpu: Gpu;
    readonly graph: Graph;
    readonly precision: ComputePrecision;
  } & ConstantUploader,
  shapes: Readonly<Record<string, readonly number[]>>,
  ops: ReadonlyMap<string, OpImpl>,
): InPlanTarget {
  const facts = new Map<string, InputFacts>();
  for (const decl of model.graph.inputs) {
    const shape = shapes[decl.name];
    if (!shape) throw new Error(`in-plan tuning: no shape for input '${decl.name}'`);
    facts.set(decl.name, { dtype: decl.dtype, shape });
  }
  return {
    gpu: model.gpu,
    graph: model.graph,
    ops,
    constants: model,
    precision: model.precision,
    facts,
  };
}
