/** A sweep's grid file (YAML or JSON) and the cells it expands to.
 *
 *   name: tip_vs_amu            # results/<name>/ unless --out
 *   datasets:                   # each with its own root, or names under a shared root_path
 *     - {name: imagefolder, root_path: data/flowers}
 *     - caltech101
 *   root_path: /data            # for datasets given by name only
 *   shots: [1, 2, 4, 8, 16]
 *   seeds: [1, 2, 3]
 *   methods: [zero-shot, tip-adapter, tip-adapter-f, linear-probe, amu]
 *   shards: 4                   # extraction shards (array tasks under Slurm; default 1)
 *   flags: {clip_backbone: RN50, augment_epoch: 10}      # `deno task train` flags, every cell
 *   method_flags: {amu: {train_epoch: 20}, tip-adapter-f: {train_epoch: 20}}
 *
 * A cell is one (dataset, shots, seed, method): one `deno task train` run in
 * `<sweep>/<dataset>/<method>/<shots>shot-seed<seed>/`. Every cell's flags go through the train
 * flag parser when the grid is read, so a bad key fails before anything runs, naming the cell. */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { EngineError } from "../../src/util/errors.ts";
import { isMethodName, METHOD_NAMES, type MethodName } from "../../src/amu/method.ts";
import { parseExperimentArgs } from "../train/settings.ts";
import type { ExperimentSettings } from "../train/settings.ts";

export interface GridDataset {
  /** Layout name for --dataset (imagefolder, caltech101, ...). */
  name: string;
  root: string;
  /** Unique label in folder names and tables (the name, or name-2 for a repeat). */
  label: string;
}

export interface Cell {
  index: number;
  dataset: GridDataset;
  shots: number;
  seed: number;
  method: MethodName;
  /** The run folder. */
  dir: string;
  /** `deno task train` arguments of this cell (its --out included). */
  argv: string[];
  settings: ExperimentSettings;
}

export interface Grid {
  file: string;
  name: string;
  dir: string;
  datasets: GridDataset[];
  shots: number[];
  seeds: number[];
  methods: MethodName[];
  shards: number;
  cells: Cell[];
}

const KEYS = [
  "name",
  "datasets",
  "root_path",
  "shots",
  "seeds",
  "methods",
  "shards",
  "flags",
  "method_flags",
];
/** Flags the grid sets per cell; `flags` may not set them. */
const CELL_FLAGS = ["dataset", "root_path", "shots", "rand_seed", "method", "out", "exp_name"];

function fail(file: string, message: string): never {
  throw new EngineError(`${file}: ${message}`);
}

function positiveInts(file: string, key: string, v: unknown): number[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0 || !list.every((x) => Number.isInteger(x) && x >= 1)) {
    fail(file, `'${key}' must be a positive integer or a list of them, got ${JSON.stringify(v)}`);
  }
  return [...new Set(list as number[])];
}

function flagArgs(file: string, where: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v !== "object" || Array.isArray(v)) {
    fail(file, `'${where}' must be a mapping of flags`);
  }
  const args: string[] = [];
  for (const [k, value] of Object.entries(v as Record<string, unknown>)) {
    if (CELL_FLAGS.includes(k)) {
      fail(file, `'${where}' may not set '${k}': the grid sets it for each cell`);
    }
    if (value === null || value === undefined || value === "") continue;
    if (typeof value === "object") fail(file, `'${where}.${k}' must be a single value`);
    args.push(typeof value === "boolean" ? (value ? `--${k}` : `--${k}=false`) : `--${k}=${value}`);
  }
  return args;
}

/** Reads and expands a grid; `outDir` overrides results/<name>. */
export function readGrid(file: string, outDir?: string): Grid {
  let data: unknown;
  try {
    const text = Deno.readTextFileSync(file);
    data = file.toLowerCase().endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    fail(file, `cannot read the grid: ${(e as Error).message}`);
  }
  if (!data || typeof data !== "object" || Array.isArray(data)) {
    fail(file, "expected a mapping (name, datasets, shots, seeds, methods, flags)");
  }
  const g = data as Record<string, unknown>;
  for (const k of Object.keys(g)) {
    if (!KEYS.includes(k)) fail(file, `unknown key '${k}' (known: ${KEYS.join(", ")})`);
  }
  const name =
    typeof g.name === "string" && /^[A-Za-z0-9_.-]+$/.test(g.name) && !/^\.+$/.test(g.name)
      ? g.name
      : fail(file, "'name' must be a plain name (letters, digits, '_', '-', '.')");
  const dir = resolve(outDir ?? resolve("results", name));
  const sharedRoot = typeof g.root_path === "string" ? g.root_path : undefined;
  if (!Array.isArray(g.datasets) || g.datasets.length === 0) {
    fail(file, "'datasets' must list at least one dataset");
  }
  const labels = new Map<string, number>();
  const datasets = (g.datasets as unknown[]).map((d, i): GridDataset => {
    const entry = typeof d === "string" ? { name: d } : d as Record<string, unknown>;
    if (!entry || typeof entry !== "object" || typeof entry.name !== "string") {
      fail(file, `datasets[${i}] must be a name or {name, root_path}`);
    }
    for (const k of Object.keys(entry)) {
      if (k !== "name" && k !== "root_path") fail(file, `datasets[${i}]: unknown key '${k}'`);
    }
    const root = typeof entry.root_path === "string" ? entry.root_path : sharedRoot;
    if (!root) fail(file, `datasets[${i}] (${entry.name}) has no root_path (nor does the grid)`);
    if (!existsSync(root)) {
      fail(file, `datasets[${i}] (${entry.name}): root_path ${resolve(root)} does not exist`);
    }
    const n = (labels.get(entry.name) ?? 0) + 1;
    labels.set(entry.name, n);
    return {
      name: entry.name,
      root: resolve(root),
      label: n > 1 ? `${entry.name}-${n}` : entry.name,
    };
  });
  const shots = positiveInts(file, "shots", g.shots);
  const seeds = positiveInts(file, "seeds", g.seeds ?? 1);
  const methodList = Array.isArray(g.methods) ? g.methods : [g.methods ?? "amu"];
  for (const m of methodList) {
    if (typeof m !== "string" || !isMethodName(m)) {
      fail(file, `unknown method ${JSON.stringify(m)} (known: ${METHOD_NAMES.join(", ")})`);
    }
  }
  const methods = [...new Set(methodList as MethodName[])];
  const shards = positiveInts(file, "shards", g.shards ?? 1)[0];
  const common = flagArgs(file, "flags", g.flags);
  const perMethod = (g.method_flags ?? {}) as Record<string, unknown>;
  if (typeof perMethod !== "object" || Array.isArray(perMethod)) {
    fail(file, "'method_flags' must map method names to flags");
  }
  for (const m of Object.keys(perMethod)) {
    if (!isMethodName(m)) fail(file, `method_flags: unknown method '${m}'`);
  }

  const cells: Cell[] = [];
  for (const dataset of datasets) {
    for (const method of methods) {
      for (const k of shots) {
        for (const seed of seeds) {
          const cellDir = resolve(dir, dataset.label, method, `${k}shot-seed${seed}`);
          const argv = [
            `--dataset=${dataset.name}`,
            `--root_path=${dataset.root}`,
            `--shots=${k}`,
            `--rand_seed=${seed}`,
            `--method=${method}`,
            `--out=${cellDir}`,
            ...common,
            ...flagArgs(file, `method_flags.${method}`, perMethod[method]),
          ];
          const label = `${dataset.label} ${method} ${k}-shot seed ${seed}`;
          let settings: ExperimentSettings | "help";
          try {
            settings = parseExperimentArgs(argv);
          } catch (e) {
            fail(file, `cell ${label}: ${(e as Error).message}`);
          }
          if (settings === "help") fail(file, `cell ${label}: 'help' is not a flag for a grid`);
          cells.push({
            index: cells.length,
            dataset,
            shots: k,
            seed,
            method,
            dir: cellDir,
            argv,
            settings,
          });
        }
      }
    }
  }
  return { file: resolve(file), name, dir, datasets, shots, seeds, methods, shards, cells };
}

/** A cell's name in messages and tables. */
export function cellLabel(c: Cell): string {
  return `${c.dataset.label}/${c.method}/${c.shots}shot-seed${c.seed}`;
}
