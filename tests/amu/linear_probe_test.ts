/** The linear probe: its kernels against float64 references, its GPU L-BFGS fit against a float64
 * Newton solution of the same convex problem, and the C search end to end, at odd sizes. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  createStorageBuffer,
  getGpu,
  type Gpu,
  type GpuTensor,
  readBuffer,
  ResourceScope,
  submitDispatches,
} from "../../src/gpu/mod.ts";
import { assertClose, randomFloats, rng } from "../helpers.ts";
import type { AmuFeatures, FeatureMatrix } from "../../src/models/features.ts";
import { prepareLogregRows, prepareLogregWeightGrad } from "../../src/kernels/logreg.ts";
import { logregRowsRef, logregWeightGradRef } from "../../src/kernels/logreg_ref.ts";
import {
  fitLogreg,
  LINEAR_PROBE_DEFAULTS,
  LogregGpu,
  runLinearProbe,
} from "../../src/amu/linear_probe.ts";
import {
  augmentRows,
  fitLogregRef,
  logregObjectiveRef,
  predictRef,
} from "../../src/amu/linear_probe_ref.ts";
import { emptyTensor } from "../../src/amu/gpu_tensors.ts";
import { normalSampler } from "../../src/util/random.ts";

function upload(gpu: Gpu, scope: ResourceScope, data: Float32Array | Int32Array): GpuTensor {
  return {
    buffer: scope.own(createStorageBuffer(gpu, data, "test input")),
    shape: [data.length],
    dtype: data instanceof Float32Array ? "float32" : "int32",
  };
}

Deno.test("logreg kernels match the float64 reference at odd sizes", async () => {
  const gpu = await getGpu();
  const r = rng(5);
  for (const [N, K, D] of [[1, 2, 1], [37, 5, 12], [70, 13, 7]]) {
    const scope = new ResourceScope();
    try {
      const z = randomFloats(N * K, N + K, -3, 3);
      const x = randomFloats(N * D, D * 3, -1, 1);
      const labels = Int32Array.from({ length: N }, () => Math.floor(r() * K));
      const zBuf = upload(gpu, scope, z);
      const loss = emptyTensor(gpu, scope, [N], "loss");
      const grad = emptyTensor(gpu, scope, [K, D], "grad");
      submitDispatches(gpu, [
        ...prepareLogregRows(gpu, scope, {
          z: zBuf,
          labels: upload(gpu, scope, labels),
          rowLoss: loss,
          rows: N,
          classes: K,
        }),
        ...prepareLogregWeightGrad(gpu, scope, {
          g: zBuf,
          x: upload(gpu, scope, x),
          grad,
          rows: N,
          classes: K,
          depth: D,
        }),
      ]);
      const ref = logregRowsRef(z, labels, K);
      const gotLoss = new Float32Array(await readBuffer(gpu, loss.buffer, N * 4));
      const gotG = new Float32Array(await readBuffer(gpu, zBuf.buffer, N * K * 4));
      const gotGrad = new Float32Array(await readBuffer(gpu, grad.buffer, K * D * 4));
      assertClose(gotLoss, ref.loss, { rtol: 1e-5, atol: 1e-6, label: "row loss" });
      assertClose(gotG, ref.g, { rtol: 1e-5, atol: 1e-6, label: "logit gradient" });
      assertClose(gotGrad, logregWeightGradRef(ref.g, x, N, K, D), {
        rtol: 1e-5,
        atol: 1e-5,
        label: "weight gradient",
      });
    } finally {
      scope.dispose();
    }
  }
});

/** Gaussian classes around random unit means: learnable but not separable at these sizes. */
function classMeans(dim: number, classes: number, seed: number): Float64Array {
  const normal = normalSampler(rng(seed));
  return Float64Array.from({ length: classes * dim }, () => normal());
}

function synthetic(rows: number, dim: number, classes: number, seed: number, spread = 1.2) {
  const normal = normalSampler(rng(seed));
  const means = classMeans(dim, classes, 1000 + dim * classes);
  const labels = Int32Array.from({ length: rows }, (_, i) => (i * 3 + (i >> 2)) % classes);
  const data = new Float32Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < dim; k++) {
      data[i * dim + k] = means[labels[i] * dim + k] + spread * normal();
    }
  }
  return { x: { rows, cols: dim, data } as FeatureMatrix, labels };
}

/** Biases minus their mean (the objective is blind to a common shift). */
function centred(theta: ArrayLike<number>, classes: number): Float64Array {
  const depth = theta.length / classes;
  const out = Float64Array.from(theta);
  let mean = 0;
  for (let c = 0; c < classes; c++) mean += theta[c * depth + depth - 1] / classes;
  for (let c = 0; c < classes; c++) out[c * depth + depth - 1] -= mean;
  return out;
}

Deno.test("linear probe: GPU L-BFGS reaches the float64 Newton solution (N=37, D=11, K=5 classes)", async () => {
  const gpu = await getGpu();
  const N = 37, D = 11, K = 5;
  const train = synthetic(N, D, K, 11);
  const test = synthetic(53, D, K, 12);
  const xa = augmentRows(train.x.data, N, D);
  const model = new LogregGpu(gpu, train.x, train.labels, K);
  try {
    model.addSplit("test", test.x, test.labels);
    for (const C of [0.1, 1, 10, 100]) {
      const ref = fitLogregRef(xa, train.labels, K, C);
      const fit = await fitLogreg(model, C, { ...LINEAR_PROBE_DEFAULTS, tol: 1e-7 });
      const fRef = ref.f, fGot = logregObjectiveRef(fit.x, xa, train.labels, K, C).f;
      let scale = 0;
      for (const v of ref.theta) scale = Math.max(scale, Math.abs(v));
      let err = 0;
      const a = centred(fit.x, K), b = centred(ref.theta, K);
      for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
      console.log(
        `C ${C}: ${fit.iterations} iterations, ${fit.evaluations} evaluations (${fit.stop}); weights max error ` +
          `${(err / scale).toExponential(2)} of max |theta| ${scale.toFixed(3)}; objective ` +
          `${fGot} vs ${fRef}; Newton gradient ${ref.gradMax.toExponential(1)}`,
      );
      // Tolerance: float32 gradients limit the optimum to ~1e-5 of the weights' scale.
      if (!(err <= 2e-5 * scale)) throw new Error(`C ${C}: weights off by ${err} (scale ${scale})`);
      if (!((fGot - fRef) / fRef <= 1e-7)) throw new Error(`C ${C}: objective ${fGot} > ${fRef}`);
      const tx = augmentRows(test.x.data, test.x.rows, D);
      const want = predictRef(ref.theta, tx, test.x.rows, K);
      assertEquals(Array.from(await model.predict("test", fit.x)), Array.from(want));
    }
  } finally {
    model.dispose();
  }
});

Deno.test("linear probe: C search on val, refit, test accuracy as the reference", async () => {
  const D = 11, K = 5;
  const train = synthetic(37, D, K, 21);
  const val = synthetic(41, D, K, 22);
  const test = synthetic(59, D, K, 23);
  const aux = (rows: number) => ({ rows, cols: 1, data: new Float32Array(rows) });
  const normal = normalSampler(rng(24));
  const features: AmuFeatures = {
    trainClip: train.x,
    trainAux: aux(37),
    trainLabels: train.labels,
    testClip: test.x,
    testAux: aux(59),
    testLabels: test.labels,
    clipWeights: { rows: D, cols: K, data: Float32Array.from({ length: D * K }, () => normal()) },
    valClip: val.x,
    valAux: aux(41),
    valLabels: val.labels,
  };
  const config = { ...LINEAR_PROBE_DEFAULTS, c_grid: [1e-2, 1, 1e2], refine_steps: 2 };
  const r = await runLinearProbe(features, config);
  assertEquals(r.search_split, "val");
  // Grid of 3, then two refinement rounds of at most 2 candidates each.
  if (r.search.length < 3 || r.search.length > 7) throw new Error(`${r.search.length} fits`);
  // Every C's validation accuracy is the float64 solution's.
  const trainXa = augmentRows(train.x.data, 37, D), valXa = augmentRows(val.x.data, 41, D);
  for (const s of r.search) {
    const p = predictRef(fitLogregRef(trainXa, train.labels, K, s.C).theta, valXa, 41, K);
    let h = 0;
    for (let i = 0; i < 41; i++) if (p[i] === val.labels[i]) h++;
    assertEquals(s.acc, 100 * h / 41, `val accuracy at C ${s.C}`);
  }
  const best = r.search.reduce((m, s) => (s.acc > m.acc ? s : m));
  assertEquals(r.final.C, best.C);
  const ref = fitLogregRef(augmentRows(train.x.data, 37, D), train.labels, K, r.final.C);
  const pred = predictRef(ref.theta, augmentRows(test.x.data, 59, D), 59, K);
  let hits = 0;
  for (let i = 0; i < 59; i++) if (pred[i] === test.labels[i]) hits++;
  assertEquals(r.final.test_acc, 100 * hits / 59);
  console.log(
    `linear probe: C ${r.final.C.toPrecision(3)}, test ${r.final.test_acc.toFixed(2)}%, ` +
      `zero-shot ${r.zero_shot_acc.toFixed(2)}%; search ${
        r.search.map((s) => `${s.C.toPrecision(2)}:${s.acc.toFixed(1)}`).join(" ")
      }`,
  );
});
