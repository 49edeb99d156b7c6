/** The GPU trainer against the float64 CPU trainer (composed from the kernels' host references)
 * at random sizes: classes not a multiple of the workgroup, odd dimensions, batch 1, partial last
 * batches, every uncertainty kind, and the all-divisible-by-4 shapes of the vec4 paths. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { trainAmu } from "../../src/amu/train.ts";
import { referenceFirstSteps, trainAmuReference } from "../../src/amu/reference.ts";
import { amuConfig, UNCERTAINTY_KINDS } from "../../src/amu/config.ts";
import { makeOrder } from "../../src/amu/order.ts";
import { syntheticFeatures } from "../../src/amu/synthetic.ts";
import { assertClose } from "../helpers.ts";

interface Case {
  train: number;
  test: number;
  classes: number;
  clipDim: number;
  auxDim: number;
  batch: number;
  epochs: number;
}

const CASES: Case[] = [
  { train: 7, test: 5, classes: 5, clipDim: 3, auxDim: 1, batch: 1, epochs: 2 },
  { train: 23, test: 11, classes: 67, clipDim: 17, auxDim: 33, batch: 5, epochs: 2 },
  { train: 30, test: 19, classes: 13, clipDim: 9, auxDim: 65, batch: 8, epochs: 3 },
  { train: 12, test: 7, classes: 130, clipDim: 8, auxDim: 7, batch: 12, epochs: 2 },
  // Every dimension divisible by 4: the vec4 load paths of the logits and update kernels.
  { train: 26, test: 9, classes: 12, clipDim: 8, auxDim: 16, batch: 8, epochs: 2 },
];

Deno.test("trainAmu matches the float64 reference trainer at random sizes, every kind", async () => {
  let seed = 11;
  for (const [i, kind] of UNCERTAINTY_KINDS.entries()) {
    const c = CASES[i % CASES.length];
    const features = syntheticFeatures({
      trainRows: c.train,
      testRows: c.test,
      classes: c.classes,
      clipDim: c.clipDim,
      auxDim: c.auxDim,
      seed: seed++,
      noise: 2,
    });
    const config = amuConfig({
      epochs: c.epochs,
      batchSize: c.batch,
      lr: 5e-3,
      uncertainty: kind,
      uncertaintyPower: i % 2 ? 1 : 0.4,
      alpha: 0.7,
      lambdaMerge: 0.35,
    });
    const order = makeOrder(seed++, c.epochs, c.train);
    const gpu = await trainAmu(config, features, { order, trace: true });
    const ref = trainAmuReference(config, features, order);
    const label = `${kind} ${JSON.stringify(c)}`;
    const t = gpu.trace!;
    assertClose(t.loss, ref.loss, { rtol: 2e-5, atol: 1e-6, label: `${label} loss` });
    assertClose(t.lossMerge, ref.lossMerge, { rtol: 2e-5, atol: 1e-6, label: `${label} merge` });
    assertClose(t.lossAux, ref.lossAux, { rtol: 2e-5, atol: 1e-6, label: `${label} aux` });
    assertEquals(t.correct, ref.correct, `${label} train hits`);
    ref.epochWeights.forEach((w, e) => {
      const maxAbs = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assertClose(t.epochWeights[e], w, {
        rtol: 0,
        atol: 2e-5 * maxAbs,
        label: `${label} epoch ${e + 1} weights`,
      });
    });
    assertEquals(gpu.metrics.epochs.map((e) => e.test_acc), ref.epochTestAcc, `${label} test acc`);
    assertEquals(gpu.metrics.epochs.map((e) => e.aux_acc), ref.epochAuxAcc, `${label} aux acc`);
    assertClose(gpu.metrics.epochs.map((e) => e.test_loss), ref.epochTestLoss, {
      rtol: 2e-5,
      label: `${label} test loss`,
    });
    assertEquals(gpu.metrics.zero_shot_acc, ref.zeroShotAcc, `${label} zero-shot`);
  }
});

Deno.test("referenceFirstSteps: the full reference's first losses, past an epoch boundary", () => {
  const features = syntheticFeatures({
    trainRows: 13,
    testRows: 4,
    classes: 7,
    clipDim: 5,
    auxDim: 9,
    seed: 99,
    noise: 2,
  });
  for (const uncertainty of ["none", "entropy"] as const) {
    const config = amuConfig({ epochs: 3, batchSize: 4, lr: 5e-3, uncertainty });
    const order = makeOrder(7, 3, 13);
    const full = trainAmuReference(config, features, order);
    // 4 iterations per epoch: 6 steps cross into the second epoch's order.
    const first = referenceFirstSteps(config, features, order, 6);
    assertClose(first, full.loss.slice(0, 6), { rtol: 1e-12, atol: 0, label: uncertainty });
  }
});
