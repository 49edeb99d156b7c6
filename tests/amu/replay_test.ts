/** Replays the AMU training traces of `../shared/fixtures/amu_{none,entropy,energy_partial}`
 * with their stored batch orders and checks the GPU trainer step by step against the float64
 * trace: per-iteration losses within 1e-5 relative, learning rates exact to float32, weights
 * after every epoch within 1e-5 * max|W|, per-iteration training hits and per-epoch test
 * accuracies identical. Also: two runs are bit-identical. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { trainAmu } from "../../src/amu/train.ts";
import { cosineLr } from "../../src/amu/schedule.ts";
import { assertClose } from "../helpers.ts";
import { loadAmuTrace } from "./fixture.ts";

for (const name of ["amu_none", "amu_entropy", "amu_energy_partial"]) {
  Deno.test(`replay ${name}: losses, lrs, weights and accuracies follow the float64 trace`, async () => {
    const trace = loadAmuTrace(name);
    if (!trace) return;
    const { config, features } = trace;
    const run = await trainAmu(config, features, { order: trace.order, trace: true });
    const t = run.trace!;
    const iterations = trace.f64("iter_loss").length;
    assertEquals(t.loss.length, iterations, "iterations");

    assertClose(t.loss, trace.f64("iter_loss"), { rtol: 1e-5, atol: 0, label: "iter_loss" });
    assertClose(t.lossMerge, trace.f64("iter_loss_merge"), {
      rtol: 1e-5,
      atol: 0,
      label: "iter_loss_merge",
    });
    assertClose(t.lossAux, trace.f64("iter_loss_aux"), {
      rtol: 1e-5,
      atol: 0,
      label: "iter_loss_aux",
    });
    assertEquals(t.correct, Array.from(trace.f64("iter_train_correct")), "iter_train_correct");

    // Learning rates: our float64 closed form is the trace's, and the float32 value the GPU used
    // is PyTorch's (recursive) rate rounded to float32.
    const closed = trace.f64("iter_lr_closed_form");
    const used = trace.f64("iter_lr");
    for (let i = 0; i < iterations; i++) {
      assertEquals(cosineLr(config.lr, i, iterations), closed[i], `closed-form lr ${i}`);
      assertEquals(run.stepLr[i], Math.fround(used[i]), `float32 lr ${i}`);
    }

    const size = run.classes * run.dim;
    const init = trace.f64("init_weight");
    const initMax = init.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(t.initialWeight!, init, { rtol: 0, atol: 1e-6 * initMax, label: "init_weight" });
    const weights = trace.f64("epoch_weight");
    t.epochWeights.forEach((w, e) => {
      const want = weights.subarray(e * size, (e + 1) * size);
      const maxAbs = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assertClose(w, want, { rtol: 0, atol: 1e-5 * maxAbs, label: `epoch ${e + 1} weights` });
    });

    const m = run.metrics;
    assertEquals(m.epochs.map((e) => e.test_acc), Array.from(trace.f64("epoch_test_acc")));
    assertEquals(m.epochs.map((e) => e.aux_acc), Array.from(trace.f64("epoch_test_aux_acc")));
    assertClose(m.epochs.map((e) => e.test_loss), trace.f64("epoch_test_loss"), {
      rtol: 1e-5,
      label: "epoch_test_loss",
    });
    const stats = (trace.manifest as unknown as { stats: { zero_shot_test_acc: number } }).stats;
    assertEquals(m.zero_shot_acc, stats.zero_shot_test_acc, "zero-shot accuracy");

    // Determinism: the same inputs give the same bits.
    const again = await trainAmu(config, features, { order: trace.order, trace: true });
    assertEquals(again.trace!.loss, t.loss, "losses bit-identical across runs");
    assertEquals(again.finalWeight, run.finalWeight, "weights bit-identical across runs");
  });
}
