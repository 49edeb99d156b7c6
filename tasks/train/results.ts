/** The experiment's own files in `results/<exp_name>/`, beside the trainer's (config.json,
 * order.npy, metrics.json, checkpoint_*.npz, train.log):
 *   experiment.json      every resolved setting (and where it came from), dataset, models with
 *                        SHA-256s, feature cache, adapter
 *   few_shot.json        the sampled training images (paths relative to the dataset root), so a
 *                        run can be repeated exactly (`--fewshot_file`)
 *   metrics.csv          metrics.json's epochs as a table
 *   accuracy.svg         fused, auxiliary-branch and zero-shot test accuracy per epoch
 *   skipped_images.txt   unreadable images that were left out (only when there were some) */
import { isAbsolute, join, relative, resolve } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import type { AmuMetrics } from "../../src/amu/metrics.ts";
import type { LabeledImage } from "../../src/data/datasets.ts";
import { writeFileAtomic } from "../../src/util/npy.ts";
import type { SkippedRecord } from "../../src/data/feature_pipeline.ts";

export const RESULT_FILES = {
  experiment: "experiment.json",
  fewShot: "few_shot.json",
  csv: "metrics.csv",
  plot: "accuracy.svg",
  skipped: "skipped_images.txt",
} as const;

export function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

const CSV_COLUMNS = [
  "epoch",
  "lr",
  "train_loss",
  "train_acc",
  "test_acc",
  "aux_acc",
  "test_loss",
  "zero_shot_acc",
] as const;

export function metricsCsv(m: AmuMetrics): string {
  const lines = [CSV_COLUMNS.join(",")];
  for (const e of m.epochs) {
    lines.push(
      [
        e.epoch,
        e.lr,
        e.train_loss,
        e.train_acc,
        e.test_acc,
        e.aux_acc,
        e.test_loss,
        m.zero_shot_acc,
      ].map((v) => String(v)).join(","),
    );
  }
  return lines.join("\n") + "\n";
}

export function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A "nice" tick step (1, 2, 5 x 10^k) giving about `count` ticks over `span`. */
export function tickStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(Math.max(0, 2 - Math.floor(Math.log10(v))));
}

const PLOT = { W: 720, H: 420, left: 64, right: 190, top: 48, bottom: 56 } as const;

/** The plot area and its scales: accuracy (y) from `lo` to `hi` in ticks of `yStep`, epochs (x)
 * 1 to `maxEpoch` in ticks of `xStep`. */
interface PlotFrame {
  pw: number;
  ph: number;
  lo: number;
  hi: number;
  yStep: number;
  maxEpoch: number;
  xStep: number;
  x: (epoch: number) => number;
  y: (acc: number) => number;
}

/** One line of the chart: accuracy points (epoch, percent). */
interface Series {
  name: string;
  color: string;
  dash?: string;
  points: [number, number][];
}

/** Line chart of test accuracy per epoch: fused model, auxiliary branch, zero-shot CLIP. */
export function accuracySvg(m: AmuMetrics, title: string): string {
  const frame = plotFrame(m);
  const series = accuracySeries(m, frame.maxEpoch);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PLOT.W}" height="${PLOT.H}" ` +
    `viewBox="0 0 ${PLOT.W} ${PLOT.H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${PLOT.W}" height="${PLOT.H}" fill="white"/>`,
    `<text x="${PLOT.left + frame.pw / 2}" y="24" text-anchor="middle" font-size="15">` +
    `${esc(title)}</text>`,
    ...gridAndAxes(frame),
    ...seriesLines(series, frame),
  ];
  // Best epoch marker.
  if (m.best.epoch > 0) {
    const bx = frame.x(m.best.epoch).toFixed(1), by = frame.y(m.best.test_acc).toFixed(1);
    out.push(
      `<circle cx="${bx}" cy="${by}" r="5" fill="none" stroke="#1f6fd1" stroke-width="1.5"/>`,
    );
  }
  out.push(...legend(m, series, frame), "</svg>");
  return out.join("\n") + "\n";
}

function plotFrame(m: AmuMetrics): PlotFrame {
  const { left, top } = PLOT;
  const pw = PLOT.W - left - PLOT.right, ph = PLOT.H - top - PLOT.bottom;
  const epochs = m.epochs;
  const values = [m.zero_shot_acc, ...epochs.flatMap((e) => [e.test_acc, e.aux_acc])];
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  const pad = (hi - lo) * 0.08;
  lo = Math.max(0, lo - pad);
  hi = Math.min(100, hi + pad);
  if (!(hi > lo)) hi = lo + 1;
  const yStep = tickStep(hi - lo, 6);
  lo = Math.floor(lo / yStep) * yStep;
  hi = Math.ceil(hi / yStep) * yStep;
  const maxEpoch = Math.max(1, epochs.length ? epochs[epochs.length - 1].epoch : 1);
  const xStep = Math.max(1, tickStep(maxEpoch, 10));
  const x = (epoch: number) =>
    left + (maxEpoch <= 1 ? pw / 2 : ((epoch - 1) / (maxEpoch - 1)) * pw);
  const y = (acc: number) => top + ph - ((acc - lo) / (hi - lo)) * ph;
  return { pw, ph, lo, hi, yStep, maxEpoch, xStep, x, y };
}

function gridAndAxes(f: PlotFrame): string[] {
  const { left, top, H } = PLOT;
  const { pw, ph } = f;
  const out: string[] = [];
  for (let v = f.lo; v <= f.hi + f.yStep / 2; v += f.yStep) {
    const yy = f.y(v).toFixed(1);
    out.push(
      `<line x1="${left}" y1="${yy}" x2="${left + pw}" y2="${yy}" stroke="#e4e4e4"/>`,
      `<text x="${left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle">` +
        `${fmt(Number(v.toFixed(6)))}</text>`,
    );
  }
  for (let e = 1; e <= f.maxEpoch; e += e === 1 && f.xStep > 1 ? f.xStep - 1 : f.xStep) {
    const xx = f.x(e).toFixed(1);
    out.push(
      `<line x1="${xx}" y1="${top + ph}" x2="${xx}" y2="${top + ph + 5}" stroke="#333"/>`,
      `<text x="${xx}" y="${top + ph + 19}" text-anchor="middle">${e}</text>`,
    );
  }
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + ph}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top + ph}" x2="${left + pw}" y2="${top + ph}" stroke="#333"/>`,
    `<text x="${left + pw / 2}" y="${H - 14}" text-anchor="middle">epoch</text>`,
    `<text transform="translate(18 ${top + ph / 2}) rotate(-90)" text-anchor="middle">` +
      `test accuracy (%)</text>`,
  );
  return out;
}

function accuracySeries(m: AmuMetrics, maxEpoch: number): Series[] {
  const epochs = m.epochs;
  return [
    {
      name: "AMU (fused)",
      color: "#1f6fd1",
      points: epochs.map((e) => [e.epoch, e.test_acc]),
    },
    {
      name: "aux branch",
      color: "#e07b00",
      points: epochs.map((e) => [e.epoch, e.aux_acc]),
    },
    {
      name: "zero-shot CLIP",
      color: "#555555",
      dash: "6 4",
      points: epochs.length
        ? [[1, m.zero_shot_acc], [maxEpoch, m.zero_shot_acc]]
        : [[1, m.zero_shot_acc]],
    },
  ];
}

/** Each series as a polyline, with a dot per epoch for solid lines of up to 60 points. */
function seriesLines(series: readonly Series[], f: PlotFrame): string[] {
  const out: string[] = [];
  for (const s of series) {
    if (s.points.length === 0) continue;
    const pts = s.points.map(([e, a]) => `${f.x(e).toFixed(1)},${f.y(a).toFixed(1)}`).join(" ");
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2"` +
        (s.dash ? ` stroke-dasharray="${s.dash}"` : "") + ` points="${pts}"/>`,
    );
    if (!s.dash && s.points.length <= 60) {
      for (const [e, a] of s.points) {
        out.push(
          `<circle cx="${f.x(e).toFixed(1)}" cy="${f.y(a).toFixed(1)}" r="2.5" fill="${s.color}"/>`,
        );
      }
    }
  }
  return out;
}

/** The series' names, then the best and zero-shot accuracies, right of the plot. */
function legend(m: AmuMetrics, series: readonly Series[], f: PlotFrame): string[] {
  const out: string[] = [];
  const lx = PLOT.left + f.pw + 18;
  series.forEach((s, i) => {
    const ly = PLOT.top + 10 + i * 22;
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 26}" y2="${ly}" stroke="${s.color}" ` +
        `stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
      `<text x="${lx + 32}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`,
    );
  });
  const notes = [
    `best: ${m.best.test_acc.toFixed(2)}%`,
    m.best.epoch > 0 ? `at epoch ${m.best.epoch}` : "(zero-shot)",
    `zero-shot: ${m.zero_shot_acc.toFixed(2)}%`,
  ];
  notes.forEach((n, i) => {
    out.push(`<text x="${lx}" y="${PLOT.top + 90 + i * 18}">${esc(n)}</text>`);
  });
  return out;
}

/** Rewrites metrics.csv and accuracy.svg from the run's metrics (as metrics.json holds them). */
export function writeMetricViews(dir: string, metrics: AmuMetrics, title: string): void {
  writeFileAtomic(join(dir, RESULT_FILES.csv), metricsCsv(metrics));
  writeFileAtomic(join(dir, RESULT_FILES.plot), accuracySvg(metrics, title));
}

export interface FewShotRecord {
  dataset: string;
  root_path: string;
  shots: number;
  rand_seed: number;
  sampling: string;
  class_names: string[];
  images: { path: string; label: number; class: string }[];
  skipped?: { path: string; reason: string }[];
}

function portablePath(path: string, root: string): string {
  const rel = relative(root, path);
  return rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

export function fewShotRecord(
  dataset: string,
  root: string,
  shots: number,
  seed: number,
  sampling: string,
  classnames: readonly string[],
  images: readonly LabeledImage[],
  skipped: readonly SkippedRecord[],
): FewShotRecord {
  return {
    dataset,
    root_path: root,
    shots,
    rand_seed: seed,
    sampling,
    class_names: [...classnames],
    images: images.map((it) => ({
      path: portablePath(it.path, root),
      label: it.label,
      class: classnames[it.label],
    })),
    ...(skipped.length
      ? {
        skipped: skipped.filter((s) => s.split === "train").map((s) => ({
          path: portablePath(s.path, root),
          reason: s.reason,
        })),
      }
      : {}),
  };
}

/** The image list of a few_shot.json (paths relative to `root` unless absolute). */
export function readFewShotFile(
  path: string,
  root: string,
  classes: number,
): LabeledImage[] {
  let data: FewShotRecord;
  try {
    data = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    throw new EngineError(`--fewshot_file ${path}: ${(e as Error).message}`);
  }
  if (!data || !Array.isArray(data.images)) {
    throw new EngineError(`--fewshot_file ${path}: no "images" list (expected a few_shot.json)`);
  }
  return data.images.map((it, i) => {
    if (
      typeof it?.path !== "string" || !Number.isInteger(it.label) || it.label < 0 ||
      it.label >= classes
    ) {
      throw new EngineError(
        `--fewshot_file ${path}: images[${i}] needs a path and a label in 0..${classes - 1}`,
      );
    }
    return { path: resolve(root, it.path), label: it.label };
  });
}

export function skippedText(skipped: readonly SkippedRecord[]): string {
  return skipped.map((s) => `${s.split}\t${s.path}\t${s.reason}`).join("\n") + "\n";
}
