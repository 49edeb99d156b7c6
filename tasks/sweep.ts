/** `deno task sweep GRID.yaml`: a grid of few-shot experiments (datasets x shots x seeds x
 * methods), each cell a run folder under results/<name>/ (or --out), images encoded once into a
 * shared per-image feature store, then results.md, results.csv and results.svg. `--demo` runs a
 * small grid on the bundled generated data. See tasks/sweep/grid.ts for the grid's keys. */
import { join, resolve } from "node:path";
import { existsSync } from "node:fs";
import { stringify as toYaml } from "yaml";
import { EngineError } from "../src/util/errors.ts";
import { chosenText, METHOD_NAMES } from "../src/amu/method.ts";
import { parseShard } from "../src/data/feature_store.ts";
import { formatDuration } from "../src/data/progress.ts";
import { findBpeFile, REPO_ROOT } from "../src/data/assets.ts";
import { parseTaskArgs, runCli } from "./_cli.ts";
import { ensureDemoAssets } from "./train/demo.ts";
import { type Grid, readGrid } from "./sweep/grid.ts";
import { BYTE_TOKENIZER, cellDone, cellStage, extractStage, type StageIo } from "./sweep/stages.ts";
import { writeReport } from "./sweep/report.ts";
import { parseSlurmArgs, submitSlurm, waitForJobs } from "./sweep/slurm.ts";
import { cellLabel } from "./sweep/grid.ts";

const HELP = `usage: deno task sweep GRID.yaml [--out DIR] [--runner local|slurm] [options]
       deno task sweep --demo                 # every method on the bundled generated data

  GRID.yaml             datasets, shots, seeds, methods, shards, flags, method_flags (see
                        tasks/sweep/grid.ts); each cell is one \`deno task train\` run
  --out DIR             the sweep folder (default results/<name>/)
  --runner R            local (default: extraction, then every cell, then the report, here) or
                        slurm (an extraction array job, a cells array job after it, a report job)
  --slurm-args "..."    sbatch options for every job (partition, GPUs, time, account)
  --dry-run             slurm: print the job scripts and the sbatch commands, submit nothing
  --wait                slurm: wait until the jobs end and print the report
  --stage S             run one stage (what the Slurm jobs run): extract, cell or report
  --shard I/N           with --stage extract: shard I of N (N = the grid's shards)
  --cell K              with --stage cell: cell K (0-based; the Slurm array index)

A killed sweep run again skips finished cells and resumes the interrupted ones; failed cells are
listed in the report as failed and make the sweep exit 1.`;

function sayLine(line: string): void {
  console.log(line);
}

/** The demo's grid: generated images and models, every method, 1/2/4 shots, 2 seeds. */
function demoGrid(outDir: string): string {
  const assets = ensureDemoAssets(resolve("results", "cache", "demo-assets"), sayLine);
  let bpe = BYTE_TOKENIZER;
  try {
    bpe = findBpeFile();
  } catch { /* the demo's byte tokenizer */ }
  Deno.mkdirSync(outDir, { recursive: true });
  const file = join(outDir, "grid.yaml");
  const grid = {
    name: "demo-sweep",
    datasets: [{ name: "imagefolder", root_path: assets.imageRoot }],
    shots: [1, 2, 4],
    seeds: [1, 2],
    methods: [...METHOD_NAMES],
    flags: {
      clip_visual: assets.clipVisual,
      clip_text: assets.clipText,
      aux_model: assets.aux,
      bpe,
      augment_epoch: 2,
      tune: "off",
    },
    method_flags: {
      amu: { train_epoch: 10 },
      "tip-adapter-f": { train_epoch: 10, search_step: "20,10" },
      "tip-adapter": { search_step: "20,10" },
    },
  };
  Deno.writeTextFileSync(
    file,
    "# The demo sweep (deno task sweep --demo): untrained generated models on generated\n" +
      "# images, so accuracies only show that every method runs.\n" + toYaml(grid),
  );
  return file;
}

async function runLocal(grid: Grid, io: StageIo): Promise<void> {
  const t0 = performance.now();
  io.print(`sweep ${grid.name}: ${grid.cells.length} cells -> ${grid.dir}`);
  let encoded = 0, separately = 0;
  for (let i = 0; i < grid.shards; i++) {
    const r = await extractStage(grid, { index: i, count: grid.shards }, io);
    encoded += r.encoded;
    separately = r.separately;
  }
  io.print(
    `feature store: encoded ${encoded} view(s) in ${secs(t0)}; the ${grid.cells.length} cells ` +
      `extracting on their own would encode ${separately}`,
  );
  const failures: string[] = [];
  const todo = grid.cells.filter((c) => !cellDone(c));
  if (todo.length < grid.cells.length) {
    io.print(`${grid.cells.length - todo.length} cell(s) already finished: skipped`);
  }
  const tc = performance.now();
  for (const [i, cell] of todo.entries()) {
    try {
      // The cell's own log goes to its train.log; the sweep prints one line per cell.
      await cellStage(grid, cell, { ...io, print: () => {}, progress: false });
      io.print(
        `cell ${i + 1}/${todo.length} ${cellLabel(cell)}: ${finalOf(cell.dir)}${
          eta(tc, i + 1, todo.length)
        }`,
      );
    } catch (e) {
      failures.push(cellLabel(cell));
      io.print(`cell ${i + 1}/${todo.length} ${cellLabel(cell)}: FAILED: ${(e as Error).message}`);
    }
  }
  const report = writeReport(grid);
  io.print(report.markdown);
  io.print(
    `report: ${join(grid.dir, "results.md")}, results.csv, results.svg (${secs(t0)} in all)`,
  );
  if (failures.length > 0) {
    throw new EngineError(`${failures.length} cell(s) failed: ${failures.join(", ")}`);
  }
}

function secs(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

function eta(t0: number, done: number, total: number): string {
  if (done >= total) return "";
  const per = (performance.now() - t0) / 1000 / done;
  return `  (ETA ${formatDuration(per * (total - done))})`;
}

function finalOf(dir: string): string {
  try {
    const m = JSON.parse(Deno.readTextFileSync(join(dir, "metrics.json")));
    const extra = chosenText(m.final);
    return `${Number(m.final.test_acc).toFixed(2)}%${extra ? ` (${extra})` : ""}`;
  } catch {
    return "done";
  }
}

/** `--slurm-args "--partition gpu"` as one value: node's parser refuses a separate value that
 * starts with a dash. */
function joinSlurmArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--slurm-args" && i + 1 < argv.length) out.push(`--slurm-args=${argv[++i]}`);
    else out.push(argv[i]);
  }
  return out;
}

await runCli(async () => {
  const argv = joinSlurmArgs(Deno.args);
  const args = parseTaskArgs(
    HELP,
    {
      out: { type: "string" },
      runner: { type: "string" },
      "slurm-args": { type: "string" },
      "dry-run": { type: "boolean" },
      wait: { type: "boolean" },
      stage: { type: "string" },
      shard: { type: "string" },
      cell: { type: "string" },
      demo: { type: "boolean" },
    },
    argv.includes("--demo") ? 0 : 1,
    argv,
  );
  if (!args) return 0;
  const v = args.values;
  const runner = v.runner ?? "local";
  if (runner !== "local" && runner !== "slurm") {
    throw new EngineError(`--runner ${runner}: expected local or slurm`);
  }
  const outDir = v.out ? resolve(v.out) : undefined;
  const gridFile = v.demo
    ? demoGrid(outDir ?? resolve("results", "demo-sweep"))
    : args.positionals[0];
  if (!existsSync(gridFile)) throw new EngineError(`${gridFile}: no such grid file`);
  const grid = readGrid(gridFile, outDir);
  const io: StageIo = { print: sayLine, stores: new Map() };

  if (v.stage) {
    switch (v.stage) {
      case "extract": {
        if (!v.shard) throw new EngineError("--stage extract needs --shard I/N");
        const r = await extractStage(grid, parseShard(v.shard), io);
        sayLine(`${v.shard}: encoded ${r.encoded} view(s)`);
        return 0;
      }
      case "cell": {
        const k = Number(v.cell);
        if (!Number.isInteger(k) || k < 0 || k >= grid.cells.length) {
          throw new EngineError(`--cell ${v.cell}: expected 0..${grid.cells.length - 1}`);
        }
        await cellStage(grid, grid.cells[k], io);
        return 0;
      }
      case "report": {
        const r = writeReport(grid);
        console.log(r.markdown);
        return r.complete ? 0 : 1;
      }
      default:
        throw new EngineError(`--stage ${v.stage}: expected extract, cell or report`);
    }
  }

  if (runner === "local") {
    await runLocal(grid, io);
    return 0;
  }
  const ids = await submitSlurm({
    sweepDir: grid.dir,
    workDir: REPO_ROOT,
    command: [
      Deno.execPath(),
      "run",
      "-A",
      join(REPO_ROOT, "tasks", "sweep.ts"),
      grid.file,
      "--out",
      grid.dir,
    ],
    extractShards: grid.shards,
    cells: grid.cells.length,
    slurmArgs: parseSlurmArgs(v["slurm-args"] ?? ""),
    name: grid.name,
  }, { dryRun: v["dry-run"], log: sayLine });
  if (!ids) return 0;
  sayLine(`submitted: extraction ${ids.extract}, cells ${ids.cells}, report ${ids.report}`);
  if (!v.wait) return 0;
  const states = await waitForJobs([ids.extract, ids.cells, ids.report], { log: sayLine });
  const report = writeReport(grid);
  console.log(report.markdown);
  const bad = [...states].filter(([, s]) => s !== "COMPLETED");
  if (bad.length > 0 || !report.complete) {
    throw new EngineError(
      `the sweep did not complete: ${
        bad.map(([id, s]) => `${id} ${s}`).join(", ") || "cells without results"
      }`,
    );
  }
  return 0;
});
