/** A sweep's results: per dataset and method, test accuracy mean +- std over seeds at each shot
 * count, and the average over datasets, laid out like the paper's table (results.md), as rows
 * (results.csv), and as a figure of accuracy vs shots, one line per method averaged over
 * datasets (results.svg). Failed or missing cells are listed, never dropped. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../../src/util/npy.ts";
import { esc, tickStep } from "../train/results.ts";
import { type Cell, cellLabel, type Grid } from "./grid.ts";
import { FAILED_FILE } from "./stages.ts";

export type CellStatus = "done" | "failed" | "missing";

export interface CellResult {
  cell: Cell;
  status: CellStatus;
  testAcc?: number;
  /** The method's chosen hyper-parameters (beta, alpha, C, best_epoch...). */
  chosen?: Record<string, number | string>;
  error?: string;
}

/** Reads every cell's metrics.json (or failed.json). */
export function collectResults(grid: Grid): CellResult[] {
  return grid.cells.map((cell): CellResult => {
    const metrics = join(cell.dir, "metrics.json");
    if (existsSync(metrics)) {
      try {
        const m = JSON.parse(Deno.readTextFileSync(metrics));
        if (typeof m?.final?.test_acc === "number") {
          const { test_acc: _, ...chosen } = m.final;
          return { cell, status: "done", testAcc: m.final.test_acc, chosen };
        }
      } catch { /* reported as missing below */ }
    }
    const failed = join(cell.dir, FAILED_FILE);
    if (existsSync(failed)) {
      let error = "failed";
      try {
        error = JSON.parse(Deno.readTextFileSync(failed)).error ?? error;
      } catch { /* the file itself says it failed */ }
      return { cell, status: "failed", error };
    }
    return { cell, status: "missing" };
  });
}

interface Stat {
  mean: number;
  std: number;
  n: number;
}

function stat(values: number[]): Stat | undefined {
  if (values.length === 0) return undefined;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  // Sample standard deviation over seeds (0 for one seed).
  const v = values.length > 1
    ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1)
    : 0;
  return { mean, std: Math.sqrt(v), n: values.length };
}

export interface SweepTable {
  /** dataset label (or "average") -> method -> shots -> stat over seeds. */
  rows: Map<string, Map<string, Map<number, Stat | undefined>>>;
  failed: CellResult[];
  missing: CellResult[];
}

export function tabulate(grid: Grid, results: CellResult[]): SweepTable {
  const rows: SweepTable["rows"] = new Map();
  for (const d of grid.datasets) {
    const byMethod = new Map<string, Map<number, Stat | undefined>>();
    for (const m of grid.methods) {
      const byShots = new Map<number, Stat | undefined>();
      for (const k of grid.shots) {
        const accs = results
          .filter((r) =>
            r.status === "done" && r.cell.dataset === d && r.cell.method === m && r.cell.shots === k
          )
          .map((r) => r.testAcc!);
        byShots.set(k, stat(accs));
      }
      byMethod.set(m, byShots);
    }
    rows.set(d.label, byMethod);
  }
  // The average over datasets of the per-dataset means (defined when every dataset has one).
  const average = new Map<string, Map<number, Stat | undefined>>();
  for (const m of grid.methods) {
    const byShots = new Map<number, Stat | undefined>();
    for (const k of grid.shots) {
      const means = grid.datasets.map((d) => rows.get(d.label)!.get(m)!.get(k)?.mean);
      byShots.set(
        k,
        means.every((x) => x !== undefined) ? stat(means as number[]) : undefined,
      );
    }
    average.set(m, byShots);
  }
  if (grid.datasets.length > 1) rows.set("average", average);
  return {
    rows,
    failed: results.filter((r) => r.status === "failed"),
    missing: results.filter((r) => r.status === "missing"),
  };
}

const cellText = (s: Stat | undefined) =>
  s === undefined
    ? "-"
    : s.n > 1
    ? `${s.mean.toFixed(2)} ± ${s.std.toFixed(2)}`
    : s.mean.toFixed(2);

export function resultsMarkdown(grid: Grid, table: SweepTable): string {
  const lines: string[] = [`# ${grid.name}: test accuracy (%)`, ""];
  lines.push(
    `Mean ± standard deviation over seeds ${grid.seeds.join(", ")}; ${grid.cells.length} cells.`,
    "",
  );
  for (const [dataset, byMethod] of table.rows) {
    lines.push(`## ${dataset === "average" ? "Average over datasets" : dataset}`, "");
    lines.push(`| method | ${grid.shots.map((k) => `${k}-shot`).join(" | ")} |`);
    lines.push(`| --- | ${grid.shots.map(() => "---:").join(" | ")} |`);
    for (const [method, byShots] of byMethod) {
      lines.push(`| ${method} | ${grid.shots.map((k) => cellText(byShots.get(k))).join(" | ")} |`);
    }
    lines.push("");
  }
  if (table.failed.length + table.missing.length > 0) {
    lines.push("## Cells without a result", "");
    for (const r of [...table.failed, ...table.missing]) {
      lines.push(
        `- ${cellLabel(r.cell)}: ${r.status}${r.error ? ` (${r.error.split("\n")[0]})` : ""}`,
      );
    }
    lines.push("");
  }
  return lines.join("\n");
}

export function resultsCsv(results: CellResult[], table: SweepTable): string {
  const q = (s: string) => /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  const lines = ["dataset,method,shots,seed,status,test_acc,chosen"];
  for (const r of results) {
    const c = r.cell;
    lines.push(
      [
        c.dataset.label,
        c.method,
        String(c.shots),
        String(c.seed),
        r.status,
        r.testAcc === undefined ? "" : String(r.testAcc),
        q(r.chosen ? JSON.stringify(r.chosen) : r.error ?? ""),
      ].join(","),
    );
  }
  for (const [dataset, byMethod] of table.rows) {
    for (const [method, byShots] of byMethod) {
      for (const [k, s] of byShots) {
        if (!s) continue;
        lines.push(
          [dataset, method, String(k), "mean", `n=${s.n}`, String(s.mean), `std=${s.std}`].join(
            ",",
          ),
        );
      }
    }
  }
  return lines.join("\n") + "\n";
}

const COLORS = ["#1f6fd1", "#e07b00", "#2a9d3a", "#c23b3b", "#7b4fc9", "#555555", "#b5179e"];

/** Accuracy vs shots, one line per method, averaged over datasets (shots equally spaced). */
export function resultsSvg(grid: Grid, table: SweepTable): string {
  const source = table.rows.get(grid.datasets.length > 1 ? "average" : grid.datasets[0].label)!;
  const W = 720, H = 420, left = 64, right = 170, top = 48, bottom = 56;
  const pw = W - left - right, ph = H - top - bottom;
  const values = [...source.values()].flatMap((m) =>
    [...m.values()].flatMap((s) => s ? [s.mean] : [])
  );
  let lo = values.length ? Math.min(...values) : 0, hi = values.length ? Math.max(...values) : 100;
  const pad = Math.max(1, (hi - lo) * 0.1);
  const yStep = tickStep(hi - lo + 2 * pad, 6);
  lo = Math.max(0, Math.floor((lo - pad) / yStep) * yStep);
  hi = Math.min(100, Math.ceil((hi + pad) / yStep) * yStep);
  const x = (i: number) =>
    left + (grid.shots.length === 1 ? pw / 2 : (i / (grid.shots.length - 1)) * pw);
  const y = (acc: number) => top + ph - ((acc - lo) / (hi - lo)) * ph;
  const title = `${grid.name}: ${
    grid.datasets.length > 1 ? "average over datasets" : grid.datasets[0].label
  }`;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left + pw / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`,
  ];
  for (let v = lo; v <= hi + yStep / 2; v += yStep) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${left}" y1="${yy}" x2="${left + pw}" y2="${yy}" stroke="#e4e4e4"/>`,
      `<text x="${left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle">${
        Number(v.toFixed(6))
      }</text>`,
    );
  }
  grid.shots.forEach((k, i) => {
    const xx = x(i).toFixed(1);
    out.push(
      `<line x1="${xx}" y1="${top + ph}" x2="${xx}" y2="${top + ph + 5}" stroke="#333"/>`,
      `<text x="${xx}" y="${top + ph + 19}" text-anchor="middle">${k}</text>`,
    );
  });
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + ph}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top + ph}" x2="${left + pw}" y2="${top + ph}" stroke="#333"/>`,
    `<text x="${left + pw / 2}" y="${H - 14}" text-anchor="middle">shots per class</text>`,
    `<text transform="translate(18 ${top + ph / 2}) rotate(-90)" text-anchor="middle">` +
      `test accuracy (%)</text>`,
  );
  [...source].forEach(([method, byShots], m) => {
    const color = COLORS[m % COLORS.length];
    const pts = grid.shots.flatMap((k, i) => {
      const s = byShots.get(k);
      return s ? [[x(i), y(s.mean)]] : [];
    });
    if (pts.length > 0) {
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${
          pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ")
        }"/>`,
        ...pts.map(([a, b]) =>
          `<circle cx="${a.toFixed(1)}" cy="${b.toFixed(1)}" r="3" fill="${color}"/>`
        ),
      );
    }
    const ly = top + 10 + m * 22, lx = left + pw + 18;
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 26}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${lx + 32}" y="${ly}" dominant-baseline="middle">${esc(method)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** Writes results.md, results.csv and results.svg into the sweep folder; returns the table and
 * whether every cell has a result. */
export function writeReport(
  grid: Grid,
): { table: SweepTable; complete: boolean; markdown: string } {
  const results = collectResults(grid);
  const table = tabulate(grid, results);
  const markdown = resultsMarkdown(grid, table);
  Deno.mkdirSync(grid.dir, { recursive: true });
  writeFileAtomic(join(grid.dir, "results.md"), markdown);
  writeFileAtomic(join(grid.dir, "results.csv"), resultsCsv(results, table));
  writeFileAtomic(join(grid.dir, "results.svg"), resultsSvg(grid, table));
  return { table, complete: table.failed.length + table.missing.length === 0, markdown };
}
