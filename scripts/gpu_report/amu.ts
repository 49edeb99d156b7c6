/** The AMU row of the GPU report: one training epoch of the engine's AMU trainer on synthetic
 * features of the given sizes (ImageNet 16-shot scale on the device: 16,000 rows, CLIP 1,024,
 * aux 2,048, 1,000 classes), after its first steps are checked against the float64 reference
 * (src/amu/reference.ts). The same pattern as `deno task bench amu` (tasks/bench/amu.ts), cut to
 * one batch size and no evaluation so it fits the report's time budget. */
import type { Gpu } from "../../src/gpu/mod.ts";
import { amuConfig } from "../../src/amu/config.ts";
import { referenceFirstSteps } from "../../src/amu/reference.ts";
import { AmuSession } from "../../src/amu/session.ts";
import { makeOrder } from "../../src/amu/order.ts";
import { benchFeatures } from "../../tasks/bench/amu.ts";
import { timeMs } from "../../tasks/bench/_suite.ts";

export interface AmuSizes {
  readonly train: number;
  readonly classes: number;
  readonly clipDim: number;
  readonly auxDim: number;
  readonly batch: number;
}

export interface AmuEngineResult {
  readonly status: "ok" | "wrong";
  readonly steps: number;
  readonly epochMs: number;
  readonly setupMs: number;
  /** Largest relative error of the checked steps' losses against float64. */
  readonly lossRelError: number;
  readonly lossBound: number;
}

/** Steps checked against float64 before timing, and the bound on their losses' relative error
 * (the one tasks/bench/amu.ts uses: float32 sums over 2,048 x 1,000 products). */
const CHECK_STEPS = 2;
const LOSS_RTOL = 1e-4;

export async function amuEpoch(gpu: Gpu, z: AmuSizes): Promise<AmuEngineResult> {
  // One test row: the report times training only.
  const f = benchFeatures(z, 1);
  const config = amuConfig({ batchSize: z.batch, epochs: 1 });
  const order = makeOrder(1, 1, z.train);
  let session: AmuSession | undefined;
  const setupMs = await timeMs(async () => {
    session = await AmuSession.create(gpu, config, f, order);
  });
  const s = session!;
  try {
    // Untimed checked steps (pipelines compile at first dispatch), then back to the start.
    const w0 = await s.readWeights();
    const zeros = new Float32Array(w0.length);
    s.setStep(0);
    const first = await s.run(CHECK_STEPS, false, CHECK_STEPS);
    const want = referenceFirstSteps(config, f, order, CHECK_STEPS);
    const got = Array.from(first.records.loss.subarray(0, CHECK_STEPS));
    const err = Math.max(...got.map((g, k) => Math.abs(g - want[k]) / Math.abs(want[k])));
    s.setState(w0, zeros, zeros);
    s.setStep(0);
    const epochMs = err <= LOSS_RTOL ? await timeMs(() => s.run(s.iters, false, s.iters)) : NaN;
    return {
      status: err <= LOSS_RTOL ? "ok" : "wrong",
      steps: s.iters,
      epochMs,
      setupMs,
      lossRelError: err,
      lossBound: LOSS_RTOL,
    };
  } finally {
    s.dispose();
  }
}
