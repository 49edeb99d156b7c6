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

/** Runs the benchmark CLI; `extraSuites` (models, AMU) join the kernel suites. */
export async function benchMain(
  args: readonly string[],
  extraSuites: readonly Suite[] = [],
): Promise<number> {
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
  if (values.help) {
    console.log(BENCH_HELP);
    return 0;
  }
  const suites = [...KERNEL_SUITES, modelsSuite, ...extraSuites];
  const modelsDir = values.models;
  const selected = selectCases(suites, positionals, values.filter, {
    large: values.large,
    modelsDir,
  });
  if (
    (positionals.includes("models") || positionals.includes("all")) &&
    modelsSuite.cases({ large: false, modelsDir }).length === 0
  ) {
    console.log(
      `note: no full-size models ${
        modelsDir ? `under ${modelsDir}` : "(--models DIR or " +
          "FULL_MODELS_DIR)"
      }; make them with /usr/bin/python3 ` +
        `../shared/fixtures/generator/export.py --full DIR`,
    );
  }
  if (values.list) {
    for (const s of suites) console.log(`${s.name}: ${s.description}`);
    for (const { suite, c } of selected) console.log(`  ${suite.name}  ${c.name}  ${c.shape}`);
    return 0;
  }
  if (selected.length === 0) throw new EngineError("no benchmark rows match the selection");
  const runs = values.runs === undefined ? DEFAULT_TIMING.runs : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new EngineError(`--runs: bad count '${values.runs}'`);
  }
  const timing: TimingOptions = {
    ...DEFAULT_TIMING,
    runs,
    minRuns: Math.min(DEFAULT_TIMING.minRuns, runs),
  };
  const old = values.compare === undefined ? undefined : (() => {
    try {
      return parseReport(JSON.parse(Deno.readTextFileSync(values.compare!)), values.compare);
    } catch (e) {
      throw new EngineError(`--compare ${values.compare}: ${(e as Error).message}`);
    }
  })();

  const peerNames = parsePeers(values.peers);
  const peers = new PeerSet(peerNames);
  const gpu = await getGpu();
  const tune = !values["no-tune"];
  const cacheFile = values["variant-cache"]!;
  if (tune && cacheFile !== "none") variantCache.loadFile(cacheFile);
  const clock = gpu.hasTimestamps ? "GPU timestamps" : "wall clock with a fence";
  console.log(`adapter: ${gpu.describe()}`);
  console.log(
    `ours timed by ${clock}; peers: ${peerNames.join(", ") || "none"}; ` +
      `${selected.length} rows, ${timing.runs} runs each after warm-up`,
  );
  const started = performance.now();
  const rows: RowResult[] = [];
  for (const [i, { suite, c }] of selected.entries()) {
    const row = await runCase({ gpu, tune }, suite.name, c, { timing, peers });
    rows.push(row);
    console.log(`[${i + 1}/${selected.length}] ${progressLine(row, peerNames)}`);
  }
  const elapsed = (performance.now() - started) / 1000;
  if (tune && cacheFile !== "none") {
    try {
      mkdirSync(dirname(cacheFile), { recursive: true });
      variantCache.saveFile(cacheFile);
    } catch (e) {
      console.log(
        `warning: could not save the variant cache ${cacheFile}: ${(e as Error).message}`,
      );
    }
  }

  const versions: Record<string, string> = {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    ...(await peers.versions()),
  };
  const engine = await engineVersion();
  if (engine) versions.engine = engine;
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
  console.log(`${rows.length} rows in ${elapsed.toFixed(0)} s`);

  const report = buildReport(adapterInfo(gpu), versions, rows, {
    runs: timing.runs,
    large: values.large,
    filter: values.filter ?? null,
    suites: positionals,
    peers: peerNames,
    clock: gpu.hasTimestamps ? "gpu-timestamp" : "wall-fence",
  });
  if (old) {
    console.log(`\ncompared with ${values.compare}:`);
    console.log(formatCompare(compareReports(old, report)));
  }
  if (values.json) {
    Deno.writeTextFileSync(values.json, JSON.stringify(report, null, 2) + "\n");
    console.log(`wrote ${values.json}`);
  }
  try {
    gpu.checkHealthy("benchmark");
  } catch (e) {
    console.log(`warning: ${(e as Error).message}`);
  }
  const failed = rows.filter((r) => r.ours.status !== "ok").length;
  return failed > 0 ? 1 : 0;
}
