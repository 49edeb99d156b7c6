/** Runs one benchmark row: ours, then each peer, each first checked against the reference (a
 * wrong result is reported and not timed), then timed. Our GPU resources are released before
 * the peers run so they have the adapter's memory to themselves. */
import { encodeDispatches } from "../gpu/mod.ts";
import { DEFAULT_TIMING, measureAsync, measureDispatches, type TimingOptions } from "./measure.ts";
import type { PeerRun, PeerSet } from "./peers/mod.ts";
import type {
  BenchCase,
  BenchContext,
  CheckResult,
  OursRun,
  PeerName,
  PreparedCase,
  RowResult,
  RunnerResult,
} from "./types.ts";

export interface RunnerOptions {
  readonly timing?: TimingOptions;
  readonly peers?: PeerSet;
}

function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

function judged(check: CheckResult): RunnerResult | undefined {
  return check.ok ? undefined : { status: "wrong", maxError: check.maxError, note: check.note };
}

async function runOurs(
  ctx: BenchContext,
  ours: OursRun,
  check: PreparedCase["check"],
  timing: TimingOptions,
): Promise<RunnerResult> {
  const { gpu } = ctx;
  try {
    gpu.checkHealthy("before the row");
  } catch { /* errors left by an earlier row, which was already reported as failed */ }
  const dispatches = ours.dispatches;
  const invoke = dispatches
    ? () => {
      const encoder = gpu.device.createCommandEncoder();
      encodeDispatches(encoder, dispatches);
      gpu.device.queue.submit([encoder.finish()]);
      return Promise.resolve();
    }
    : ours.run;
  if (!invoke) throw new Error("case gives neither dispatches nor run");
  const t0 = performance.now();
  await gpu.scoped("first run", invoke);
  await gpu.sync("first run");
  const firstMs = performance.now() - t0;
  const result = check(await ours.output());
  const wrong = judged(result);
  if (wrong) return wrong;
  const measurement = dispatches
    ? await measureDispatches(gpu, dispatches, timing, firstMs)
    : await measureAsync(invoke, () => gpu.sync("benchmark run"), timing, firstMs);
  return { status: "ok", measurement, maxError: result.maxError };
}

async function runPeer(
  run: PeerRun,
  check: PreparedCase["check"],
  timing: TimingOptions,
): Promise<RunnerResult> {
  const t0 = performance.now();
  await run.invoke();
  await run.fence();
  const firstMs = performance.now() - t0;
  const result = check(await run.output());
  const wrong = judged(result);
  if (wrong) return wrong;
  const measurement = await measureAsync(
    () => run.invoke(),
    () => run.fence(),
    timing,
    firstMs,
  );
  return { status: "ok", measurement, maxError: result.maxError };
}

export async function runCase(
  ctx: BenchContext,
  suite: string,
  c: BenchCase,
  options: RunnerOptions = {},
): Promise<RowResult> {
  const timing = options.timing ?? DEFAULT_TIMING;
  const base = {
    name: c.name,
    suite,
    shape: c.shape,
    flops: c.flops,
    bytes: c.bytes,
    items: c.items,
  };
  let prep: PreparedCase;
  try {
    prep = await c.prepare(ctx);
  } catch (e) {
    return { ...base, ours: { status: "failed", note: `prepare: ${message(e)}` }, peers: {} };
  }
  let ours: RunnerResult;
  try {
    ours = await runOurs(ctx, prep.ours, prep.check, timing);
  } catch (e) {
    ours = { status: "failed", note: message(e) };
  } finally {
    prep.ours.dispose();
  }
  const peers: Partial<Record<PeerName, RunnerResult>> = {};
  for (const name of options.peers?.names ?? []) {
    const slot = await options.peers!.get(name);
    if ("error" in slot) {
      peers[name] = { status: "unavailable", note: slot.error };
      continue;
    }
    let run: PeerRun | undefined;
    try {
      run = prep.peers ? await slot.peer.prepare(prep.peers) : undefined;
      peers[name] = run
        ? await runPeer(run, prep.check, timing)
        : { status: "unsupported", note: "no workload for this peer" };
    } catch (e) {
      peers[name] = { status: "failed", note: message(e) };
    } finally {
      try {
        await run?.dispose();
      } catch { /* a peer that fails to clean up does not end the run */ }
    }
  }
  return { ...base, variant: prep.ours.variant, extra: prep.ours.extra, ours, peers };
}
