/** `deno task bench amu`: AMU-Tuning at ImageNet 16-shot scale on synthetic features — one
 * training epoch (16,000 rows, CLIP dim 1024, aux dim 2048, 1,000 classes) at batch 8 and 256,
 * and one evaluation of 50,000 test rows — on the WebGPU engine, then the same work in PyTorch on
 * the CPU (`tasks/bench/amu_torch.py`, when /usr/bin/python3 has torch), with their ratio.
 *
 * Engine timings: setup (upload, normalise, CLIP logits and factors of every row, head init,
 * pipelines) once; an epoch is the GPU running every step from one submission plus the one
 * readback of its losses, after one untimed warm-up step; the evaluation likewise (its first
 * dispatches include compiling its two pipelines, well under 1% at full size). `--steps N` times only the first N steps of an
 * epoch on both sides (for quick runs; the table says so). */
import { EngineError } from "../../src/util/errors.ts";
import { getGpu } from "../../src/gpu/mod.ts";
import { amuConfig } from "../../src/amu/config.ts";
import { referenceFirstSteps } from "../../src/amu/reference.ts";
import { AmuSession } from "../../src/amu/session.ts";
import { makeOrder } from "../../src/amu/order.ts";
import { type AmuFeatures, featureMatrix } from "../../src/models/features.ts";
import type { FlagValue } from "../../src/util/flags.ts";
import { type BenchSuite, havePythonTorch, seconds, table, timeMs } from "./_suite.ts";

export interface Sizes {
  train: number;
  test: number;
  classes: number;
  clipDim: number;
  auxDim: number;
  batches: number[];
  steps: number;
  epochs: number;
}

/** Uniform noise in [-0.5, 0.5) from a 32-bit LCG (fast: ~200M values at full size). */
function noise(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

/** Seeded synthetic features at AMU-Tuning's sizes (unit-norm text weights as columns); the PyTorch
 * peers regenerate the same values. Also the GPU report's (scripts/gpu_report/amu.ts). */
export function benchFeatures(
  z: Pick<Sizes, "train" | "classes" | "clipDim" | "auxDim">,
  testRows: number,
): AmuFeatures {
  const { train: N, classes: C, clipDim: Dc, auxDim: Da } = z;
  const weights = noise(Dc * C, 5);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let k = 0; k < Dc; k++) s += weights[k * C + c] ** 2;
    for (let k = 0; k < Dc; k++) weights[k * C + c] /= Math.sqrt(s);
  }
  return {
    trainClip: featureMatrix(N, Dc, noise(N * Dc, 1)),
    trainAux: featureMatrix(N, Da, noise(N * Da, 2)),
    trainLabels: Int32Array.from({ length: N }, (_, i) => i % C),
    testClip: featureMatrix(testRows, Dc, noise(testRows * Dc, 3)),
    testAux: featureMatrix(testRows, Da, noise(testRows * Da, 4)),
    testLabels: Int32Array.from({ length: testRows }, (_, i) => i % C),
    clipWeights: featureMatrix(Dc, C, weights),
  };
}

interface Timings {
  setup: number;
  train: Map<number, { ms: number; steps: number; iters: number }>;
  evalMs: number;
  /** Batch sizes whose checked steps disagreed with the reference. */
  wrong: number[];
}

/** Steps checked against `referenceFirstSteps` (float64, plain loops: seconds at full size). */
const CHECK_STEPS = 2;
/** Relative error allowed on a batch's mean loss (float32 sums over 2048 x 1,000 products). */
const LOSS_RTOL = 1e-4;

async function runEngine(z: Sizes): Promise<Timings> {
  const gpu = await getGpu();
  console.log(`engine: ${gpu.describe()}`);
  const out: Timings = { setup: 0, train: new Map(), evalMs: 0, wrong: [] };
  for (const [i, batch] of z.batches.entries()) {
    // The 50,000-row evaluation is timed with the first batch size's session only.
    const features = benchFeatures(z, i === 0 ? z.test : 1);
    const config = amuConfig({ batchSize: batch, epochs: z.epochs });
    const order = makeOrder(1, z.epochs, z.train);
    let session: AmuSession | undefined;
    const setupMs = await timeMs(async () => {
      session = await AmuSession.create(gpu, config, features, order);
    });
    const s = session!;
    try {
      if (i === 0) out.setup = setupMs;
      // Untimed first steps (lavapipe compiles a pipeline at its first dispatch), checked against
      // the float64 CPU reference before anything is timed; then back to the initial state.
      const w0 = await s.readWeights();
      const zeros = new Float32Array(w0.length);
      s.setStep(0);
      const first = await s.run(CHECK_STEPS, false, CHECK_STEPS);
      const t0 = performance.now();
      const want = referenceFirstSteps(config, features, order, CHECK_STEPS);
      const got = Array.from(first.records.loss.subarray(0, CHECK_STEPS));
      const err = Math.max(...got.map((g, k) => Math.abs(g - want[k]) / Math.abs(want[k])));
      const verdict = err <= LOSS_RTOL ? "ok" : `WRONG (over ${LOSS_RTOL})`;
      console.log(
        `  engine batch ${batch}: losses of the first ${CHECK_STEPS} steps ` +
          `${got.map((g) => g.toFixed(6)).join(", ")} vs float64 ` +
          `${want.map((g) => g.toFixed(6)).join(", ")}: relative error ${err.toExponential(1)} ` +
          `${verdict} (reference ${seconds(performance.now() - t0)})`,
      );
      if (err > LOSS_RTOL) out.wrong.push(batch);
      s.setState(w0, zeros, zeros);
      s.setStep(0);
      const steps = z.steps > 0 ? Math.min(z.steps, s.iters) : s.iters;
      const ms = await timeMs(() => s.run(steps, false, steps));
      out.train.set(batch, { ms, steps, iters: s.iters });
      console.log(`  engine batch ${batch}: ${steps} steps in ${seconds(ms)}`);
      if (i === 0) {
        out.evalMs = await timeMs(() => s.evaluate());
        console.log(`  engine eval of ${z.test} rows: ${seconds(out.evalMs)}`);
      }
    } finally {
      s.dispose();
    }
  }
  return out;
}

async function runTorch(z: Sizes): Promise<Timings | undefined> {
  if (!havePythonTorch()) {
    console.log(
      "PyTorch peer skipped: /usr/bin/python3 cannot import torch " +
        "(apt-get install python3-torch to compare)",
    );
    return undefined;
  }
  const script = new URL("./amu_torch.py", import.meta.url).pathname;
  const args = JSON.stringify({
    train: z.train,
    test: z.test,
    classes: z.classes,
    clip_dim: z.clipDim,
    aux_dim: z.auxDim,
    batches: z.batches,
    steps: z.steps,
    epochs: z.epochs,
  });
  const r = await new Deno.Command("/usr/bin/python3", { args: [script, args] }).output();
  if (!r.success) {
    throw new EngineError(`PyTorch peer failed:\n${new TextDecoder().decode(r.stderr)}`);
  }
  const j = JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").pop()!);
  console.log(`torch: ${j.torch}, ${j.threads} threads`);
  const out: Timings = {
    setup: j.setup_s * 1000,
    train: new Map(),
    evalMs: j.eval_s * 1000,
    wrong: [],
  };
  for (const b of z.batches) {
    out.train.set(b, {
      ms: j[`train_b${b}_s`] * 1000,
      steps: j[`steps_b${b}`],
      iters: j[`iters_b${b}`],
    });
  }
  return out;
}

function num(flags: ReadonlyMap<string, FlagValue>, name: string, dflt: number): number {
  return (flags.get(name) as number | undefined) ?? dflt;
}

export const amuSuite: BenchSuite = {
  name: "amu",
  summary: "AMU-Tuning epoch (batch 8 and 256) and 50k-row evaluation, engine vs PyTorch CPU",
  flags: {
    title: "amu suite",
    flags: [
      { name: "train_rows", type: "int", min: 1, help: "training rows", default: 16000 },
      { name: "test_rows", type: "int", min: 1, help: "evaluation rows", default: 50000 },
      { name: "classes", type: "int", min: 5, help: "classes", default: 1000 },
      { name: "clip_dim", type: "int", min: 1, help: "CLIP feature dim", default: 1024 },
      { name: "aux_dim", type: "int", min: 1, help: "auxiliary feature dim", default: 2048 },
      {
        name: "batches",
        type: "string",
        metavar: "B1,B2",
        help: "batch sizes to time",
        default: "8,256",
      },
      {
        name: "steps",
        type: "int",
        min: 0,
        help: "time only the first N steps of each epoch (0: the whole epoch)",
        default: 0,
      },
      { name: "no_torch", type: "boolean", help: "skip the PyTorch peer" },
    ],
  },
  async run(flags) {
    const batches = String(flags.get("batches") ?? "8,256").split(",").map(Number);
    if (batches.some((b) => !Number.isInteger(b) || b < 1)) {
      throw new EngineError(`--batches: expected integers like 8,256`);
    }
    const z: Sizes = {
      train: num(flags, "train_rows", 16000),
      test: num(flags, "test_rows", 50000),
      classes: num(flags, "classes", 1000),
      clipDim: num(flags, "clip_dim", 1024),
      auxDim: num(flags, "aux_dim", 2048),
      batches,
      steps: num(flags, "steps", 0),
      epochs: 50,
    };
    console.log(
      `AMU bench: ${z.train} training rows, ${z.test} test rows, ${z.classes} classes, ` +
        `CLIP dim ${z.clipDim}, aux dim ${z.auxDim}, batches ${batches.join(", ")}` +
        (z.steps ? `, first ${z.steps} steps of each epoch` : ", whole epochs"),
    );
    const ours = await runEngine(z);
    const torch = flags.get("no_torch") ? undefined : await runTorch(z);
    const rows: string[][] = [];
    const row = (what: string, a: number, b: number | undefined) =>
      rows.push([
        what,
        seconds(a),
        b === undefined ? "-" : seconds(b),
        b === undefined ? "-" : `${(a / b).toFixed(2)}x`,
      ]);
    row("setup (normalise, CLIP logits, factors, init)", ours.setup, torch?.setup);
    for (const b of batches) {
      const t = ours.train.get(b)!;
      const what = (t.steps === t.iters
        ? `epoch, batch ${b} (${t.iters} steps)`
        : `batch ${b}: ${t.steps} of ${t.iters} steps`) +
        (ours.wrong.includes(b) ? " WRONG: losses disagree with the reference" : "");
      row(what, t.ms, torch?.train.get(b)?.ms);
    }
    row(`evaluation, ${z.test} rows`, ours.evalMs, torch?.evalMs);
    console.log("");
    console.log(table(["work", "engine", "pytorch cpu", "engine/pytorch"], rows));
  },
};
