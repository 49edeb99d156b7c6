/** The GPU report (run by scripts/gpu-report.sh): conformance counts, engine kernel and model
 * rows (each checked against its reference before it is timed), the PyTorch peer on the same
 * models and inputs, and one AMU training epoch against PyTorch; report.json and report.md in
 * --out. Without --local it refuses a software adapter (llvmpipe/lavapipe), so numbers from a
 * CPU rasteriser can never be reported as GPU numbers.
 *
 *   deno run -A scripts/gpu_report.ts --local --out DIR [--shared DIR]
 *   deno run -A scripts/gpu_report.ts --out DIR --shared DIR --models DIR --generator DIR
 *   deno run -A scripts/gpu_report.ts --check-adapter        (exit 3 on a software adapter) */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { getGpu, type Gpu } from "../src/gpu/mod.ts";
import { DEFAULT_AMU_CONFIG } from "../src/amu/config.ts";
import type { TimingOptions } from "../src/bench/measure.ts";
import { runCase } from "../src/bench/runner.ts";
import { KERNEL_SUITES } from "../src/bench/suites/kernels.ts";
import type { BenchCase, RowResult } from "../src/bench/types.ts";
import { runConformance } from "../tasks/conformance.ts";
import { amuEpoch, type AmuSizes } from "./gpu_report/amu.ts";
import { formatMarkdown } from "./gpu_report/markdown.ts";
import { reportModelCase } from "./gpu_report/models.ts";
import type { ConformanceCount, GpuReport, TorchSection } from "./gpu_report/types.ts";

/** Exit status when the adapter is software and --local was not given. */
export const EXIT_SOFTWARE_ADAPTER = 3;

interface Profile {
  readonly models: readonly { label: string; folder: string }[];
  readonly batches: readonly number[];
  readonly kernelFilter: ((c: BenchCase) => boolean) | undefined;
  readonly large: boolean;
  readonly timing: TimingOptions;
  readonly tune: boolean;
  readonly amu: AmuSizes;
  readonly torchRuns: number;
}

const TINY_MODELS = [
  { label: "vit-tiny", folder: "fixtures/clip_vit_tiny" },
  { label: "rn-tiny", folder: "fixtures/clip_rn_tiny" },
  { label: "text-tiny", folder: "fixtures/clip_text_tiny" },
  { label: "resnet-tiny", folder: "fixtures/aux_resnet_tiny" },
];

/** export.py --full's folders (same names as src/bench/suites/models.ts's FULL_MODELS). */
const FULL_MODELS = [
  { label: "vit-b16", folder: "clip_vit_b16" },
  { label: "rn50", folder: "clip_rn50" },
  { label: "text", folder: "clip_text_b" },
  { label: "resnet50", folder: "aux_resnet50" },
];

/** --local: tiny fixtures, small batches, few runs, a few small kernel rows, the small AMU
 * epoch; sized to finish well under two minutes on a 2-core llvmpipe machine. */
const LOCAL: Profile = {
  models: TINY_MODELS,
  batches: [1, 8],
  kernelFilter: (c) => ["matmul-256", "vit-b16-b1-softmax", "text-b1-causal-attn"].includes(c.name),
  large: false,
  timing: {
    runs: 3,
    minRuns: 2,
    warmups: 1,
    targetRunMs: 30,
    maxReps: 4,
    budgetMs: 1500,
  },
  tune: false,
  amu: { train: 512, classes: 50, clipDim: 64, auxDim: 128, batch: DEFAULT_AMU_CONFIG.batchSize },
  torchRuns: 3,
};

/** The device: full-size models at batch 1, 8 and 64, every kernel row (with --large's), the
 * kernels' variants measured on the adapter, ImageNet 16-shot AMU at the trainer's default
 * batch. */
const DEVICE: Profile = {
  models: FULL_MODELS,
  batches: [1, 8, 64],
  kernelFilter: undefined,
  large: true,
  timing: { runs: 10, minRuns: 5, warmups: 2, targetRunMs: 50, maxReps: 50, budgetMs: 3000 },
  tune: true,
  amu: {
    train: 16_000,
    classes: 1_000,
    clipDim: 1_024,
    auxDim: 2_048,
    batch: DEFAULT_AMU_CONFIG.batchSize,
  },
  torchRuns: 20,
};

function softwareAdapter(gpu: Gpu): boolean {
  return gpu.summary.isLlvmpipe || gpu.summary.isFallback;
}

function refusal(gpu: Gpu): string {
  return `gpu-report: refusing to run: the WebGPU adapter is '${gpu.summary.description}', a ` +
    `software (CPU) adapter, not a GPU. Its numbers are not GPU numbers. On a machine with a GPU, ` +
    `check that the Vulkan loader and the GPU's ICD are installed (scripts/gpu-report.sh does ` +
    `this on the device); here, use scripts/gpu-report.sh --local.`;
}

async function conformance(shared: string, budgetOk: () => boolean): Promise<ConformanceCount[]> {
  const root = join(shared, "onnx-backend-tests");
  const lists = [["required-node.txt", "node"], [
    "required-pytorch-converted.txt",
    "pytorch-converted",
  ]];
  const out: ConformanceCount[] = [];
  for (const [list, dir] of lists) {
    if (!budgetOk()) break;
    const t0 = performance.now();
    const results = await runConformance([join(root, dir)], join(root, list));
    const count = (s: string) => results.filter((r) => r.status === s).length;
    out.push({
      list,
      passed: count("pass"),
      failed: count("fail"),
      unsupported: count("unsupported"),
      failing: results.filter((r) => r.status !== "pass").map((r) => r.name),
      seconds: (performance.now() - t0) / 1000,
    });
    console.log(
      `conformance ${list}: ${count("pass")} passed, ${count("fail")} failed, ` +
        `${count("unsupported")} unsupported`,
    );
  }
  return out;
}

/** Whether /usr/bin-style `python` can import torch; the skip note when it cannot. */
function torchMissing(python: string): string | undefined {
  try {
    const r = new Deno.Command(python, { args: ["-c", "import torch, numpy"], stderr: "piped" })
      .outputSync();
    return r.success ? undefined : `${python} cannot import torch and numpy`;
  } catch (e) {
    return `${python} not runnable: ${(e as Error).message}`;
  }
}

async function torchPeer(
  python: string,
  spec: Record<string, unknown>,
  out: string,
): Promise<TorchSection> {
  const missing = torchMissing(python);
  if (missing) return { skipped: missing, rows: [], amu: {} };
  const specFile = join(out, "torch_spec.json"), result = join(out, "torch.json");
  Deno.writeTextFileSync(specFile, JSON.stringify(spec));
  const script = new URL("./gpu_report_torch.py", import.meta.url).pathname;
  const r = await new Deno.Command(python, {
    args: [script, specFile, result],
    stdout: "inherit",
    stderr: "piped",
  }).output();
  Deno.removeSync(specFile);
  if (!r.success) {
    const err = new TextDecoder().decode(r.stderr).trim().split("\n").slice(-3).join(" / ");
    return { skipped: `the peer failed: ${err}`, rows: [], amu: {} };
  }
  const j = JSON.parse(Deno.readTextFileSync(result)) as TorchSection;
  Deno.removeSync(result);
  return j;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      local: { type: "boolean", default: false },
      "check-adapter": { type: "boolean", default: false },
      out: { type: "string", default: Deno.env.get("OUT") ?? "results/gpu-report" },
      shared: { type: "string", default: Deno.env.get("SHARED_DIR") ?? "../shared" },
      models: { type: "string", default: Deno.env.get("FULL_MODELS_DIR") },
      generator: { type: "string" },
      python: { type: "string" },
      "budget-s": { type: "string" },
    },
    strict: true,
  });
  const local = values.local;
  const gpu = await getGpu();
  console.log(`adapter: ${gpu.describe()}`);
  if (!local && softwareAdapter(gpu)) {
    console.error(refusal(gpu));
    return EXIT_SOFTWARE_ADAPTER;
  }
  if (values["check-adapter"]) return 0;
  const profile = local ? LOCAL : DEVICE;
  const budgetS = Number(values["budget-s"] ?? (local ? 100 : 480));
  const started = performance.now();
  const elapsedS = () => (performance.now() - started) / 1000;
  const budgetOk = () => elapsedS() < budgetS;
  const out = values.out;
  mkdirSync(out, { recursive: true });
  const shared = values.shared;
  const generator = values.generator ?? join(shared, "fixtures", "generator");
  const modelRoot = local ? shared : values.models;
  if (!modelRoot) throw new Error("--models DIR (export.py --full's output) is required");
  const notes: string[] = [];
  const skipped: string[] = [];

  const conf = await conformance(shared, budgetOk);

  // Each bench section may use the budget up to its share (kernels to 25%, models to 65%), so
  // that the AMU epoch and the PyTorch peer still run when rows are slower than expected.
  const runRows = async (
    cases: readonly BenchCase[],
    suite: string,
    tune: boolean,
    share: number,
  ) => {
    const rows: RowResult[] = [];
    for (const c of cases) {
      if (elapsedS() >= share * budgetS) {
        skipped.push(c.name);
        continue;
      }
      const row = await runCase({ gpu, tune }, suite, c, { timing: profile.timing });
      rows.push(row);
      const t = row.ours.measurement?.stats.median;
      console.log(
        `${suite} ${row.name}: ${row.ours.status}` +
          (t === undefined ? (row.ours.note ? ` (${row.ours.note})` : "") : ` ${t.toFixed(3)} ms`),
      );
    }
    return rows;
  };
  const kernelCases = KERNEL_SUITES.flatMap((s) => s.cases({ large: profile.large }))
    .filter((c) => profile.kernelFilter?.(c) ?? true);
  const kernels = await runRows(kernelCases, "kernels", profile.tune, 0.25);

  const modelDirs = profile.models.map((m) => ({ label: m.label, dir: join(modelRoot, m.folder) }));
  // Batch by batch (each model in both precisions), so a budget cut drops the largest batch.
  const modelCases = profile.batches.flatMap((b) =>
    modelDirs.flatMap((m) =>
      (["f32", "f16"] as const).map((p) => reportModelCase(m.dir, m.label, b, p))
    )
  );
  const models = await runRows(modelCases, "models", profile.tune, 0.65);

  const amuSizes = profile.amu;
  let amuEngine;
  let amuSkipped: string | undefined;
  if (budgetOk()) {
    amuEngine = await amuEpoch(gpu, amuSizes);
    console.log(`amu epoch: ${amuEngine.status} ${amuEngine.epochMs.toFixed(1)} ms`);
  } else amuSkipped = "time budget spent";

  const python = values.python ?? (local ? "/usr/bin/python3" : "python3");
  const torch: TorchSection = budgetOk()
    ? await torchPeer(python, {
      generator,
      device: local ? "cpu" : "cuda",
      runs: profile.torchRuns,
      batches: profile.batches,
      modes: ["fp32", "tf32", "fp16"],
      models: modelDirs,
      amu: {
        train: amuSizes.train,
        classes: amuSizes.classes,
        clip_dim: amuSizes.clipDim,
        aux_dim: amuSizes.auxDim,
        batch: amuSizes.batch,
      },
    }, out)
    : { skipped: "time budget spent", rows: [], amu: {} };
  if (torch.skipped) console.log(`PyTorch peer skipped: ${torch.skipped}`);
  if (local) {
    notes.push(
      "--local: tiny fixture models, small batches and a small AMU epoch on this machine's " +
        "adapter; not GPU numbers.",
    );
  }
  notes.push(
    "Engine ms: GPU timestamp queries where the adapter has them (clock gpu-timestamp), else " +
      "wall clock with a fence; PyTorch ms: CUDA events around one call (perf_counter on the " +
      "CPU). AMU epoch times are wall clock on both sides.",
    "The AMU features are synthetic uniform noise of the same sizes on both sides (different " +
      "draws); each side's first steps are checked against float64 before its epoch is timed.",
  );

  const report: GpuReport = {
    mode: local ? "local" : "device",
    adapter: { ...gpu.summary, f16: gpu.hasF16, timestampQuery: gpu.hasTimestamps },
    versions: { deno: Deno.version.deno, v8: Deno.version.v8 },
    started: new Date(Date.now() - elapsedS() * 1000).toISOString(),
    seconds: elapsedS(),
    budgetSeconds: budgetS,
    conformance: conf,
    kernels,
    models,
    skippedForBudget: skipped,
    torch,
    amu: { sizes: amuSizes, engine: amuEngine, skipped: amuSkipped },
    notes,
  };
  Deno.writeTextFileSync(join(out, "report.json"), JSON.stringify(report, null, 1) + "\n");
  const md = formatMarkdown(report);
  Deno.writeTextFileSync(join(out, "report.md"), md);
  console.log(`\n${md}`);
  console.log(`wrote ${join(out, "report.json")} and report.md in ${elapsedS().toFixed(0)} s`);
  const bad = conf.some((c) => c.failed > 0) ||
    [...kernels, ...models].some((r) => r.ours.status !== "ok") || amuEngine?.status === "wrong";
  return bad ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
