/** Timing loops. A run is `reps` back-to-back invocations (each its own submit, as a user would
 * issue them) followed by one fence; the per-invocation time of a run is its elapsed time divided
 * by `reps`, and a row reports the median over runs after warm-up. Our replayed dispatches are
 * also timed GPU-side (a timestamp pair around each invocation's pass) when the device offers
 * `timestamp-query`. Peers and host-driven runs use the wall clock with the same structure, so
 * wall-clock numbers compare like with like. */
import { type Dispatch, encodeDispatches, type Gpu } from "../gpu/mod.ts";
import { chooseReps, chooseRuns, summarize } from "./stats.ts";
import { GpuTimer } from "./timestamps.ts";
import type { Measurement } from "./types.ts";

export interface TimingOptions {
  /** Timed runs; the median counts. */
  readonly runs: number;
  /** Fewest runs when the budget cuts runs short. */
  readonly minRuns: number;
  /** Untimed invocations before the runs (after the checked first one). */
  readonly warmups: number;
  /** A run lasts about this long: short invocations are repeated within it. */
  readonly targetRunMs: number;
  readonly maxReps: number;
  /** Time allowed for one runner's timed runs on one row; slow runners get fewer runs. */
  readonly budgetMs: number;
}

export const DEFAULT_TIMING: TimingOptions = {
  runs: 5,
  minRuns: 3,
  warmups: 1,
  // Waiting for the GPU has a fixed cost per wait (an empty submit and fence; docs/engine.md):
  // runs of 250 ms keep it a small share of a row, for us and the peers alike.
  targetRunMs: 250,
  maxReps: 50,
  budgetMs: 12_000,
};

/** A checked first invocation longer than this many target runs already warmed everything up
 * (pipelines, first-touch memory): the separate warm-up is skipped (saves a model inference). */
const LONG_FIRST_RUN = 10;

function warmupCount(opts: TimingOptions, firstMs: number | undefined): number {
  return firstMs !== undefined && firstMs > LONG_FIRST_RUN * opts.targetRunMs
    ? 0
    : Math.max(1, opts.warmups);
}

/** Plans reps and runs from the warm-up's per-invocation time. */
function plan(singleMs: number, opts: TimingOptions): { reps: number; runs: number } {
  const reps = chooseReps(singleMs, opts.targetRunMs, opts.maxReps);
  return { reps, runs: chooseRuns(singleMs * reps, opts.runs, opts.minRuns, opts.budgetMs) };
}

function submit(gpu: Gpu, dispatches: readonly Dispatch[], writes?: GPUComputePassTimestampWrites) {
  const encoder = gpu.device.createCommandEncoder();
  encodeDispatches(encoder, dispatches, writes);
  gpu.device.queue.submit([encoder.finish()]);
}

/** GPU time over wall time (both per invocation, the wall clock amortising one fence over a
 * command buffer of `reps` invocations) accepted as consistent. GPU time excludes submit and
 * pass overheads, so it is at most a little above the wall clock; far below it means the
 * timestamps did not bracket the work. lavapipe does that after any texture was bound: every
 * later pass then reads ~0.02 ms whatever it runs (Mesa 22.3). */
export const TIMESTAMP_CONSISTENCY = { min: 0.5, max: 1.25 };

/** Times replayed dispatches: GPU-side when the device has timestamps and they agree with the
 * wall clock, else by the wall clock over one command buffer of `reps` invocations. Also times
 * one submit per invocation (the peers' structure), reported as `wall` for ratios. `firstMs`:
 * the checked first invocation's time (a long one stands in for the warm-up). */
export async function measureDispatches(
  gpu: Gpu,
  dispatches: readonly Dispatch[],
  opts: TimingOptions = DEFAULT_TIMING,
  firstMs?: number,
): Promise<Measurement> {
  const warmups = warmupCount(opts, firstMs);
  let single = warmups === 0 ? firstMs! : Infinity;
  for (let i = 0; i < warmups; i++) {
    const t0 = performance.now();
    submit(gpu, dispatches);
    await gpu.sync("benchmark warm-up");
    single = Math.min(single, performance.now() - t0);
  }
  const { reps, runs } = plan(single, opts);
  const timer = GpuTimer.create(gpu, reps);
  const wall: number[] = [];
  const batched: number[] = [];
  const gpuSide: number[] = [];
  const batch = Array.from({ length: reps }, () => dispatches).flat();
  try {
    for (let r = 0; r < runs; r++) {
      let t0 = performance.now();
      for (let i = 0; i < reps; i++) submit(gpu, dispatches);
      await gpu.sync("benchmark run");
      wall.push((performance.now() - t0) / reps);
      if (timer) {
        // Timestamped in runs of their own, so that whatever timestamp writes cost on an
        // adapter stays out of the wall clock above, which is what peers are compared by.
        for (let i = 0; i < reps; i++) submit(gpu, dispatches, timer.writes(i));
        await gpu.sync("benchmark run");
        const passes = await timer.read(reps);
        gpuSide.push(passes.reduce((a, b) => a + b, 0) / reps);
      }
      if (reps > 1) {
        t0 = performance.now();
        submit(gpu, batch);
        await gpu.sync("benchmark run");
        batched.push((performance.now() - t0) / reps);
      }
    }
  } finally {
    timer?.destroy();
  }
  const wallStats = summarize(wall);
  const deviceWall = reps > 1 ? summarize(batched) : wallStats;
  if (!timer) return { stats: deviceWall, clock: "wall-fence", wall: wallStats, reps };
  if (gpuSide.length !== runs || !gpuSide.every((x) => Number.isFinite(x) && x > 0)) {
    return {
      stats: deviceWall,
      clock: "wall-fence",
      wall: wallStats,
      reps,
      note: "timestamp queries unwritten; wall clock used",
    };
  }
  const gpuStats = summarize(gpuSide);
  const agreement = gpuStats.median / deviceWall.median;
  if (agreement < TIMESTAMP_CONSISTENCY.min || agreement > TIMESTAMP_CONSISTENCY.max) {
    return {
      stats: deviceWall,
      clock: "wall-fence",
      wall: wallStats,
      reps,
      note: `timestamps disagree with the wall clock (${gpuStats.median.toPrecision(2)} vs ` +
        `${deviceWall.median.toPrecision(2)} ms); wall clock used`,
    };
  }
  return { stats: gpuStats, clock: "gpu-timestamp", wall: wallStats, reps };
}

/** Times an async invocation by wall clock; `fence` waits until its work is done. */
export async function measureAsync(
  invoke: () => Promise<void>,
  fence: () => Promise<void>,
  opts: TimingOptions = DEFAULT_TIMING,
  firstMs?: number,
): Promise<Measurement> {
  const warmups = warmupCount(opts, firstMs);
  let single = warmups === 0 ? firstMs! : Infinity;
  for (let i = 0; i < warmups; i++) {
    const t0 = performance.now();
    await invoke();
    await fence();
    single = Math.min(single, performance.now() - t0);
  }
  const { reps, runs } = plan(single, opts);
  const wall: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await invoke();
    await fence();
    wall.push((performance.now() - t0) / reps);
  }
  const stats = summarize(wall);
  return { stats, clock: "wall-fence", wall: stats, reps };
}
