/** Where a plan's GPU time goes, by operator type: each dispatch is timed on its own (repeated
 * in one compute pass, the fence's fixed latency measured and subtracted), then summed per
 * node op type. The parts do not add up exactly to the whole plan's time (caches stay warm
 * between repeats of one dispatch, and a pass of many dispatches overlaps them differently);
 * both are reported. For `deno task run --profile`. */
import { type Dispatch, encodeDispatches, type Gpu } from "../gpu/mod.ts";
import type { Plan } from "./plan.ts";

export interface ProfileRow {
  /** Op type (engine-domain fused ops as `engine.FusedMatMul` etc.). */
  readonly opType: string;
  readonly nodes: number;
  readonly dispatches: number;
  /** Summed per-dispatch time, ms. */
  readonly ms: number;
}

export interface PlanProfile {
  /** Slowest first. */
  readonly rows: readonly ProfileRow[];
  /** The whole plan, all dispatches in one pass, ms per run. */
  readonly planMs: number;
  /** Submit-and-wait latency of an empty submission, subtracted from every timing, ms. */
  readonly fenceMs: number;
}

async function timeRun(gpu: Gpu, dispatches: readonly Dispatch[], reps: number): Promise<number> {
  const encoder = gpu.device.createCommandEncoder();
  // One compute pass, as a plan runs (a pass per repeat would add a pass's overhead to each).
  encodeDispatches(encoder, Array.from({ length: reps }, () => dispatches).flat());
  const t0 = performance.now();
  gpu.device.queue.submit([encoder.finish()]);
  await gpu.sync("profile");
  return performance.now() - t0;
}

/** Profiles a plan whose inputs are already written (any values do: timing does not depend on
 * them). `reps`: fewest repeats per dispatch (default 3; short ones are repeated more). */
export async function profilePlan(
  gpu: Gpu,
  plan: Plan,
  options: { reps?: number } = {},
): Promise<PlanProfile> {
  const reps = Math.max(1, options.reps ?? 3);
  let fenceMs = Infinity;
  for (let i = 0; i < 3; i++) fenceMs = Math.min(fenceMs, await timeRun(gpu, [], 1));
  await timeRun(gpu, plan.dispatches, 1); // warm: pipelines, first-touch memory
  const planMs = Math.max(0, (await timeRun(gpu, plan.dispatches, reps)) - fenceMs) / reps;
  const byOp = new Map<string, { nodes: Set<string>; dispatches: number; ms: number }>();
  for (let i = 0; i < plan.dispatches.length; i++) {
    const node = plan.dispatchNodes[i];
    const opType = node.domain ? `${node.domain}.${node.opType}` : node.opType;
    // Short dispatches are repeated more (runs of ~30 ms), so that the fence's latency and its
    // jitter, subtracted or not, stay small beside them.
    const d = [plan.dispatches[i]];
    const once = Math.max(0.01, (await timeRun(gpu, d, 1)) - fenceMs);
    const n = Math.min(50, Math.max(reps, Math.ceil(30 / once)));
    const ms = Math.max(0, (await timeRun(gpu, d, n)) - fenceMs) / n;
    let row = byOp.get(opType);
    if (!row) byOp.set(opType, row = { nodes: new Set(), dispatches: 0, ms: 0 });
    row.nodes.add(node.name);
    row.dispatches++;
    row.ms += ms;
  }
  const rows = [...byOp].map(([opType, r]) => ({
    opType,
    nodes: r.nodes.size,
    dispatches: r.dispatches,
    ms: r.ms,
  })).sort((a, b) => b.ms - a.ms);
  return { rows, planMs, fenceMs };
}

/** The profile as a table. */
export function formatProfile(p: PlanProfile): string {
  const sum = p.rows.reduce((a, r) => a + r.ms, 0);
  const lines = [
    `${"op type".padEnd(28)} ${"nodes".padStart(6)} ${"dispatches".padStart(10)} ` +
    `${"ms".padStart(9)} ${"share".padStart(6)}`,
  ];
  for (const r of p.rows) {
    lines.push(
      `${r.opType.padEnd(28)} ${String(r.nodes).padStart(6)} ${
        String(r.dispatches).padStart(10)
      } ` +
        `${r.ms.toFixed(2).padStart(9)} ${
          (sum > 0 ? (100 * r.ms) / sum : 0).toFixed(1).padStart(5)
        }%`,
    );
  }
  lines.push(
    `sum of dispatches ${sum.toFixed(1)} ms; whole plan ${p.planMs.toFixed(1)} ms per run ` +
      `(fence latency ${p.fenceMs.toFixed(1)} ms subtracted)`,
  );
  return lines.join("\n");
}
