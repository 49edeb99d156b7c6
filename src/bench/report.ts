/** Benchmark output (pure): the terminal table, the JSON report, `--compare` and `--filter`.
 *
 * JSON schema (issue 6), every row carrying at least the four documented keys:
 *   {"adapter": {...}, "versions": {...}, "rows": [{"name", "ours_ms", "max_error",
 *     "peers": {"onnxruntime-web-webgpu": ms, "tfjs-webgpu": ms, "onnxruntime-node-cpu": ms}}]}
 * Times are per invocation in milliseconds; a missing time (not run, unsupported, wrong result,
 * failed) is null and its reason is in `status` / `peer_status`. The remaining keys of a row
 * (suite, shape, clock, GFLOP/s...) are extra detail for people; `--compare` reads only
 * name, ours_ms and peers. */
import { gbps, gflops, ratio } from "./stats.ts";
import {
  PEER_NAMES,
  PEER_SHORT,
  type PeerName,
  type RowResult,
  type RunnerResult,
  type RunStatus,
} from "./types.ts";

export interface JsonRow {
  name: string;
  ours_ms: number | null;
  max_error: number | null;
  peers: Record<PeerName, number | null>;
  suite: string;
  shape: string;
  status: RunStatus;
  note?: string;
  clock?: string;
  clock_note?: string;
  ours_wall_ms?: number;
  ours_spread?: number;
  ours_samples_ms?: number[];
  reps?: number;
  variant?: string;
  flops?: number;
  bytes?: number;
  gflops?: number;
  gbps?: number;
  items?: number;
  items_per_s?: number;
  peer_status: Record<PeerName, RunStatus>;
  peer_max_error: Record<PeerName, number | null>;
  peer_notes?: Partial<Record<PeerName, string>>;
  extra?: Record<string, number | string>;
}

export interface JsonReport {
  adapter: Record<string, unknown>;
  versions: Record<string, string>;
  date?: string;
  settings?: Record<string, unknown>;
  rows: JsonRow[];
}

function finiteOrNull(x: number | undefined): number | null {
  return x !== undefined && Number.isFinite(x) ? x : null;
}

/** The reported time of a runner: set only for a correct, measured result. */
export function reportedMs(r: RunnerResult | undefined): number | undefined {
  return r?.status === "ok" ? r.measurement?.stats.median : undefined;
}

/** Wall-clock time (the clock peers are measured with), for ratios. */
export function wallMs(r: RunnerResult | undefined): number | undefined {
  return r?.status === "ok" ? r.measurement?.wall.median : undefined;
}

export function rowToJson(row: RowResult): JsonRow {
  const peers = {} as Record<PeerName, number | null>;
  const peerStatus = {} as Record<PeerName, RunStatus>;
  const peerError = {} as Record<PeerName, number | null>;
  const peerNotes: Partial<Record<PeerName, string>> = {};
  for (const p of PEER_NAMES) {
    const r = row.peers[p];
    peers[p] = finiteOrNull(reportedMs(r));
    peerStatus[p] = r?.status ?? "skipped";
    peerError[p] = finiteOrNull(r?.maxError);
    if (r?.note) peerNotes[p] = r.note;
  }
  const m = row.ours.measurement;
  const ms = reportedMs(row.ours);
  const out: JsonRow = {
    name: row.name,
    ours_ms: finiteOrNull(ms),
    max_error: finiteOrNull(row.ours.maxError),
    peers,
    suite: row.suite,
    shape: row.shape,
    status: row.ours.status,
    peer_status: peerStatus,
    peer_max_error: peerError,
  };
  if (row.ours.note) out.note = row.ours.note;
  if (m) {
    out.clock = m.clock;
    if (m.note) out.clock_note = m.note;
    out.ours_wall_ms = m.wall.median;
    out.ours_spread = m.stats.spread;
    out.ours_samples_ms = [...m.stats.samples];
    out.reps = m.reps;
  }
  if (row.variant) out.variant = row.variant;
  if (row.flops !== undefined) out.flops = row.flops;
  if (row.bytes !== undefined) out.bytes = row.bytes;
  const gf = gflops(row.flops, ms), gb = gbps(row.bytes, ms);
  if (row.items !== undefined) {
    out.items = row.items;
    if (ms !== undefined) out.items_per_s = row.items / (ms / 1000);
  }
  if (gf !== undefined) out.gflops = gf;
  if (gb !== undefined) out.gbps = gb;
  if (Object.keys(peerNotes).length > 0) out.peer_notes = peerNotes;
  if (row.extra) out.extra = { ...row.extra };
  return out;
}

export function buildReport(
  adapter: Record<string, unknown>,
  versions: Record<string, string>,
  rows: readonly RowResult[],
  settings: Record<string, unknown> = {},
): JsonReport {
  return {
    adapter,
    versions,
    date: new Date().toISOString(),
    settings,
    rows: rows.map(rowToJson),
  };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isMsOrNull(x: unknown): x is number | null {
  return x === null || (typeof x === "number" && Number.isFinite(x));
}

/** Validates a parsed JSON report (the part `--compare` relies on); throws naming the problem. */
export function parseReport(value: unknown, source = "report"): JsonReport {
  if (!isRecord(value)) throw new Error(`${source}: not a JSON object`);
  if (!isRecord(value.adapter)) throw new Error(`${source}: missing "adapter" object`);
  if (!Array.isArray(value.rows)) throw new Error(`${source}: missing "rows" array`);
  value.rows.forEach((row: unknown, i: number) => {
    const where = `${source}: rows[${i}]`;
    if (!isRecord(row)) throw new Error(`${where} is not an object`);
    if (typeof row.name !== "string") throw new Error(`${where}: "name" is not a string`);
    if (!isMsOrNull(row.ours_ms)) throw new Error(`${where} (${row.name}): bad "ours_ms"`);
    if (!isMsOrNull(row.max_error)) throw new Error(`${where} (${row.name}): bad "max_error"`);
    if (!isRecord(row.peers)) throw new Error(`${where} (${row.name}): missing "peers"`);
    for (const [peer, ms] of Object.entries(row.peers)) {
      if (!isMsOrNull(ms)) throw new Error(`${where} (${row.name}): bad peers.${peer}`);
    }
  });
  return value as unknown as JsonReport;
}

/** Keeps the items whose name contains the filter (comma-separated alternatives); all when the
 * filter is empty. */
export function matchesFilter(name: string, filter: string | undefined): boolean {
  if (!filter) return true;
  return filter.split(",").map((f) => f.trim()).filter((f) => f.length > 0)
    .some((f) => name.includes(f));
}

/** Change of one row between two reports. `change` is new / old (below 1: faster now). */
export interface CompareLine {
  name: string;
  oldMs: number | null;
  newMs: number | null;
  change?: number;
  /** Changes beyond the noise band (runs vary by about ±20% on llvmpipe between processes). */
  significant: boolean;
  peers: Partial<Record<PeerName, { oldMs: number | null; newMs: number | null }>>;
  status: "both" | "new" | "removed";
}

export const NOISE_BAND = 0.25;

export function compareReports(
  old: JsonReport,
  current: JsonReport,
  noise = NOISE_BAND,
): CompareLine[] {
  const oldByName = new Map(old.rows.map((r) => [r.name, r]));
  const lines: CompareLine[] = [];
  const seen = new Set<string>();
  for (const row of current.rows) {
    seen.add(row.name);
    const before = oldByName.get(row.name);
    const peers: CompareLine["peers"] = {};
    for (const p of PEER_NAMES) {
      const o = before?.peers[p] ?? null, n = row.peers[p] ?? null;
      if (o !== null || n !== null) peers[p] = { oldMs: o, newMs: n };
    }
    const oldMs = before?.ours_ms ?? null;
    const change = ratio(row.ours_ms ?? undefined, oldMs ?? undefined);
    lines.push({
      name: row.name,
      oldMs,
      newMs: row.ours_ms,
      change,
      significant: change !== undefined && Math.abs(Math.log(change)) > Math.log(1 + noise),
      peers,
      status: before ? "both" : "new",
    });
  }
  for (const row of old.rows) {
    if (seen.has(row.name)) continue;
    lines.push({
      name: row.name,
      oldMs: row.ours_ms,
      newMs: null,
      significant: false,
      peers: {},
      status: "removed",
    });
  }
  return lines;
}

/** Milliseconds with about three significant digits. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  if (ms >= 1) return ms.toFixed(2);
  return ms.toFixed(3);
}

function formatRate(x: number | undefined): string {
  if (x === undefined) return "-";
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function formatError(e: number | undefined): string {
  return e === undefined || !Number.isFinite(e) ? "-" : e.toExponential(1);
}

/** The comparison table: rows run now (old rows not run now are counted, not listed: a
 * filtered run would otherwise list most of the old report). */
export function formatCompare(lines: readonly CompareLine[], noise = NOISE_BAND): string {
  const header = ["row", "old ms", "new ms", "new/old", ""];
  for (const p of PEER_NAMES) header.push(`${PEER_SHORT[p]} old`, `${PEER_SHORT[p]} new`);
  const shown = lines.filter((l) => l.status !== "removed");
  const notRun = lines.length - shown.length;
  const body = shown.map((l) => {
    const mark = l.status === "new"
      ? "new row"
      : l.significant
      ? (l.change! < 1 ? "faster" : "SLOWER")
      : "";
    const cells = [
      l.name,
      formatMs(l.oldMs),
      formatMs(l.newMs),
      l.change === undefined ? "-" : l.change.toFixed(2),
      mark,
    ];
    for (const p of PEER_NAMES) {
      cells.push(formatMs(l.peers[p]?.oldMs), formatMs(l.peers[p]?.newMs));
    }
    return cells;
  });
  const align = header.map((_, i) => (i === 0 || i === 4 ? "l" : "r") as "l" | "r");
  return formatTable(header, body, align) +
    `\n(changes beyond ±${Math.round(noise * 100)}% marked; smaller ones are run-to-run noise)` +
    (notRun > 0 ? `\n${notRun} rows of the old report not run now` : "");
}

/** Pads cells into aligned columns. */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly ("l" | "r")[] = [],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (align[i] === "r" ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** A peer's cell: its time and ours/theirs, or why there is none. */
export function peerCell(ours: RunnerResult, peer: RunnerResult | undefined): string {
  if (!peer || peer.status === "skipped") return "-";
  switch (peer.status) {
    case "ok": {
      const r = ratio(wallMs(ours), wallMs(peer));
      return `${formatMs(reportedMs(peer))}${r === undefined ? "" : ` (${formatRatio(r)})`}`;
    }
    case "wrong":
      return `WRONG ${formatError(peer.maxError)}`;
    case "unsupported":
      return "n/a";
    case "unavailable":
      return "unavailable";
    case "failed":
      return "failed";
  }
}

function formatRatio(r: number): string {
  return r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2);
}

function oursCell(r: RunnerResult): string {
  switch (r.status) {
    case "ok": {
      const m = r.measurement!;
      return `${formatMs(m.stats.median)} ±${Math.round(m.stats.spread * 100)}%`;
    }
    case "wrong":
      return "WRONG";
    default:
      return r.status;
  }
}

/** `extra` key of a row's GPU memory in MiB (model rows: the plan's buffers and weights). */
export const GPU_MEMORY_KEY = "gpu_memory_mib";

/** The result table. Peer cells read `ms (ours/theirs)`, both sides timed by wall clock with a
 * fence; below 1 means we are faster. */
export function formatResults(rows: readonly RowResult[], peers: readonly PeerName[]): string {
  const withItems = rows.some((r) => r.items !== undefined);
  const memory = (r: RowResult) => r.extra?.[GPU_MEMORY_KEY];
  const withMemory = rows.some((r) => memory(r) !== undefined);
  const header = ["row", "shape", "variant", "ours ms", "clock", "GFLOP/s", "GB/s"];
  if (withItems) header.push("items/s");
  if (withMemory) header.push("GPU MiB");
  header.push("max err");
  for (const p of peers) header.push(`${PEER_SHORT[p]} ms (ours/theirs)`);
  const body = rows.map((row) => {
    const ms = reportedMs(row.ours);
    const cells = [
      row.name,
      row.shape,
      row.variant ?? "",
      oursCell(row.ours),
      row.ours.measurement ? (row.ours.measurement.clock === "gpu-timestamp" ? "gpu" : "wall") : "",
      formatRate(gflops(row.flops, ms)),
      formatRate(gbps(row.bytes, ms)),
    ];
    if (withItems) {
      cells.push(
        row.items !== undefined && ms !== undefined ? formatRate(row.items / (ms / 1000)) : "-",
      );
    }
    if (withMemory) cells.push(String(memory(row) ?? "-"));
    cells.push(formatError(row.ours.maxError));
    for (const p of peers) cells.push(peerCell(row.ours, row.peers[p]));
    return cells;
  });
  const align = header.map((_, i) => (i < 3 || i === 4 ? "l" : "r") as "l" | "r");
  return formatTable(header, body, align);
}

/** Lines explaining failures, wrong results and missing peers under the table. */
export function formatNotes(rows: readonly RowResult[]): string[] {
  const notes: string[] = [];
  for (const row of rows) {
    if (row.ours.status !== "ok") {
      notes.push(
        `${row.name}: ours ${row.ours.status}${row.ours.note ? `: ${row.ours.note}` : ""}`,
      );
    }
    for (const p of PEER_NAMES) {
      const r = row.peers[p];
      if (r && (r.status === "wrong" || r.status === "failed")) {
        notes.push(`${row.name}: ${p} ${r.status}${r.note ? `: ${r.note}` : ""}`);
      }
    }
  }
  return notes;
}
