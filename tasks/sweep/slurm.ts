/** The Slurm runner of `deno task sweep`: three batch scripts (an extraction array job, a cells
 * array job, a report job), their submission with dependencies through `sbatch --parsable`, and
 * a wait for their final states through `squeue` (clusters without slurmdbd have no `sacct`).
 * Each job runs a stage command of the sweep CLI in the repository on a shared filesystem. */
import { dirname, isAbsolute, join } from "node:path";
import { EngineError } from "../../src/util/errors.ts";

export interface SlurmPlan {
  /** Absolute; scripts and Slurm logs go to `<sweepDir>/slurm/`. */
  sweepDir: string;
  /** Absolute repository root: the scripts cd there. */
  workDir: string;
  /** Absolute argv prefix of the stage commands (deno, run, -A, sweep.ts, grid, --out, dir). */
  command: string[];
  /** Extraction shards, N >= 1: array tasks 0..N-1. */
  extractShards: number;
  /** Cells, >= 1: array tasks 0..cells-1. */
  cells: number;
  /** Extra sbatch options from --slurm-args (partition, GPUs, time), already split. */
  slurmArgs: string[];
  /** Job-name prefix. */
  name: string;
}

export interface SlurmJobIds {
  extract: string;
  cells: string;
  report: string;
}

type Stage = keyof SlurmJobIds;
const STAGES: readonly Stage[] = ["extract", "cells", "report"];

/** Splits `--slurm-args` text as a shell would (quotes, backslashes; no expansion), so
 * `--slurm-args "--partition gpu --comment 'two words'"` gives four options. */
export function parseSlurmArgs(text: string): string[] {
  const out: string[] = [];
  let cur: string | undefined;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) cur += text[++i];
      else cur += c;
    } else if (/\s/.test(c)) {
      if (cur !== undefined) out.push(cur);
      cur = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
      cur ??= "";
    } else if (c === "\\") {
      if (i + 1 >= text.length) {
        throw new EngineError(`--slurm-args: trailing backslash in ${text}`);
      }
      cur = (cur ?? "") + text[++i];
    } else {
      cur = (cur ?? "") + c;
    }
  }
  if (quote) throw new EngineError(`--slurm-args: unterminated ${quote} quote in ${text}`);
  if (cur !== undefined) out.push(cur);
  return out;
}

// Options the runner sets itself: a user's copy would break the job chain, its logs or the ids.
const OWN_LONG = ["array", "dependency", "output", "error", "parsable", "wait", "wrap", "chdir"];
const OWN_SHORT = ["a", "d", "o", "e", "W", "D"];

/** The user's options grouped into `#SBATCH` lines (one option and its values per line). */
function userSbatchLines(args: readonly string[]): string[] {
  const lines: string[][] = [];
  for (const arg of args) {
    if (arg.startsWith("-")) {
      const long = /^--([^=]+)/.exec(arg)?.[1];
      const short = /^-([^-])/.exec(arg)?.[1];
      if ((long && OWN_LONG.includes(long)) || (!long && short && OWN_SHORT.includes(short))) {
        throw new EngineError(
          `--slurm-args: ${arg} is set by the sweep itself (job arrays, dependencies, logs ` +
            `under the sweep folder); leave it out`,
        );
      }
      lines.push([arg]);
    } else if (lines.length === 0) {
      throw new EngineError(
        `--slurm-args: '${arg}' is not an sbatch option (expected --name or -x)`,
      );
    } else {
      lines[lines.length - 1].push(arg);
    }
  }
  return lines.map((l) => `#SBATCH ${l.map(sbatchQuote).join(" ")}`);
}

/** A value as sbatch's `#SBATCH` parser reads it back: bare when plain, else double-quoted with
 * backslash escapes (the parser strips quotes, honours backslashes, and ends a line at `#`). */
export function sbatchQuote(value: string): string {
  if (/^[A-Za-z0-9_\-.,:\/=@+%]+$/.test(value)) return value;
  return `"${value.replace(/[\\"]/g, "\\$&")}"`;
}

/** A word as bash reads it back: bare when plain, else single-quoted. */
export function shellQuote(value: string): string {
  if (/^[A-Za-z0-9_\-.,:\/=@+%]+$/.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A literal path inside a Slurm filename pattern, where `%` starts a replacement. */
function slurmPattern(path: string): string {
  return path.replaceAll("%", "%%");
}

function checkPlan(plan: SlurmPlan): void {
  const noNewline = (what: string, v: string) => {
    if (/[\n\r\0]/.test(v)) throw new EngineError(`slurm: ${what} contains a line break: ${v}`);
  };
  for (const [what, p] of [["sweep folder", plan.sweepDir], ["work dir", plan.workDir]]) {
    if (!isAbsolute(p)) throw new EngineError(`slurm: the ${what} must be absolute, got ${p}`);
    noNewline(what, p);
  }
  if (plan.command.length === 0 || !isAbsolute(plan.command[0])) {
    throw new EngineError(`slurm: the stage command must start with an absolute program path`);
  }
  plan.command.forEach((a) => noNewline("stage command", a));
  for (const [what, n] of [["extraction shards", plan.extractShards], ["cells", plan.cells]]) {
    if (!Number.isInteger(n) || (n as number) < 1) {
      throw new EngineError(`slurm: ${what} must be a positive integer, got ${n}`);
    }
  }
  if (plan.name === "" || /[\s#"'\\]/.test(plan.name)) {
    throw new EngineError(`slurm: job name '${plan.name}' must be one plain word`);
  }
}

/** The three batch scripts. Dependencies are not in them (they need the job ids): submitSlurm
 * passes them to sbatch, as the scripts' comments say. */
export function slurmScripts(plan: SlurmPlan): Record<Stage, string> {
  checkPlan(plan);
  const user = userSbatchLines(plan.slurmArgs);
  const logDir = slurmPattern(join(plan.sweepDir, "slurm"));
  const cmd = plan.command.map(shellQuote).join(" ");
  const script = (
    stage: Stage,
    what: string,
    own: string[],
    logName: string,
    stageArgs: string,
  ) =>
    [
      "#!/bin/bash",
      `# ${what}`,
      `# Written by deno task sweep (--runner slurm) for ${plan.sweepDir}.`,
      `#SBATCH --job-name=${sbatchQuote(`${plan.name}-${stage}`)}`,
      ...own.map((o) => `#SBATCH ${o}`),
      `#SBATCH --output=${sbatchQuote(`${logDir}/${logName}.out`)}`,
      `#SBATCH --error=${sbatchQuote(`${logDir}/${logName}.err`)}`,
      `#SBATCH --chdir=${sbatchQuote(plan.workDir)}`,
      ...user,
      "set -euo pipefail",
      `cd ${shellQuote(plan.workDir)}`,
      `exec ${cmd} ${stageArgs}`,
      "",
    ].join("\n");
  const n = plan.extractShards;
  return {
    extract: script(
      "extract",
      `Feature extraction: array task i extracts shard i of ${n}.`,
      [`--array=0-${n - 1}`],
      "extract-%A_%a",
      `--stage extract --shard "\${SLURM_ARRAY_TASK_ID}/${n}"`,
    ),
    cells: script(
      "cells",
      `The sweep's ${plan.cells} cell(s): array task k runs cell k. Submitted with ` +
        `--dependency=afterok:<extraction job>.`,
      // A failed extraction makes the dependency unsatisfiable: Slurm then cancels these tasks
      // instead of leaving them pending forever, and the report still runs.
      [`--array=0-${plan.cells - 1}`, "--kill-on-invalid-dep=yes"],
      "cell-%A_%a",
      `--stage cell --cell "\${SLURM_ARRAY_TASK_ID}"`,
    ),
    report: script(
      "report",
      "The report: results.csv, results.md, results.svg; failed cells listed as failed. " +
        "Submitted with --dependency=afterany:<cells job>, so it runs whether cells fail or not.",
      ["--kill-on-invalid-dep=yes"],
      "report-%j",
      "--stage report",
    ),
  };
}

/** `name` on PATH, or undefined. */
function onPath(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      const st = Deno.statSync(p);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111)) return p;
    } catch { /* not here */ }
  }
  return undefined;
}

function resolveProgram(program: string): string | undefined {
  if (program.includes("/")) {
    try {
      return Deno.statSync(program).isFile ? program : undefined;
    } catch {
      return undefined;
    }
  }
  return onPath(program);
}

async function execute(
  program: string,
  args: string[],
  cwd?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(program, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
  return { code: r.code, stdout: text(r.stdout), stderr: text(r.stderr) };
}

const STAGE_WHAT: Record<Stage, string> = {
  extract: "the extraction job",
  cells: "the cells job",
  report: "the report job",
};

/** Writes the scripts to `<sweepDir>/slurm/` and submits them in order with dependencies; the
 * job ids. A dry run prints the scripts and the sbatch commands, and writes and submits nothing.
 * A refusal cancels the jobs already submitted, so no half-submitted sweep is left queued. */
export async function submitSlurm(
  plan: SlurmPlan,
  opts: { dryRun?: boolean; log: (line: string) => void; sbatch?: string },
): Promise<SlurmJobIds | undefined> {
  const scripts = slurmScripts(plan);
  const dir = join(plan.sweepDir, "slurm");
  const path = (stage: Stage) => join(dir, `${stage}.sh`);
  const depOf = (stage: Stage, ids: Partial<SlurmJobIds>): string[] =>
    stage === "cells"
      ? [`--dependency=afterok:${ids.extract}`]
      : stage === "report"
      ? [`--dependency=afterany:${ids.cells}`]
      : [];
  if (opts.dryRun) {
    const placeholders = { extract: "<extract job id>", cells: "<cells job id>" };
    for (const stage of STAGES) {
      opts.log(`# ${path(stage)}`);
      for (const line of scripts[stage].trimEnd().split("\n")) opts.log(line);
      const argv = ["sbatch", "--parsable", ...depOf(stage, placeholders), path(stage)];
      opts.log(`# dry run: would submit: ${argv.map(shellQuote).join(" ")}`);
    }
    return undefined;
  }
  const requested = opts.sbatch ?? "sbatch";
  const sbatch = resolveProgram(requested);
  if (!sbatch) {
    throw new EngineError(
      `Slurm's sbatch was not found (${requested.includes("/") ? requested : "not on PATH"}): ` +
        `run on a Slurm login node, or run the sweep on this machine with --runner local`,
    );
  }
  Deno.mkdirSync(dir, { recursive: true });
  for (const stage of STAGES) Deno.writeTextFileSync(path(stage), scripts[stage], { mode: 0o755 });
  const ids: Partial<SlurmJobIds> = {};
  for (const stage of STAGES) {
    const args = ["--parsable", ...depOf(stage, ids), path(stage)];
    let r;
    try {
      r = await execute(sbatch, args, plan.workDir);
    } catch (e) {
      await cancelSubmitted(sbatch, ids, opts.log);
      throw new EngineError(`could not run ${sbatch}: ${(e as Error).message}`);
    }
    // --parsable prints "<id>" or "<id>;<cluster>".
    const id = r.stdout.split("\n").pop()?.split(";")[0].trim() ?? "";
    if (r.code !== 0 || !/^\d+$/.test(id)) {
      const cancelled = await cancelSubmitted(sbatch, ids, opts.log);
      const said = r.stderr || r.stdout || `exit status ${r.code}, no message`;
      throw new EngineError(
        `sbatch refused ${STAGE_WHAT[stage]} (${path(stage)}): ${said}` +
          (cancelled.length
            ? `; cancelled the job(s) already submitted: ${cancelled.join(", ")}`
            : ""),
      );
    }
    ids[stage] = id;
    opts.log(`slurm: submitted ${STAGE_WHAT[stage]} ${id} (${path(stage)})`);
  }
  return ids as SlurmJobIds;
}

/** scancel beside the sbatch used, else on PATH; the ids it was asked to cancel. */
async function cancelSubmitted(
  sbatch: string,
  ids: Partial<SlurmJobIds>,
  log: (line: string) => void,
): Promise<string[]> {
  const submitted = STAGES.map((s) => ids[s]).filter((id): id is string => id !== undefined);
  if (submitted.length === 0) return [];
  const scancel = resolveProgram(join(dirname(sbatch), "scancel")) ?? onPath("scancel");
  if (!scancel) {
    log(`slurm: scancel not found: cancel job(s) ${submitted.join(", ")} by hand`);
    return [];
  }
  const r = await execute(scancel, submitted);
  if (r.code !== 0) log(`slurm: scancel ${submitted.join(" ")} failed: ${r.stderr || r.code}`);
  return submitted;
}

// squeue's states after which a job or array task changes no more.
const FINAL_STATES = new Set([
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "TIMEOUT",
  "NODE_FAIL",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
  "OUT_OF_MEMORY",
  "SPECIAL_EXIT",
  "REVOKED",
]);

/** State of a job that left squeue before its end was seen (finished jobs stay MinJobAge). */
export const UNKNOWN_STATE = "UNKNOWN";

/** One line of `squeue -h -r -t all -o "%i|%T"` per job or array task (`123` or `123_4`). */
function parseSqueue(text: string, ids: readonly string[]): Map<string, string> {
  const states = new Map<string, string>();
  for (const line of text.split("\n")) {
    const [key, state] = line.trim().split("|");
    if (!key || !state) continue;
    const job = key.split("_")[0];
    if (ids.includes(job)) states.set(key, state);
  }
  return states;
}

function summary(states: Map<string, string>, ids: readonly string[]): string {
  return ids.map((id) => {
    const counts = new Map<string, number>();
    for (const [key, state] of states) {
      if (key === id || key.startsWith(`${id}_`)) counts.set(state, (counts.get(state) ?? 0) + 1);
    }
    const parts = [...counts].map(([s, n]) => `${n} ${s}`);
    return `job ${id}: ${parts.length ? parts.join(", ") : UNKNOWN_STATE}`;
  }).join("; ");
}

/** Polls squeue until every job and array task of `ids` has a final state; that state per job
 * (`123`) or array task (`123_4`). A job that was never seen or vanished before its end reads
 * UNKNOWN. Logs a line whenever the counts per state change. */
export async function waitForJobs(
  ids: string[],
  opts: { log: (line: string) => void; pollMs?: number; timeoutMs?: number },
): Promise<Map<string, string>> {
  const { pollMs = 5000, timeoutMs = Infinity } = opts;
  const squeue = onPath("squeue");
  if (!squeue) throw new EngineError(`Slurm's squeue was not found on PATH: cannot wait for jobs`);
  const start = Date.now();
  const states = new Map<string, string>();
  let failures = 0;
  let lastSummary = "";
  while (true) {
    const r = await execute(squeue, ["-h", "-r", "-t", "all", "-j", ids.join(","), "-o", "%i|%T"]);
    // Asked about one job only, squeue fails when that job is gone: read that as "not listed".
    const gone = r.code !== 0 && /Invalid job id/i.test(r.stderr);
    if (r.code === 0 || gone) {
      failures = 0;
      const now = parseSqueue(gone ? "" : r.stdout, ids);
      // A task no longer listed keeps its last state; if that was not final, its end is unknown.
      for (const [key, state] of states) {
        if (!now.has(key)) now.set(key, FINAL_STATES.has(state) ? state : UNKNOWN_STATE);
      }
      for (const id of ids) {
        const seen = [...now.keys()].some((k) => k === id || k.startsWith(`${id}_`));
        if (!seen) now.set(id, UNKNOWN_STATE);
      }
      states.clear();
      for (const [k, v] of now) states.set(k, v);
      const line = summary(states, ids);
      if (line !== lastSummary) opts.log(`slurm: ${line}`);
      lastSummary = line;
      const active = [...states.values()].some((s) => !FINAL_STATES.has(s) && s !== UNKNOWN_STATE);
      if (!active) return states;
    } else if (++failures >= 10) {
      // Transient controller hiccups are retried; ten in a row is a broken cluster.
      throw new EngineError(`squeue failed ${failures} times in a row: ${r.stderr || r.code}`);
    }
    if (Date.now() - start > timeoutMs) {
      throw new EngineError(
        `timed out after ${Math.round(timeoutMs / 1000)} s waiting for Slurm jobs: ${lastSummary}`,
      );
    }
    await new Promise((res) => setTimeout(res, pollMs));
  }
}
