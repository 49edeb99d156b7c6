/** Measured per-adapter choice among kernel variants, with a cached result.
 *
 * Which kernel shape is fastest depends on the adapter more than on anything a heuristic can see:
 * on Mesa's llvmpipe, register tiles over textures win and shared-memory tiles lose; on real GPUs
 * the reverse. So a kernel family offers several variants, and `tuneVariants` prepares each on
 * the actual problem, runs it, and keeps the fastest. Choices are cached per adapter (description,
 * vendor, architecture, features) and per problem key, in memory and optionally in a JSON file so
 * the next process skips the measurement.
 *
 * Timing is wall clock over one command buffer of repeated invocations and one fence: the
 * timestamp queries of lavapipe stop bracketing the work once any texture was bound, and
 * relative order is all a choice needs. Tunings run one at a time in a process (concurrent ones
 * would time each other). This module knows no kernel; see `matmul_tune.ts`.
 *
 * Determinism: the cache only changes which variant runs, and every variant is tested against
 * the same CPU reference at the same tolerance; results can differ between a tuned and an
 * untuned run (or between adapters) at float32 rounding level (summation order), never more.
 * Half-precision variants are only candidates where the caller allowed rounding to float16. */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EngineError } from "../util/errors.ts";
import { type Dispatch, encodeDispatches, type Gpu, ResourceScope } from "../gpu/mod.ts";

/** One candidate: builds its dispatches for the problem (resources go to `owner`). */
export interface VariantTrial {
  readonly name: string;
  prepare(owner: ResourceScope): readonly Dispatch[];
}

export interface TrialResult {
  readonly name: string;
  /** Per-invocation wall time, ms; undefined when the candidate could not run or was pruned. */
  readonly ms?: number;
  readonly error?: string;
  /** Its first run was so much slower than the best so far that it was not timed further. */
  readonly pruned?: boolean;
}

export interface TuneResult {
  readonly chosen: string;
  /** Empty when the choice came from the cache. */
  readonly trials: readonly TrialResult[];
  readonly cached: boolean;
  /** Per-invocation time of the default (first) candidate and of the chosen one, ms, for the
   * whole problem (a sliced measurement is scaled back up); undefined when cached. */
  readonly defaultMs?: number;
  readonly chosenMs?: number;
  /** The candidates were timed on 1/slice of the problem's workgroups (1: the whole). */
  readonly slice?: number;
  /** The deadline came before every candidate was tried (the choice was not cached). */
  readonly incomplete?: boolean;
}

export interface TuneOptions {
  readonly cache?: VariantCache;
  /** Each timed batch lasts at least this long (repeats short kernels). Default 80 ms: waiting
   * for the GPU has a fixed cost (docs/engine.md), which shorter batches let dominate. */
  readonly targetMs?: number;
  /** Timed batches per candidate (the candidates take turns); the fastest counts. Default 3. */
  readonly batches?: number;
  /** Candidates whose warm run (the second) exceeds the best warm run so far by this factor are
   * not timed further. Default 2. */
  readonly pruneFactor?: number;
  /** The first trial (the kernel family's heuristic default) is kept unless another is faster by
   * more than this fraction of its time. Default 0.1. Timings on a shared CPU adapter vary by
   * 10-30%, so near-ties otherwise flip with the noise; and measured in isolation, with one
   * kernel repeated, the defaults lose near-ties they win inside a model (ResNet-50 ran slower
   * with the isolated winners than with the defaults: docs/engine.md). */
  readonly keepDefaultWithin?: number;
  /** A problem whose default kernel runs longer than this (ms) has its candidates timed on a
   * slice of their workgroups (every grid's longest axis cut to about this much work), so a
   * 1024x1024 convolution costs its candidates a few tens of ms each instead of seconds. The
   * kernels' work per workgroup is the same across a grid, so the slice ranks candidates as the
   * whole does. Default 25; Infinity times whole problems. */
  readonly sliceAboveMs?: number;
  /** `performance.now()` after which no further candidate is started: the ones measured so far
   * compete, and the choice is not cached (a later tuning measures the problem whole). */
  readonly deadline?: number;
  /** Told every measured (not cached) problem's result, candidates' times included: in-plan
   * tuning (src/onnx/tune.ts `tuneInPlan`) learns the candidates from it. */
  readonly onMeasured?: (kernel: string, problem: string, result: TuneResult) => void;
}

/** Problem key from its sizes, e.g. `1x197x768x2304` (callers fix the order per kernel). */
export function problemKey(...sizes: readonly (number | string)[]): string {
  return sizes.join("x");
}

/** Version of the kernels' variant sets. Bump it when a variant is added or a kernel changes
 * enough to reorder them: choices measured by an older engine are then measured again instead
 * of hiding the new candidates (their entries stay in the file, unused). */
export const VARIANT_SET_VERSION = 8;

/** Identifies an adapter (and the variant-set version) for cached choices. */
export function adapterKey(gpu: Gpu): string {
  const s = gpu.summary;
  return [
    s.description || "unknown",
    s.vendor,
    s.architecture,
    gpu.hasF16 ? "f16" : "no-f16",
    `v${VARIANT_SET_VERSION}`,
  ].join("|");
}

/** Measured choices: adapter -> "kernel:problem" -> variant name. */
export class VariantCache {
  readonly #byAdapter = new Map<string, Map<string, string>>();

  get(gpu: Gpu, kernel: string, problem: string): string | undefined {
    return this.#byAdapter.get(adapterKey(gpu))?.get(`${kernel}:${problem}`);
  }

  set(gpu: Gpu, kernel: string, problem: string, variant: string): void {
    const key = adapterKey(gpu);
    let m = this.#byAdapter.get(key);
    if (!m) this.#byAdapter.set(key, m = new Map());
    m.set(`${kernel}:${problem}`, variant);
  }

  get size(): number {
    let n = 0;
    for (const m of this.#byAdapter.values()) n += m.size;
    return n;
  }

  clear(): void {
    this.#byAdapter.clear();
  }

  toJSON(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const [adapter, m] of this.#byAdapter) out[adapter] = Object.fromEntries(m);
    return out;
  }

  /** Merges entries from `toJSON` output; malformed entries are ignored. */
  load(json: unknown): void {
    if (typeof json !== "object" || json === null) return;
    for (const [adapter, entries] of Object.entries(json)) {
      if (typeof entries !== "object" || entries === null) continue;
      let m = this.#byAdapter.get(adapter);
      if (!m) this.#byAdapter.set(adapter, m = new Map());
      for (const [k, v] of Object.entries(entries)) if (typeof v === "string") m.set(k, v);
    }
  }

  /** Loads a file written by `saveFile`; a missing, unreadable or corrupt file leaves the cache
   * as is. Returns whether the file was read. */
  loadFile(path: string): boolean {
    let json: unknown;
    try {
      json = JSON.parse(Deno.readTextFileSync(path));
    } catch {
      return false; // no cache yet, or not JSON: measure again
    }
    this.load(json);
    return true;
  }

  /** Writes the cache to `path` (creating its folder), keeping entries that the file already
   * holds for other adapters or problems (another process may have saved some; ours win on the
   * same key). Written to a temporary file then renamed, so a reader never sees half a file; on
   * failure (a full disk) the temporary file is removed and an EngineError names the path. */
  saveFile(path: string): void {
    const merged = new VariantCache();
    merged.loadFile(path);
    merged.load(this.toJSON());
    const tmp = `${path}.${Deno.pid}.tmp`;
    try {
      Deno.mkdirSync(dirname(path) || ".", { recursive: true });
      Deno.writeTextFileSync(tmp, JSON.stringify(merged.toJSON(), null, 2) + "\n");
      Deno.renameSync(tmp, path);
    } catch (e) {
      try {
        Deno.removeSync(tmp);
      } catch { /* nothing was written */ }
      throw new EngineError(`cannot save the variant cache ${path}: ${(e as Error).message}`);
    }
  }
}

/** The process-wide cache that kernel bindings consult (`prepareMatmul`, `prepareConv`). */
export const variantCache = new VariantCache();

/** `results/variant-cache.json` of this checkout (resolved from this module's location, so it
 * does not depend on the working directory), or relative to the working directory when the
 * engine is not loaded from files. */
export function defaultVariantCacheFile(): string {
  const url = new URL("../../results/variant-cache.json", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : join("results", "variant-cache.json");
}

/** Loads saved choices into the process-wide cache (CLIs call this at start; default file:
 * `defaultVariantCacheFile()`). A missing or corrupt file is ignored: kernels then use their
 * heuristics until tuned. Returns whether the file was read. */
export function loadVariantCacheFile(path: string = defaultVariantCacheFile()): boolean {
  return variantCache.loadFile(path);
}

/** Saves the process-wide cache (merged with the file, see VariantCache.saveFile). */
export function saveVariantCacheFile(path: string = defaultVariantCacheFile()): void {
  variantCache.saveFile(path);
}

/** Tail of the queue that serialises tunings within the process. */
let tuningQueue: Promise<unknown> = Promise.resolve();

function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const next = tuningQueue.then(fn);
  tuningQueue = next.catch(() => undefined);
  return next;
}

/** `dispatches` with every grid's longest axis cut to 1/`slice` (at least one workgroup), so
 * each part of a variant (operand packing as well as the product) keeps its share of the work. */
export function sliceDispatches(dispatches: readonly Dispatch[], slice: number): Dispatch[] {
  if (slice <= 1) return [...dispatches];
  return dispatches.map((d) => {
    const w = [...d.workgroups] as [number, number, number];
    const axis = w.indexOf(Math.max(...w));
    w[axis] = Math.max(1, Math.ceil(w[axis] / slice));
    return { ...d, workgroups: w };
  });
}

async function runBatch(gpu: Gpu, dispatches: readonly Dispatch[], reps: number): Promise<number> {
  const encoder = gpu.device.createCommandEncoder();
  for (let i = 0; i < reps; i++) encodeDispatches(encoder, dispatches);
  const t0 = performance.now();
  gpu.device.queue.submit([encoder.finish()]);
  await gpu.sync("variant tuning");
  return (performance.now() - t0) / reps;
}

/** Measures every trial on this adapter and returns the fastest (the first trial, the default,
 * unless beaten by more than `keepDefaultWithin`), caching it under (adapter, kernel, problem).
 * A cached choice is returned without measuring. */
export function tuneVariants(
  gpu: Gpu,
  kernel: string,
  problem: string,
  trials: readonly VariantTrial[],
  options: TuneOptions = {},
): Promise<TuneResult> {
  // One at a time; a duplicate request queued behind the first finds its result cached.
  return serialized(() => measure(gpu, kernel, problem, trials, options));
}

async function measure(
  gpu: Gpu,
  kernel: string,
  problem: string,
  trials: readonly VariantTrial[],
  options: TuneOptions,
): Promise<TuneResult> {
  const cache = options.cache ?? variantCache;
  const known = cache.get(gpu, kernel, problem);
  if (known !== undefined && trials.some((t) => t.name === known)) {
    return { chosen: known, trials: [], cached: true };
  }
  const targetMs = options.targetMs ?? 80;
  const batches = options.batches ?? 3;
  const pruneFactor = options.pruneFactor ?? 2;
  const sliceAboveMs = options.sliceAboveMs ?? 25;
  // Set from the default candidate's whole run (the first trial): how much of each candidate's
  // grid is timed.
  let slice = 1;
  // Whole time over sliced time of the default's warm run: how sliced times scale back up (a
  // grid too small to cut keeps more than 1/slice of its work).
  let wholeOverSliced = 1;
  let defaultWhole = 0;
  const results = new Map<string, TrialResult>();
  // Phase 1: prepare every candidate, run it cold (compiles, allocates) then warm; a candidate
  // far slower warm than the best so far is not timed further.
  interface Live {
    name: string;
    dispatches: readonly Dispatch[];
    reps: number;
    ms: number;
  }
  const live: Live[] = [];
  const scopes: ResourceScope[] = [];
  let bestWarm = Infinity;
  let incomplete = false;
  try {
    for (const trial of trials) {
      if (live.length > 0 && performance.now() > (options.deadline ?? Infinity)) {
        incomplete = true;
        break;
      }
      const scope = new ResourceScope();
      scopes.push(scope);
      try {
        const whole = await gpu.scoped(
          `${kernel} variant ${trial.name}`,
          () => trial.prepare(scope),
        );
        if (live.length === 0 && results.size === 0) {
          // The default, whole: compiles it and says whether the problem is large.
          await runBatch(gpu, whole, 1);
          defaultWhole = await runBatch(gpu, whole, 1);
          if (defaultWhole > sliceAboveMs) slice = Math.ceil(defaultWhole / sliceAboveMs);
        }
        const dispatches = sliceDispatches(whole, slice);
        await runBatch(gpu, dispatches, 1);
        const warm = await runBatch(gpu, dispatches, 1);
        if (slice > 1 && live.length === 0 && results.size === 0) {
          wholeOverSliced = Math.max(1, defaultWhole / Math.max(warm, 1e-3));
        }
        if (warm > pruneFactor * bestWarm) {
          results.set(trial.name, { name: trial.name, pruned: true });
          scope.dispose();
          continue;
        }
        bestWarm = Math.min(bestWarm, warm);
        const reps = Math.max(1, Math.min(50, Math.ceil(targetMs / Math.max(warm, 1e-3))));
        live.push({ name: trial.name, dispatches, reps, ms: Infinity });
      } catch (e) {
        results.set(trial.name, { name: trial.name, error: (e as Error).message.split("\n")[0] });
        try {
          gpu.checkHealthy("variant tuning"); // drop this candidate's leftover errors
        } catch { /* reported above */ }
        scope.dispose();
      }
    }
    // Phase 2: timed batches, the candidates taking turns, so that a change in the machine's
    // load (other processes on a shared CPU) falls on all of them; the fastest batch counts.
    for (let b = 0; b < batches; b++) {
      for (const c of live) c.ms = Math.min(c.ms, await runBatch(gpu, c.dispatches, c.reps));
    }
  } finally {
    for (const scope of scopes) scope.dispose();
  }
  let best: Live | undefined;
  for (const c of live) {
    results.set(c.name, { name: c.name, ms: c.ms });
    if (!best || c.ms < best.ms) best = c;
  }
  const first = live.find((c) => c.name === trials[0]?.name);
  const margin = options.keepDefaultWithin ?? 0.1;
  if (first && best && best.ms >= first.ms * (1 - margin)) best = first;
  const ordered = trials.map((t) => results.get(t.name)!).filter((r) => r !== undefined);
  if (!best) {
    const why = ordered.map((r) => `${r.name}: ${r.error ?? "not timed"}`).join("; ");
    throw new Error(`${kernel} ${problem}: no variant ran (${why})`);
  }
  if (!incomplete) cache.set(gpu, kernel, problem, best.name);
  const result: TuneResult = {
    incomplete,
    chosen: best.name,
    trials: ordered,
    cached: false,
    defaultMs: first ? first.ms * wholeOverSliced : undefined,
    chosenMs: best.ms * wholeOverSliced,
    slice,
  };
  options.onMeasured?.(kernel, problem, result);
  return result;
}
