/** What a task-level benchmark suite of `deno task bench` provides (a whole workload with its own
 * flags and peers, e.g. AMU-Tuning against PyTorch), and small timing helpers. A suite lives in
 * `tasks/bench/<name>.ts`, exports a `BenchSuite`, and is listed in `tasks/bench.ts`. */
import type { FlagGroup, FlagValue } from "../../src/util/flags.ts";

export interface BenchSuite {
  name: string;
  /** One line for `deno task bench --help`. */
  summary: string;
  /** The suite's own flags (shown in help; parsed by tasks/bench.ts). */
  flags: FlagGroup;
  run(flags: ReadonlyMap<string, FlagValue>): Promise<void>;
}

/** Milliseconds `fn` takes. */
export async function timeMs(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 3 : 1)} s`;
}

/** A plain-text table with right-aligned numeric columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** Runs `/usr/bin/python3 -c import torch`: whether the PyTorch peer can run here. */
export function havePythonTorch(): boolean {
  try {
    return new Deno.Command("/usr/bin/python3", { args: ["-c", "import torch"] }).outputSync()
      .success;
  } catch {
    return false;
  }
}
