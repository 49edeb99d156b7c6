/** The GPU report as markdown (report.md): one table per section, every number from report.json. */
import { reportedMs, wallMs } from "../../src/bench/report.ts";
import type { RowResult } from "../../src/bench/types.ts";
import type { GpuReport, TorchRow } from "./types.ts";

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

const ms = (v: number | undefined) => v === undefined || !isFinite(v) ? "-" : v.toFixed(3);
const rate = (v: number | undefined) => v === undefined || !isFinite(v) ? "-" : v.toFixed(1);

/** "ok (err 1.2e-6 <= 1.0e-3)", "WRONG (...)", "FAILED: why": the reference check's verdict. */
export function checkCell(r: RowResult): string {
  const o = r.ours;
  const err = o.maxError === undefined ? "" : ` (max err ${o.maxError.toExponential(1)})`;
  if (o.status === "ok") return `ok${err}`;
  return `${o.status.toUpperCase()}${err}${o.note ? `: ${o.note}` : ""}`;
}

function benchRows(rows: readonly RowResult[]): string[][] {
  return rows.map((r) => [
    r.name,
    r.shape,
    checkCell(r),
    ms(reportedMs(r.ours)),
    r.ours.measurement?.clock ?? "-",
    ms(wallMs(r.ours)),
    r.items ? rate(r.items * 1000 / (reportedMs(r.ours) ?? NaN)) : "-",
  ]);
}

/** Engine items/s of a model row, by label, batch and precision. */
function engineRate(
  models: readonly RowResult[],
  label: string,
  batch: number,
  p: string,
): number | undefined {
  const r = models.find((m) => m.name === `${label}-b${batch}-${p}`);
  const t = r ? reportedMs(r.ours) : undefined;
  return t === undefined || !r?.items ? undefined : r.items * 1000 / t;
}

function torchRate(rows: readonly TorchRow[], label: string, batch: number, mode: string) {
  const r = rows.find((t) => t.model === label && t.batch === batch && t.mode === mode);
  return r?.status === "ok" ? r.items_per_s : undefined;
}

function torchCell(rows: readonly TorchRow[], label: string, batch: number, mode: string) {
  const r = rows.find((t) => t.model === label && t.batch === batch && t.mode === mode);
  if (!r) return "-";
  if (r.status === "ok") return rate(r.items_per_s);
  return r.status === "skipped" ? "skipped" : r.status.toUpperCase();
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? "-" : `${(a / b).toFixed(2)}`;

export function formatMarkdown(r: GpuReport): string {
  const out: string[] = [];
  out.push(`# GPU report (${r.mode})`, "");
  out.push(
    `Adapter: ${String(r.adapter.description ?? "?")}; started ${r.started}; ` +
      `${r.seconds.toFixed(0)} s of a ${r.budgetSeconds} s budget.`,
  );
  out.push(`Versions: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(", ")}.`);
  out.push("", "## Conformance", "");
  out.push(table(
    ["list", "passed", "failed", "unsupported", "seconds", "failing"],
    r.conformance.map((c) => [
      c.list,
      String(c.passed),
      String(c.failed),
      String(c.unsupported),
      c.seconds.toFixed(1),
      c.failing.slice(0, 10).join(" ") || "-",
    ]),
  ));
  const benchHeader = ["row", "shape", "reference check", "ms", "clock", "wall ms", "items/s"];
  out.push("", "## Kernel rows (engine)", "");
  out.push(table(benchHeader, benchRows(r.kernels)));
  out.push("", "## Model rows (engine)", "");
  out.push(table(benchHeader, benchRows(r.models)));
  if (r.skippedForBudget.length > 0) {
    out.push("", `Not run (time budget spent): ${r.skippedForBudget.join(", ")}.`);
  }
  out.push("", "## Engine vs PyTorch (items/s; ratio > 1: the engine is faster)", "");
  if (r.torch.skipped) out.push(`PyTorch peer skipped: ${r.torch.skipped}`, "");
  else {
    out.push(`PyTorch ${r.torch.torch} on ${r.torch.device_name} (${r.torch.device}).`, "");
  }
  const labels = [...new Set(r.models.map((m) => m.name.replace(/-b\d+-f(32|16)$/, "")))];
  const pairs = labels.flatMap((l) =>
    [...new Set(r.models.filter((m) => m.name.startsWith(`${l}-b`)).map((m) => m.items!))]
      .map((b) => [l, b] as const)
  );
  const t = r.torch.rows;
  out.push(table(
    [
      "model",
      "batch",
      "engine f32",
      "engine f16",
      "torch fp32",
      "torch tf32",
      "torch fp16",
      "f32/fp32",
      "f32/tf32",
      "f16/fp16",
    ],
    pairs.map(([l, b]) => {
      const e32 = engineRate(r.models, l, b, "f32"), e16 = engineRate(r.models, l, b, "f16");
      return [
        l,
        String(b),
        rate(e32),
        rate(e16),
        torchCell(t, l, b, "fp32"),
        torchCell(t, l, b, "tf32"),
        torchCell(t, l, b, "fp16"),
        ratio(e32, torchRate(t, l, b, "fp32")),
        ratio(e32, torchRate(t, l, b, "tf32")),
        ratio(e16, torchRate(t, l, b, "fp16")),
      ];
    }),
  ));
  const notes = t.filter((x) => x.status !== "ok" && x.note).map((x) =>
    `${x.model} b${x.batch} ${x.mode}: ${x.status} (${x.note})`
  );
  const uniqueNotes = [...new Set(notes.map((n) => n.replace(/^.* b\d+ /, "")))];
  for (const n of uniqueNotes) out.push("", `Torch note: ${n}`);
  const z = r.amu.sizes;
  out.push("", "## AMU training epoch", "");
  out.push(
    `${z.train} rows, CLIP dim ${z.clipDim}, aux dim ${z.auxDim}, ${z.classes} classes, ` +
      `batch ${z.batch}.`,
    "",
  );
  const e = r.amu.engine;
  const amuRows: string[][] = [];
  if (e) {
    amuRows.push([
      "engine (WebGPU)",
      String(e.steps),
      `${e.status} (loss rel err ${e.lossRelError.toExponential(1)} <= ${e.lossBound})`,
      ms(e.epochMs),
      "-",
    ]);
  } else amuRows.push(["engine (WebGPU)", "-", `skipped: ${r.amu.skipped ?? "?"}`, "-", "-"]);
  for (const [k, v] of Object.entries(r.torch.amu)) {
    amuRows.push([
      `torch ${k}`,
      String(v.steps ?? "-"),
      `${v.status} (first loss rel err ${v.rel_error.toExponential(1)} <= ${v.bound})`,
      ms(v.epoch_ms),
      ratio(v.epoch_ms, e?.epochMs),
    ]);
  }
  if (Object.keys(r.torch.amu).length === 0) {
    amuRows.push(["torch", "-", `skipped: ${r.torch.skipped ?? "not run"}`, "-", "-"]);
  }
  out.push(table(["runner", "steps", "check", "epoch ms", "torch/engine time"], amuRows));
  if (r.notes.length > 0) out.push("", "## Notes", "", ...r.notes.map((n) => `- ${n}`));
  return out.join("\n") + "\n";
}
