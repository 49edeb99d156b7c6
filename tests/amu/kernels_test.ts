/** AMU kernels on the GPU against their float64 host references, at random sizes that include
 * 1, odd dimensions, class counts that are not multiples of the workgroup, and partial batches. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  createStorageBuffer,
  getGpu,
  type Gpu,
  type GpuTensor,
  readBuffer,
  ResourceScope,
  STORAGE_USAGE,
  submitDispatches,
} from "../../src/gpu/mod.ts";
import { assertClose, randomFloats, rng } from "../helpers.ts";
import { prepareL2NormalizeRows } from "../../src/kernels/amu_normalize.ts";
import { l2NormalizeRowsRef } from "../../src/kernels/amu_normalize_ref.ts";
import { prepareAmuLogits } from "../../src/kernels/amu_logits.ts";
import { amuLogitsRef } from "../../src/kernels/amu_logits_ref.ts";
import { prepareAmuFactor, UNCERTAINTY_KINDS } from "../../src/kernels/amu_factor.ts";
import { uncertaintyFactorRef } from "../../src/kernels/amu_factor_ref.ts";
import {
  prepareAmuEvalRows,
  prepareAmuEvalTotals,
  prepareAmuTrainRows,
  prepareAmuZeroShot,
} from "../../src/kernels/amu_rows.ts";
import { amuEvalRowsRef, amuTrainRowsRef } from "../../src/kernels/amu_rows_ref.ts";
import {
  HIT_AUX,
  HIT_CLIP,
  HIT_FUSED,
  unpackEvalTotals,
} from "../../src/kernels/amu_rows_shape.ts";
import { prepareAmuUpdate } from "../../src/kernels/amu_update.ts";
import { adamwStepRef, amuWeightGradRef } from "../../src/kernels/amu_update_ref.ts";
import { prepareAmuInitWeights } from "../../src/kernels/amu_init.ts";
import { amuInitWeightsRef } from "../../src/kernels/amu_init_ref.ts";
import {
  createFixedStepState,
  packStepState,
  prepareStepBegin,
  prepareStepFinish,
  unpackIterationRecords,
  unpackStepState,
} from "../../src/kernels/amu_step.ts";
import { stepFinishRef, stepStateRef } from "../../src/kernels/amu_step_ref.ts";

function upload(
  gpu: Gpu,
  scope: ResourceScope,
  data: Float32Array | Int32Array | Uint32Array,
  shape: number[],
): GpuTensor {
  return {
    buffer: scope.own(createStorageBuffer(gpu, data, "test input")),
    shape,
    dtype: data instanceof Float32Array ? "float32" : "int32",
  };
}

function empty(gpu: Gpu, scope: ResourceScope, shape: number[]): GpuTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const buffer = scope.own(gpu.device.createBuffer({
    size: Math.max(16, Math.ceil(n * 4 / 16) * 16),
    usage: STORAGE_USAGE,
  }));
  return { buffer, shape, dtype: "float32" };
}

async function readF32(gpu: Gpu, t: GpuTensor | GPUBuffer, n: number): Promise<Float32Array> {
  const buffer = t instanceof GPUBuffer ? t : t.buffer;
  return new Float32Array(await readBuffer(gpu, buffer, n * 4));
}

function randomInts(n: number, hi: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * hi));
}

Deno.test("amu_normalize: rows of any width, both workgroup sizes", async () => {
  const gpu = await getGpu();
  let seed = 1;
  for (const [rows, cols] of [[1, 1], [7, 13], [3, 257], [2, 1000]]) {
    for (const wg of [64, 256]) {
      const scope = new ResourceScope();
      const x = randomFloats(rows * cols, seed++, -2, 2);
      const t = upload(gpu, scope, x, [rows, cols]);
      submitDispatches(gpu, prepareL2NormalizeRows(gpu, scope, t, wg));
      const got = await readF32(gpu, t, rows * cols);
      assertClose(got, l2NormalizeRowsRef(x, rows, cols), {
        rtol: 1e-5,
        atol: 1e-7,
        label: `normalize ${rows}x${cols} wg ${wg}`,
      });
      scope.dispose();
    }
  }
});

Deno.test("amu_logits: gathered and plain rows, both layouts, partial batches, odd sizes", async () => {
  const gpu = await getGpu();
  let seed = 100;
  const cases = [
    { src: 1, depth: 1, classes: 1, maxRows: 1, count: 1, block: 4 },
    { src: 11, depth: 13, classes: 7, maxRows: 8, count: 8, block: 8 },
    { src: 11, depth: 33, classes: 67, maxRows: 12, count: 5, block: 8 },
    { src: 40, depth: 17, classes: 67, maxRows: 37, count: 37, block: 16 },
    { src: 9, depth: 48, classes: 12, maxRows: 3, count: 2, block: 4 },
    { src: 40, depth: 64, classes: 36, maxRows: 37, count: 30, block: 16 },
    { src: 20, depth: 8, classes: 20, maxRows: 9, count: 9, block: 8 },
  ];
  for (const c of cases) {
    for (const gather of [true, false]) {
      for (const layout of ["classes-major", "depth-major"] as const) {
        const scope = new ResourceScope();
        const a = randomFloats(c.src * c.depth, seed++);
        const b = randomFloats(c.classes * c.depth, seed++);
        const orderLen = c.src + 4;
        const order = randomInts(orderLen, c.src, seed++);
        const rowStart = gather ? 3 : Math.max(0, c.src - c.count);
        const state = createFixedStepState(gpu, scope, rowStart, c.count);
        const out = empty(gpu, scope, [c.maxRows, c.classes]);
        const bShape = layout === "classes-major" ? [c.classes, c.depth] : [c.depth, c.classes];
        submitDispatches(
          gpu,
          prepareAmuLogits(gpu, scope, {
            state,
            order: gather ? upload(gpu, scope, order, [orderLen]) : undefined,
            a: upload(gpu, scope, a, [c.src, c.depth]),
            b: upload(gpu, scope, b, bShape),
            layout,
            out,
            maxRows: c.maxRows,
            scale: 2.5,
            block: c.block as 4 | 8 | 16,
          }),
        );
        const rows = Array.from(
          { length: c.count },
          (_, r) => gather ? order[rowStart + r] : rowStart + r,
        );
        const got = await readF32(gpu, out, c.count * c.classes);
        assertClose(got, amuLogitsRef(a, c.depth, rows, b, layout, c.classes, 2.5), {
          rtol: 1e-5,
          atol: 1e-5,
          label: `logits ${JSON.stringify(c)} gather ${gather} ${layout}`,
        });
        scope.dispose();
      }
    }
  }
});

/** CLIP-like logits: spread rows, plus a nearly uniform and a very confident one. */
function clipLikeLogits(rows: number, classes: number, seed: number): Float32Array {
  const x = randomFloats(rows * classes, seed, -8, 8);
  for (let c = 0; c < classes; c++) {
    x[c] = 20 + 0.01 * (c % 3); // nearly uniform row 0 (differences of 0.01 in logit)
    x[classes + c] = c === 1 ? 30 : 0; // confident row 1
  }
  return x;
}

Deno.test("amu_factor: all eight kinds, two powers, odd class counts", async () => {
  const gpu = await getGpu();
  let seed = 300;
  for (const classes of [5, 13, 67, 130]) {
    const rows = 9;
    const logits = clipLikeLogits(rows, classes, seed++);
    for (const kind of UNCERTAINTY_KINDS) {
      for (const power of [0.4, 1.0]) {
        const scope = new ResourceScope();
        const lt = upload(gpu, scope, logits, [rows, classes]);
        const factor = empty(gpu, scope, [rows]);
        submitDispatches(gpu, prepareAmuFactor(gpu, scope, lt, factor, kind, power));
        const got = await readF32(gpu, factor, rows);
        const want = uncertaintyFactorRef(logits, rows, classes, kind, power);
        // A near-uniform row makes max-min, top5 and moment ill-conditioned differences of
        // nearly equal probabilities; float32 keeps ~1e-3 relative there.
        const hard = kind === "max-min" || kind === "top5" || kind === "moment";
        assertClose(got.subarray(1), want.subarray(1), {
          rtol: 2e-5,
          atol: 0,
          label: `factor ${kind}^${power} C=${classes}`,
        });
        assertClose(got.subarray(0, 1), want.subarray(0, 1), {
          rtol: hard ? 2e-2 : 2e-5,
          atol: 0,
          label: `factor ${kind}^${power} C=${classes} (uniform row)`,
        });
        scope.dispose();
      }
    }
  }
});

interface RowsCase {
  n: number;
  classes: number;
  maxRows: number;
  count: number;
  alpha: number;
  lambda: number;
}

Deno.test("amu_rows train: forward, loss and dloss/dz per batch row, partial batches", async () => {
  const gpu = await getGpu();
  let seed = 500;
  const cases: RowsCase[] = [
    { n: 3, classes: 2, maxRows: 1, count: 1, alpha: 0.5, lambda: 0.35 },
    { n: 20, classes: 10, maxRows: 8, count: 8, alpha: 0.5, lambda: 0.35 },
    { n: 20, classes: 67, maxRows: 12, count: 5, alpha: 1.5, lambda: 0.7 },
    { n: 9, classes: 131, maxRows: 3, count: 3, alpha: -0.3, lambda: 0 },
    { n: 9, classes: 13, maxRows: 4, count: 4, alpha: 0.5, lambda: 1 },
  ];
  for (const c of cases) {
    for (const wg of [64, 128]) {
      const scope = new ResourceScope();
      const C = c.classes;
      const clip = randomFloats(c.n * C, seed++, -5, 5);
      const factors = randomFloats(c.n, seed++, 0.3, 2);
      const labels = randomInts(c.n, C, seed++);
      const order = randomInts(c.n * 2, c.n, seed++);
      const z = randomFloats(c.maxRows * C, seed++, -0.5, 0.5);
      const rowStart = c.n - 1;
      const dz = empty(gpu, scope, [c.maxRows, C]);
      const rowStats = empty(gpu, scope, [c.maxRows, 4]);
      submitDispatches(
        gpu,
        prepareAmuTrainRows(gpu, scope, {
          state: createFixedStepState(gpu, scope, rowStart, c.count),
          order: upload(gpu, scope, order, [order.length]),
          labels: upload(gpu, scope, labels, [c.n]),
          clipLogits: upload(gpu, scope, clip, [c.n, C]),
          factors: upload(gpu, scope, factors, [c.n]),
          z: upload(gpu, scope, z, [c.maxRows, C]),
          dz,
          rowStats,
          maxRows: c.maxRows,
          classes: C,
          alpha: c.alpha,
          lambda: c.lambda,
          workgroupSize: wg,
        }),
      );
      const rows = Array.from({ length: c.count }, (_, b) => order[rowStart + b]);
      const gathered = new Float32Array(c.count * C);
      rows.forEach((r, b) => gathered.set(clip.subarray(r * C, (r + 1) * C), b * C));
      const want = amuTrainRowsRef(
        z.subarray(0, c.count * C),
        gathered,
        rows.map((r) => factors[r]),
        rows.map((r) => labels[r]),
        C,
        c.alpha,
        c.lambda,
      );
      const label = `train rows ${JSON.stringify(c)} wg ${wg}`;
      const gotDz = await readF32(gpu, dz, c.count * C);
      // dz = (g - mean g) / std - ...: cancellation leaves float32 errors of ~1e-7 * |g| / std
      // (for C = 2 the exact dz is 0), so the absolute tolerance scales with the inputs.
      let scale = 0;
      for (const v of want.dz) scale = Math.max(scale, Math.abs(v));
      assertClose(gotDz, want.dz, {
        rtol: 1e-4,
        atol: Math.max(1e-5 * scale, 1e-6),
        label: `${label} dz`,
      });
      const stats = await readF32(gpu, rowStats, c.count * 4);
      const col = (k: number) => Array.from({ length: c.count }, (_, b) => stats[b * 4 + k]);
      assertClose(col(0), want.lossMerge, { rtol: 1e-5, atol: 1e-6, label: `${label} merge` });
      assertClose(col(1), want.lossAux, { rtol: 1e-5, atol: 1e-6, label: `${label} aux` });
      assertEquals(col(2), Array.from(want.correct), `${label} correct`);
      scope.dispose();
    }
  }
});

Deno.test("amu_rows eval + totals + zeroshot: losses, hits and fixed-order totals", async () => {
  const gpu = await getGpu();
  let seed = 700;
  for (const [T, C, chunk] of [[1, 2, 1], [37, 67, 10], [70, 13, 70]]) {
    const scope = new ResourceScope();
    const z = randomFloats(T * C, seed++, -1, 1);
    const clip = randomFloats(T * C, seed++, -5, 5);
    const factors = randomFloats(T, seed++, 0.3, 2);
    const labels = randomInts(T, C, seed++);
    const labelsT = upload(gpu, scope, labels, [T]);
    const rowLoss = empty(gpu, scope, [T, 2]);
    const rowHits = empty(gpu, scope, [T]);
    const totals = empty(gpu, scope, [16]);
    const zsTotals = empty(gpu, scope, [16]);
    const dispatches = [];
    const zsDispatches = [];
    for (let r0 = 0; r0 < T; r0 += chunk) {
      const rows = Math.min(chunk, T - r0);
      const zc = upload(gpu, scope, z.slice(r0 * C, (r0 + rows) * C), [rows, C]);
      const cc = upload(gpu, scope, clip.slice(r0 * C, (r0 + rows) * C), [rows, C]);
      const fc = upload(gpu, scope, factors.slice(r0, r0 + rows), [rows]);
      dispatches.push(...prepareAmuEvalRows(gpu, scope, {
        z: zc,
        clipLogits: cc,
        factors: fc,
        labels: labelsT,
        rowLoss,
        rowHits,
        rows,
        rowOffset: r0,
        classes: C,
        alpha: 0.5,
        lambda: 0.35,
      }));
      zsDispatches.push(...prepareAmuZeroShot(gpu, scope, {
        clipLogits: cc,
        labels: labelsT,
        rowHits,
        rows,
        rowOffset: r0,
        classes: C,
      }));
    }
    const totalsArgs = { rowLoss, rowHits, rows: T, outOffset: 3 };
    submitDispatches(gpu, [
      ...zsDispatches,
      ...prepareAmuEvalTotals(gpu, scope, { ...totalsArgs, totals: zsTotals }),
      ...dispatches,
      ...prepareAmuEvalTotals(gpu, scope, { ...totalsArgs, totals }),
    ]);
    const want = amuEvalRowsRef(z, clip, factors, labels, C, 0.5);
    const label = `eval T=${T} C=${C} chunk ${chunk}`;
    const losses = await readF32(gpu, rowLoss, T * 2);
    assertClose(losses.filter((_, i) => i % 2 === 0), want.lossMerge, { rtol: 1e-5, label });
    assertClose(losses.filter((_, i) => i % 2 === 1), want.lossAux, { rtol: 1e-5, label });
    const hits = new Uint32Array(await readBuffer(gpu, rowHits.buffer, T * 4));
    assertEquals(Array.from(hits), Array.from(want.hits), `${label} hits`);
    const count = (bit: number) => want.hits.reduce((s, h) => s + ((h & bit) ? 1 : 0), 0);
    const tot = unpackEvalTotals((await readF32(gpu, totals, 8)).subarray(3));
    assertClose([tot.lossMerge, tot.lossAux], [
      want.lossMerge.reduce((a, b) => a + b, 0),
      want.lossAux.reduce((a, b) => a + b, 0),
    ], { rtol: 1e-5, label: `${label} loss totals` });
    assertEquals(
      [tot.fusedHits, tot.auxHits, tot.clipHits],
      [count(HIT_FUSED), count(HIT_AUX), count(HIT_CLIP)],
      `${label} hit totals`,
    );
    const zs = unpackEvalTotals((await readF32(gpu, zsTotals, 8)).subarray(3));
    assertEquals(zs.clipHits, count(HIT_CLIP), `${label} zero-shot hits`);
    scope.dispose();
  }
});

Deno.test("amu_update: weight gradient fused with AdamW, tiles and batch sizes", async () => {
  const gpu = await getGpu();
  let seed = 900;
  const hyper = { beta1: 0.9, beta2: 0.999, eps: 1e-4, weightDecay: 0.01 };
  const cases = [
    { n: 4, classes: 1, dim: 1, count: 1, block: 4 },
    { n: 12, classes: 7, dim: 13, count: 5, block: 4 },
    { n: 12, classes: 67, dim: 33, count: 8, block: 8 },
    { n: 30, classes: 10, dim: 257, count: 30, block: 8 },
    { n: 9, classes: 12, dim: 20, count: 3, block: 8 },
    { n: 9, classes: 8, dim: 12, count: 9, block: 4 },
  ];
  for (const c of cases) {
    const scope = new ResourceScope();
    const { classes: C, dim: D } = c;
    const x = randomFloats(c.n * D, seed++);
    const order = randomInts(c.n + 3, c.n, seed++);
    const dz = randomFloats(c.count * C, seed++, -0.1, 0.1);
    const w0 = randomFloats(C * D, seed++, -0.3, 0.3);
    const m0 = randomFloats(C * D, seed++, -0.01, 0.01);
    const v0 = randomFloats(C * D, seed++, 0, 1e-4);
    const t = 3, lr = 7e-4;
    const state = packStepState({
      step: t - 1,
      iter: 0,
      rowStart: 2,
      rowCount: c.count,
      lr,
      decay: 1 - lr * hyper.weightDecay,
      stepSize: lr / (1 - hyper.beta1 ** t),
      bc2Sqrt: Math.sqrt(1 - hyper.beta2 ** t),
    });
    const w = upload(gpu, scope, w0.slice(), [C, D]);
    const m = upload(gpu, scope, m0.slice(), [C, D]);
    const v = upload(gpu, scope, v0.slice(), [C, D]);
    submitDispatches(
      gpu,
      prepareAmuUpdate(gpu, scope, {
        state: scope.own(createStorageBuffer(gpu, new Uint8Array(state))),
        order: upload(gpu, scope, order, [order.length]),
        x: upload(gpu, scope, x, [c.n, D]),
        dz: upload(gpu, scope, dz, [c.count, C]),
        w,
        m,
        v,
        classes: C,
        dim: D,
        adam: hyper,
        block: c.block as 4 | 8,
      }),
    );
    const gathered = new Float64Array(c.count * D);
    for (let b = 0; b < c.count; b++) {
      gathered.set(x.subarray(order[2 + b] * D, (order[2 + b] + 1) * D), b * D);
    }
    const g = amuWeightGradRef(dz, gathered, c.count, C, D);
    const [wr, mr, vr] = [Float64Array.from(w0), Float64Array.from(m0), Float64Array.from(v0)];
    adamwStepRef(wr, mr, vr, g, lr, t, hyper);
    const label = `update ${JSON.stringify(c)}`;
    // Gradients are sums of products with cancellation: bound float32 error by the sum of |terms|.
    const gAbs = amuWeightGradRef(dz.map(Math.abs), gathered.map(Math.abs), c.count, C, D);
    const gScale = gAbs.reduce((a, b) => Math.max(a, b), 0);
    assertClose(await readF32(gpu, m, C * D), mr, {
      rtol: 1e-5,
      atol: 1e-6 * (1 - hyper.beta1) * gScale,
      label: `${label} m`,
    });
    assertClose(await readF32(gpu, v, C * D), vr, { rtol: 1e-5, atol: 1e-12, label: `${label} v` });
    assertClose(await readF32(gpu, w, C * D), wr, { rtol: 1e-5, atol: 1e-8, label: `${label} w` });
    scope.dispose();
  }
});

Deno.test("amu_init: class sums / (N / C), classes with no rows stay zero", async () => {
  const gpu = await getGpu();
  let seed = 1100;
  for (const [n, C, D] of [[1, 2, 1], [40, 10, 48], [23, 67, 33]]) {
    const scope = new ResourceScope();
    const x = randomFloats(n * D, seed++);
    const labels = randomInts(n, C, seed++);
    const w = empty(gpu, scope, [C, D]);
    submitDispatches(
      gpu,
      prepareAmuInitWeights(gpu, scope, upload(gpu, scope, x, [n, D]), labels, C, w),
    );
    assertClose(await readF32(gpu, w, C * D), amuInitWeightsRef(x, labels, D, C), {
      rtol: 1e-5,
      atol: 1e-7,
      label: `init ${n}x${D}, ${C} classes`,
    });
    scope.dispose();
  }
});

Deno.test("amu_step: begin walks epochs and partial batches; finish reduces row losses", async () => {
  const gpu = await getGpu();
  const scope = new ResourceScope();
  const N = 10, batch = 4, iters = 3, steps = 7;
  const schedule = randomFloats(steps * 4, 1300, 0, 1);
  const counter = scope.own(createStorageBuffer(gpu, new Uint32Array([0])));
  const state = empty(gpu, scope, [8]).buffer;
  const begin = prepareStepBegin(gpu, scope, {
    counter,
    schedule: upload(gpu, scope, schedule, [steps, 4]).buffer,
    state,
    rowsPerEpoch: N,
    batchSize: batch,
    itersPerEpoch: iters,
  });
  const rowStats = randomFloats(batch * 4, 1301, 0, 2);
  const iterStats = empty(gpu, scope, [iters, 4]);
  const finish = prepareStepFinish(gpu, scope, {
    state,
    rowStats: upload(gpu, scope, rowStats, [batch, 4]).buffer,
    iterStats: iterStats.buffer,
    lambda: 0.35,
  });
  for (let t = 0; t < steps; t++) {
    submitDispatches(gpu, [...begin, ...finish]);
    const got = unpackStepState(await readBuffer(gpu, state, 32));
    const want = stepStateRef(t, N, batch, iters, schedule);
    assertEquals(got, want, `step ${t}`);
    const rec = unpackIterationRecords(await readF32(gpu, iterStats, iters * 4), iters);
    const col = (k: number) => Array.from({ length: want.rowCount }, (_, b) => rowStats[b * 4 + k]);
    const ref = stepFinishRef(col(0), col(1), col(2), 0.35);
    const i = want.iter;
    assertClose([rec.loss[i], rec.lossMerge[i], rec.lossAux[i], rec.correct[i]], ref, {
      rtol: 1e-6,
      label: `finish ${t}`,
    });
  }
  scope.dispose();
});
