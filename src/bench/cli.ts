/** `deno task bench [SUITE...] [--filter TEXT] [--json FILE] [--compare OLD.json] [--large]
 *  [--runs N] [--peers LIST|none] [--list]`: measures each selected row for us and the peers,
 * prints the table, optionally writes the JSON report and compares with an earlier one. */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { variantCache } from "../kernels/variants.ts";
import { EngineError } from "../util/errors.ts";
import { getGpu, type Gpu } from "../gpu/mod.ts";
import { DEFAULT_TIMING, type TimingOptions } from "./measure.ts";
import { PeerSet } from "./peers/mod.ts";
import {
  buildReport,
  compareReports,
  formatCompare,
  formatMs,
  formatNotes,
  formatResults,
  type JsonReport,
  matchesFilter,
  parseReport,
  peerCell,
  reportedMs,
} from "./report.ts";
import { runCase } from "./runner.ts";
import { KERNEL_SUITES } from "./suites/kernels.ts";
import {
  type BenchCase,
  PEER_NAMES,
  PEER_SHORT,
  type PeerName,
  type RowResult,
  type Suite,
  type SuiteOptions,
} from "./types.ts";
import { modelsSuite } from "./suites/models.ts";

/** Where measured kernel-variant choices persist between runs (per adapter). */
export const DEFAULT_VARIANT_CACHE = "results/variant-cache.json";

export const BENCH_HELP = `usage: deno task bench [SUITE...] [options]

Measures our kernels (and models, when their suites are given) against a float64 CPU reference,
then against onnxruntime-web (WebGPU), tfjs-webgpu and onnxruntime-node (CPU) in this process.

  SUITE             suites to run (default: every kernel suite; "models" and "all" add the
                    full-size models); see --list
  --filter TEXT     only rows whose name contains TEXT (comma: any of several)
  --json FILE       write every number as JSON ({"adapter", "versions", "rows": [...]})
  --compare FILE    compare with an earlier --json report
  --large           add the slow shapes (matmul-2048, ViT batch-8 projections, RN50 batch 8,
                    models at batch 8)
  --models DIR      full-size models of export.py --full (default $FULL_MODELS_DIR)
  --runs N          timed runs per row (default ${DEFAULT_TIMING.runs}; median reported)
  --peers LIST      peers to run: comma list of ort-web,tfjs,ort-node, or none (default all)
  --list            list the selected rows without running them
  --no-tune         use the kernels' default variants instead of measuring them here
  --variant-cache F measured variant choices, read and updated (default
                    ${DEFAULT_VARIANT_CACHE}; "none": measure afresh, keep nothing)

Times are per invocation in ms: ours GPU-side (timestamp-query) when the adapter has it, wall
clock with a fence otherwise; peers by wall clock. Matmul and conv variants are measured on
this adapter at first use (the winner is printed beside the row; the candidates' times are in
the JSON report) and the choice is cached per adapter. "ours/theirs" compares wall clocks (below 1:
we are faster). A result that disagrees with the reference is printed WRONG and not timed.`;

/** Resolves --peers (short or full names). */
export function parsePeers(value: string | undefined): PeerName[] {
  if (value === undefined) return [...PEER_NAMES];
  if (value.trim() === "none" || value.trim() === "") return [];
  return value.split(",").map((v) => {
    const want = v.trim();
    const found = PEER_NAMES.find((p) => p === want || PEER_SHORT[p] === want);
    if (!found) {
      throw new EngineError(
        `unknown peer '${want}' (one of ${PEER_NAMES.map((p) => PEER_SHORT[p]).join(", ")})`,
      );
    }
    return found;
  });
}

/** Selected (suite, case) pairs, in suite order: the named suites (`all`: every suite), or
 * every suite that is not opt-in. */
export function selectCases(
  suites: readonly Suite[],
  names: readonly string[],
  filter: string | undefined,
  options: SuiteOptions,
): { suite: Suite; c: BenchCase }[] {
  for (const n of names) {
    if (n !== "all" && !suites.some((s) => s.name === n)) {
      throw new EngineError(
        `unknown suite '${n}' (one of ${suites.map((s) => s.name).join(", ")})`,
      );
    }
  }
  const chosen = names.includes("all")
    ? suites
    : names.length === 0
    ? suites.filter((s) => !s.optIn)
    : suites.filter((s) => names.includes(s.name));
  return chosen.flatMap((suite) =>
    suite.cases(options).filter((c) => matchesFilter(c.name, filter)).map((c) => ({ suite, c }))
  );
}

function adapterInfo(gpu: Gpu): Record<string, unknown> {
  const info = gpu.adapter.info;
  return {
    ...gpu.summary,
    device: info.device,
    f16: gpu.hasF16,
    timestampQuery: gpu.hasTimestamps,
  };
}

async function engineVersion(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

function progressLine(row: RowResult, peers: readonly PeerName[]): string {
  const ours = row.ours.status === "ok"
    ? `${formatMs(reportedMs(row.ours))} ms`
    : row.ours.status.toUpperCase();
  const parts = peers.map((p) => `${PEER_SHORT[p]} ${peerCell(row.ours, row.peers[p])}`);
  return `${row.name}: ours ${ours}${row.variant ? ` [${row.variant}]` : ""}` +
    (parts.length ? `; ${parts.join("; ")}` : "");
}

/** The command line, as parsed; values are checked by the phase that uses them, so `--list`
 * works whatever `--runs`, `--peers` or `--compare` say. */
interface BenchArgs {
  readonly help: boolean;
  /** Suite names (positionals). */
  readonly suites: string[];
  readonly filter: string | undefined;
  readonly json: string | undefined;
  readonly compare: string | undefined;
  readonly large: boolean;
  readonly runs: string | undefined;
  readonly peers: string | undefined;
  readonly list: boolean;
  /** Measure the kernels' variants here (not --no-tune). */
  readonly tune: boolean;
  readonly modelsDir: string | undefined;
  /** File of measured variant choices, or "none". */
  readonly variantCache: string;
}

/** The peers and GPU a measurement runs on. */
interface BenchSession {
  readonly gpu: Gpu;
  readonly peers: PeerSet;
  readonly peerNames: readonly PeerName[];
  readonly tune: boolean;
}

/** Runs the benchmark CLI; `extraSuites` (models, AMU) join the kernel suites. */
export async function benchMain(
  args: readonly string[],
  extraSuites: readonly Suite[] = [],
): Promise<number> {
  const flags = parseBenchArgs(args);
  if (flags.help) {
    console.log(BENCH_HELP);
    return 0;
  }
  const suites = [...KERNEL_SUITES, modelsSuite, ...extraSuites];
  const selected = selectCases(suites, flags.suites, flags.filter, {
    large: flags.large,
    modelsDir: flags.modelsDir,
  });
  noteMissingModels(flags);
  if (flags.list) {
    printSelection(suites, selected);
    return 0;
  }
  if (selected.length === 0) throw new EngineError("no benchmark rows match the selection");
  const timing = timingFromRuns(flags.runs);
  const old = flags.compare === undefined ? undefined : readCompareReport(flags.compare);

  const session = await openSession(flags);
  printHeader(session, selected.length, timing);
  const { rows, seconds } = await measureRows(session, selected, timing);
  saveVariantCache(flags);
  const versions = await collectVersions(session.peers);
  printSummary(rows, session.peerNames, versions, seconds);

  const report = buildReport(adapterInfo(session.gpu), versions, rows, {
    runs: timing.runs,
    large: flags.large,
    filter: flags.filter ?? null,
    suites: flags.suites,
    peers: session.peerNames,
    clock: session.gpu.hasTimestamps ? "gpu-timestamp" : "wall-fence",
  });
  if (old) {
    console.log(`\ncompared with ${flags.compare}:`);
    console.log(formatCompare(compareReports(old, report)));
  }
  if (flags.json) {
    Deno.writeTextFileSync(flags.json, JSON.stringify(report, null, 2) + "\n");
    console.log(`wrote ${flags.json}`);
  }
  warnIfUnhealthy(session.gpu);
  return rows.some((r) => r.ours.status !== "ok") ? 1 : 0;
}

/** Parses the command line; a malformed one is an error followed by the help. */
function parseBenchArgs(args: readonly string[]): BenchArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        filter: { type: "string" },
        json: { type: "string" },
        compare: { type: "string" },
        large: { type: "boolean", default: false },
        runs: { type: "string" },
        peers: { type: "string" },
        list: { type: "boolean", default: false },
        "no-tune": { type: "boolean", default: false },
        models: { type: "string", default: Deno.env.get("FULL_MODELS_DIR") },
        "variant-cache": { type: "string", default: DEFAULT_VARIANT_CACHE },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new EngineError(`${(e as Error).message}\n${BENCH_HELP}`);
  }
  const { values, positionals } = parsed;
  return {
    help: values.help,
    suites: positionals,
    filter: values.filter,
    json: values.json,
    compare: values.compare,
    large: values.large,
    runs: values.runs,
    peers: values.peers,
    list: values.list,
    tune: !values["no-tune"],
    modelsDir: values.models,
    variantCache: values["variant-cache"]!,
  };
}

/** Says how to make the full-size models when their suite is asked for and there are none. */
function noteMissingModels(flags: BenchArgs): void {
  const wanted = flags.suites.includes("models") || flags.suites.includes("all");
  const modelsDir = flags.modelsDir;
  if (!wanted || modelsSuite.cases({ large: false, modelsDir }).length > 0) return;
  console.log(
    `note: no full-size models ${
      modelsDir ? `under ${modelsDir}` : "(--models DIR or " +
        "FULL_MODELS_DIR)"
    }; make them with /usr/bin/python3 ` +
      `../shared/fixtures/generator/export.py --full DIR`,
  );
}

/** --list: every suite, then the selected rows. */
function printSelection(
  suites: readonly Suite[],
  selected: readonly { suite: Suite; c: BenchCase }[],
): void {
  for (const s of suites) console.log(`${s.name}: ${s.description}`);
  for (const { suite, c } of selected) console.log(`  ${suite.name}  ${c.name}  ${c.shape}`);
}

/** The timing options for --runs (default: DEFAULT_TIMING's). */
function timingFromRuns(value: string | undefined): TimingOptions {
  const runs = value === undefined ? DEFAULT_TIMING.runs : Number(value);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new EngineError(`--runs: bad count '${value}'`);
  }
  return { ...DEFAULT_TIMING, runs, minRuns: Math.min(DEFAULT_TIMING.minRuns, runs) };
}

/** The earlier --json report that --compare names. */
function readCompareReport(path: string): JsonReport {
  try {
    return parseReport(JSON.parse(Deno.readTextFileSync(path)), path);
  } catch (e) {
    throw new EngineError(`--compare ${path}: ${(e as Error).message}`);
  }
}

/** Resolves the peers, opens the GPU and loads the measured variant choices. */
async function openSession(flags: BenchArgs): Promise<BenchSession> {
  const peerNames = parsePeers(flags.peers);
  const peers = new PeerSet(peerNames);
  const gpu = await getGpu();
  if (flags.tune && flags.variantCache !== "none") variantCache.loadFile(flags.variantCache);
  return { gpu, peers, peerNames, tune: flags.tune };
}

function printHeader(session: BenchSession, rowCount: number, timing: TimingOptions): void {
  const clock = session.gpu.hasTimestamps ? "GPU timestamps" : "wall clock with a fence";
  console.log(`adapter: ${session.gpu.describe()}`);
  console.log(
    `ours timed by ${clock}; peers: ${session.peerNames.join(", ") || "none"}; ` +
      `${rowCount} rows, ${timing.runs} runs each after warm-up`,
  );
}

/** Runs every selected row, printing a line per row as it finishes. */
async function measureRows(
  session: BenchSession,
  selected: readonly { suite: Suite; c: BenchCase }[],
  timing: TimingOptions,
): Promise<{ rows: RowResult[]; seconds: number }> {
  const started = performance.now();
  const rows: RowResult[] = [];
  for (const [i, { suite, c }] of selected.entries()) {
    const row = await runCase({ gpu: session.gpu, tune: session.tune }, suite.name, c, {
      timing,
      peers: session.peers,
    });
    rows.push(row);
    console.log(`[${i + 1}/${selected.length}] ${progressLine(row, session.peerNames)}`);
  }
  return { rows, seconds: (performance.now() - started) / 1000 };
}

/** Keeps the variant choices measured in this run for the next (a failure only warns). */
function saveVariantCache(flags: BenchArgs): void {
  const cacheFile = flags.variantCache;
  if (!flags.tune || cacheFile === "none") return;
  try {
    mkdirSync(dirname(cacheFile), { recursive: true });
    variantCache.saveFile(cacheFile);
  } catch (e) {
    console.log(
      `warning: could not save the variant cache ${cacheFile}: ${(e as Error).message}`,
    );
  }
}

/** Deno's, V8's, each peer's and (from git) the engine's version. */
async function collectVersions(peers: PeerSet): Promise<Record<string, string>> {
  const versions: Record<string, string> = {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    ...(await peers.versions()),
  };
  const engine = await engineVersion();
  if (engine) versions.engine = engine;
  return versions;
}

/** The results table, its legend and notes, peers that could not load, and the total time. */
function printSummary(
  rows: readonly RowResult[],
  peerNames: readonly PeerName[],
  versions: Record<string, string>,
  seconds: number,
): void {
  console.log("");
  console.log(formatResults(rows, peerNames));
  console.log(
    `\nours ms: median ±half-range over runs; clock "gpu": timestamp queries, "wall": one fence ` +
      `over a command buffer of repeated invocations. GFLOP/s and GB/s from it. ` +
      `Peer cells: ms (ours/theirs), both by wall clock with one submit per invocation.`,
  );
  for (const n of formatNotes(rows)) console.log(`note: ${n}`);
  const wallRows = rows.filter((r) => r.ours.measurement?.note);
  if (wallRows.length > 0) {
    console.log(
      `note: ${wallRows.length} rows timed by wall clock (clock "wall"): ` +
        wallRows[0].ours.measurement!.note,
    );
  }
  for (const [name, v] of Object.entries(versions)) {
    if (v.startsWith("unavailable")) console.log(`peer ${name} ${v}`);
  }
  console.log(`${rows.length} rows in ${seconds.toFixed(0)} s`);
}

/** A lost device or an uncaught WebGPU error is a warning here: the rows are already out. */
function warnIfUnhealthy(gpu: Gpu): void {
  try {
    gpu.checkHealthy("benchmark");
  } catch (e) {
    console.log(`warning: ${(e as Error).message}`);
  }
}
