/** CoOp's linear-probe baseline on cached CLIP features: multinomial logistic regression in
 * sklearn's LogisticRegression(C) convention,
 *   minimise  C * sum_i CE(W x_i + b, y_i) + 0.5 * ||W||^2      (b unpenalised)
 * on L2-normalised CLIP features (every training row is a sample: with several augmented views
 * per image, each view counts), with C chosen on the validation split (test when the features
 * have none; `search_split` says which) and the model then refit at that C.
 *
 * C search (CoOp searches a log grid and then refines by binary search): the grid `c_grid`
 * (default 1e-3 .. 1e3, powers of 10), then `refine_steps` halvings in log10 space around the best
 * (candidates best * 10^(+-0.5), then +-0.25, ...; a candidate replaces the best only when its
 * validation accuracy is strictly higher, the lower C winning ties between the two candidates).
 * Within the search each fit starts from the solution at the nearest C already fitted (the
 * problem is strictly convex in W, so the start only changes the time taken); the refit continues
 * from the chosen C's solution with a tolerance ten times tighter.
 *
 * Optimiser: L-BFGS (memory 10, backtracking Armijo line search) whose vector work runs on the host
 * in float64; every objective value and gradient comes from the GPU (logits by amu_logits, the
 * per-row cross-entropy and its logit gradient, and the weight gradient by logreg.wgsl), summed
 * and penalised on the host in float64. It stops when the gradient's largest entry is below
 * tol * max(1, C * N) (C * N bounds the loss part of every gradient entry), when the line search
 * cannot decrease the objective any more (float32 resolution), or after max_iter iterations.
 * Biases start at zero and their gradient sums to zero over classes, so they stay zero-sum (the
 * objective is blind to a common shift of the biases). */
import {
  type Dispatch,
  encodeDispatches,
  getGpu,
  type Gpu,
  type GpuTensor,
  readBuffer,
  ResourceScope,
  submitDispatches,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { type AmuFeatures, type FeatureMatrix, validateFeatures } from "../models/features.ts";
import { prepareAmuLogits } from "../kernels/amu_logits.ts";
import { createFixedStepState } from "../kernels/amu_step.ts";
import { prepareArgMax } from "../kernels/argmax.ts";
import { prepareLogregRows, prepareLogregWeightGrad } from "../kernels/logreg.ts";
import { addPenalty, augmentRows } from "./linear_probe_ref.ts";
import type { MethodResult } from "./method.ts";
import { emptyTensor, rowChunks, uploadOwned } from "./gpu_tensors.ts";
import { zeroShotAccuracy } from "./zero_shot.ts";

export interface LinearProbeConfig {
  /** Inverse regularisation strengths to try first. */
  c_grid: number[];
  /** Halvings of the log10 step around the best C after the grid. */
  refine_steps: number;
  /** Gradient tolerance, relative to max(1, C * N). */
  tol: number;
  max_iter: number;
  /** L-BFGS memory. */
  memory: number;
}

export const LINEAR_PROBE_DEFAULTS: Readonly<LinearProbeConfig> = {
  c_grid: [1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3],
  refine_steps: 4,
  tol: 1e-6,
  max_iter: 1000,
  memory: 10,
};

export function validateLinearProbeConfig(c: LinearProbeConfig): void {
  const bad = (msg: string) => {
    throw new EngineError(`linear probe config: ${msg}`);
  };
  if (c.c_grid.length < 1) bad("c_grid is empty");
  for (const v of c.c_grid) if (!(v > 0 && Number.isFinite(v))) bad(`C ${v} is not positive`);
  if (!Number.isInteger(c.refine_steps) || c.refine_steps < 0) bad("refine_steps must be >= 0");
  if (!(c.tol > 0)) bad("tol must be positive");
  if (!Number.isInteger(c.max_iter) || c.max_iter < 1) bad("max_iter must be >= 1");
  if (!Number.isInteger(c.memory) || c.memory < 1) bad("memory must be >= 1");
}

// ---- L-BFGS ----

export interface LbfgsOptions {
  memory: number;
  maxIter: number;
  /** Stop when max |gradient| <= gtol. */
  gtol: number;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  gradMax: number;
  iterations: number;
  evaluations: number;
  /** Why it stopped. */
  stop: "gradient" | "line search" | "max_iter";
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** Minimises a smooth convex function given value and gradient (float64 host vectors). */
export async function lbfgs(
  fg: (x: Float64Array) => Promise<{ f: number; grad: Float64Array }>,
  x0: Float64Array,
  o: LbfgsOptions,
): Promise<LbfgsResult> {
  let x: Float64Array = x0.slice();
  const first = await fg(x);
  let f = first.f;
  let grad: Float64Array = first.grad;
  let evaluations = 1;
  const S: Float64Array[] = [], Y: Float64Array[] = [], rho: number[] = [];
  let iterations = 0;
  let stop: LbfgsResult["stop"] = "max_iter";
  for (; iterations < o.maxIter; iterations++) {
    if (maxAbs(grad) <= o.gtol) {
      stop = "gradient";
      break;
    }
    // Two-loop recursion: d = -H grad.
    const q = grad.slice();
    const alpha = new Float64Array(S.length);
    for (let i = S.length - 1; i >= 0; i--) {
      alpha[i] = rho[i] * dot(S[i], q);
      for (let k = 0; k < q.length; k++) q[k] -= alpha[i] * Y[i][k];
    }
    const last = S.length - 1;
    // Initial scaling: s'y / y'y from the newest pair, else a first step of unit length.
    const gamma = last >= 0 ? dot(S[last], Y[last]) / dot(Y[last], Y[last]) : 1 / Math.sqrt(
      dot(grad, grad),
    );
    for (let k = 0; k < q.length; k++) q[k] *= gamma;
    for (let i = 0; i < S.length; i++) {
      const b = rho[i] * dot(Y[i], q);
      for (let k = 0; k < q.length; k++) q[k] += S[i][k] * (alpha[i] - b);
    }
    const d = q.map((v) => -v);
    let slope = dot(grad, d);
    if (!(slope < 0)) {
      // Not a descent direction (float32 gradients near the optimum): restart from steepest.
      S.length = Y.length = rho.length = 0;
      for (let k = 0; k < d.length; k++) d[k] = -grad[k] / Math.sqrt(dot(grad, grad));
      slope = dot(grad, d);
    }
    let t = 1;
    let accepted: { x: Float64Array; f: number; grad: Float64Array } | undefined;
    for (let ls = 0; ls < 20; ls++) {
      const xn = x.map((v, k) => v + t * d[k]);
      const r = await fg(xn);
      evaluations++;
      // Armijo; or, once float32 values cannot resolve the decrease, a slope still negative at
      // the new point (convex along d: then the whole step went downhill).
      if (Number.isFinite(r.f) && (r.f <= f + 1e-4 * t * slope || dot(r.grad, d) < 0)) {
        accepted = { x: xn, f: r.f, grad: r.grad };
        break;
      }
      t /= 2;
    }
    if (!accepted) {
      stop = "line search";
      break;
    }
    const s = accepted.x.map((v, k) => v - x[k]);
    const y = accepted.grad.map((v, k) => v - grad[k]);
    const sy = dot(s, y);
    // Keep only pairs with positive curvature (always true for exact convex gradients).
    if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(y, y))) {
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
      if (S.length > o.memory) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    x = accepted.x;
    f = accepted.f;
    grad = accepted.grad;
  }
  return { x, f, gradMax: maxAbs(grad), iterations, evaluations, stop };
}

// ---- GPU objective ----

interface SplitChunk {
  rows: number;
  rowOffset: number;
  x: GpuTensor;
  pred: GpuTensor;
  dispatches: Dispatch[];
}

/** Training rows, weights and prediction splits on the GPU. */
export class LogregGpu {
  readonly rows: number;
  readonly depth: number;
  #scope = new ResourceScope();
  #theta: GpuTensor;
  #rowLoss: GpuTensor;
  #grad: GpuTensor;
  #result: GpuTensor;
  #dispatches: Dispatch[];
  #splits = new Map<string, { labels: Int32Array; chunks: SplitChunk[] }>();

  /** `x` [rows, dim] raw features (normalised and augmented here), `labels` [rows]. */
  constructor(
    readonly gpu: Gpu,
    x: FeatureMatrix,
    labels: Int32Array,
    readonly classes: number,
  ) {
    const scope = this.#scope;
    const N = x.rows, Da = x.cols + 1, K = classes;
    this.rows = N;
    this.depth = Da;
    const limit = gpu.limits.maxStorageBufferBindingSize;
    for (const [what, floats] of [["training features", N * Da], ["training logits", N * K]]) {
      if ((floats as number) * 4 > limit) {
        throw new EngineError(
          `linear probe: ${what} need ${(floats as number) * 4} bytes in one GPU buffer, over ` +
            `this adapter's maxStorageBufferBindingSize (${limit})`,
        );
      }
    }
    try {
      const xa = uploadOwned(
        gpu,
        scope,
        Float32Array.from(augmentRows(x.data, N, x.cols)),
        [N, Da],
        "probe features",
      );
      const y = uploadOwned(gpu, scope, labels, [N], "probe labels");
      this.#theta = emptyTensor(gpu, scope, [K, Da], "probe weights");
      const z = emptyTensor(gpu, scope, [N, K], "probe logits");
      this.#rowLoss = emptyTensor(gpu, scope, [N], "probe row losses");
      this.#grad = emptyTensor(gpu, scope, [K, Da], "probe gradient");
      this.#result = emptyTensor(gpu, scope, [K * Da + N], "probe readback");
      this.#dispatches = [
        ...prepareAmuLogits(gpu, scope, {
          state: createFixedStepState(gpu, scope, 0, N),
          a: xa,
          b: this.#theta,
          layout: "classes-major",
          out: z,
          maxRows: N,
        }),
        ...prepareLogregRows(gpu, scope, {
          z,
          labels: y,
          rowLoss: this.#rowLoss,
          rows: N,
          classes: K,
        }),
        ...prepareLogregWeightGrad(gpu, scope, {
          g: z,
          x: xa,
          grad: this.#grad,
          rows: N,
          classes: K,
          depth: Da,
        }),
      ];
    } catch (e) {
      scope.dispose();
      throw e;
    }
  }

  #setTheta(theta: Float64Array): void {
    if (theta.length !== this.classes * this.depth) {
      throw new EngineError(
        `linear probe: ${theta.length} parameters, expected ${this.classes * this.depth}`,
      );
    }
    this.gpu.device.queue.writeBuffer(this.#theta.buffer, 0, Float32Array.from(theta));
  }

  /** Objective and gradient at theta [K, D + 1] for inverse regularisation C. */
  async objective(theta: Float64Array, C: number): Promise<{ f: number; grad: Float64Array }> {
    this.#setTheta(theta);
    const P = this.classes * this.depth;
    // One readback per evaluation (each costs a round trip): gradient, then the row losses.
    await this.gpu.scoped("linear probe objective", () => {
      const enc = this.gpu.device.createCommandEncoder({ label: "linear probe" });
      encodeDispatches(enc, this.#dispatches);
      enc.copyBufferToBuffer(this.#grad.buffer, 0, this.#result.buffer, 0, P * 4);
      enc.copyBufferToBuffer(this.#rowLoss.buffer, 0, this.#result.buffer, P * 4, this.rows * 4);
      this.gpu.device.queue.submit([enc.finish()]);
    });
    const all = new Float32Array(
      await readBuffer(this.gpu, this.#result.buffer, (P + this.rows) * 4),
    );
    const g32 = all.subarray(0, P), loss = all.subarray(P);
    let f = 0;
    for (const l of loss) f += l;
    f *= C;
    const grad = Float64Array.from(g32, (v) => C * v);
    f += addPenalty(theta, this.classes, grad);
    return { f, grad };
  }

  /** Uploads a split (raw features) for `accuracy`. */
  addSplit(name: string, x: FeatureMatrix, labels: Int32Array, chunkBytes = 64 << 20): void {
    const { gpu, classes: K, depth: Da } = this;
    const scope = this.#scope;
    if (x.cols + 1 !== Da) {
      throw new EngineError(`linear probe: ${name} has ${x.cols} columns, training ${Da - 1}`);
    }
    if (labels.length !== x.rows) {
      throw new EngineError(`linear probe: ${name} has ${x.rows} rows but ${labels.length} labels`);
    }
    const xa = augmentRows(x.data, x.rows, x.cols);
    const chunks: SplitChunk[] = [];
    for (const [r0, r1] of rowChunks(x.rows, Math.max(Da, K), chunkBytes)) {
      const rows = r1 - r0;
      const t = uploadOwned(gpu, scope, Float32Array.from(xa.subarray(r0 * Da, r1 * Da)), [
        rows,
        Da,
      ], name);
      const z = emptyTensor(gpu, scope, [rows, K], `${name} logits`);
      const pred = emptyTensor(gpu, scope, [rows], `${name} predictions`, "int32");
      const dispatches = [
        ...prepareAmuLogits(gpu, scope, {
          state: createFixedStepState(gpu, scope, 0, rows),
          a: t,
          b: this.#theta,
          layout: "classes-major",
          out: z,
          maxRows: rows,
        }),
        ...prepareArgMax(gpu, scope, z, pred, 1),
      ];
      chunks.push({ rows, rowOffset: r0, x: t, pred, dispatches });
    }
    this.#splits.set(name, { labels, chunks });
  }

  /** Predicted classes of a split at theta. */
  async predict(name: string, theta: Float64Array): Promise<Int32Array> {
    const split = this.#splits.get(name);
    if (!split) throw new EngineError(`linear probe: no split named '${name}'`);
    this.#setTheta(theta);
    const all = split.chunks.flatMap((c) => c.dispatches);
    await this.gpu.scoped("linear probe predict", () => submitDispatches(this.gpu, all));
    const out = new Int32Array(split.labels.length);
    for (const c of split.chunks) {
      out.set(new Int32Array(await readBuffer(this.gpu, c.pred.buffer, c.rows * 4)), c.rowOffset);
    }
    return out;
  }

  /** Accuracy (percent) of a split at theta. */
  async accuracy(name: string, theta: Float64Array): Promise<number> {
    const pred = await this.predict(name, theta);
    const labels = this.#splits.get(name)!.labels;
    let hits = 0;
    for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) hits++;
    return 100 * hits / Math.max(pred.length, 1);
  }

  dispose(): void {
    this.#scope.dispose();
  }
}

/** Fits theta at C from `start` (zeros when absent). */
export function fitLogreg(
  model: LogregGpu,
  C: number,
  config: Pick<LinearProbeConfig, "tol" | "max_iter" | "memory">,
  start?: Float64Array,
): Promise<LbfgsResult> {
  return lbfgs(
    (x) => model.objective(x, C),
    start ?? new Float64Array(model.classes * model.depth),
    {
      memory: config.memory,
      maxIter: config.max_iter,
      gtol: config.tol * Math.max(1, C * model.rows),
    },
  );
}

export interface LinearProbeOptions {
  gpu?: Gpu;
  log?: (line: string) => void;
  chunkBytes?: number;
}

export interface LinearProbeResult extends MethodResult {
  method: "linear-probe";
  final: { test_acc: number; C: number; [chosen: string]: number | string };
  search_split: "val" | "test";
  /** Every C tried, in order, with its accuracy on the search split. */
  search: { C: number; acc: number }[];
  /** [K, D + 1]: row c = (W[c, :], b[c]) of the refit model (float64 host copy). */
  theta: Float64Array;
  fit: LbfgsResult;
}

/** The linear probe: C search on the validation split, refit, test accuracy. */
export async function runLinearProbe(
  features: AmuFeatures,
  config: LinearProbeConfig = LINEAR_PROBE_DEFAULTS,
  options: LinearProbeOptions = {},
): Promise<LinearProbeResult> {
  validateLinearProbeConfig(config);
  validateFeatures(features);
  const log = options.log ?? (() => {});
  const K = features.clipWeights.cols;
  const hasVal = features.valClip !== undefined && features.valLabels !== undefined;
  const searchSplit = hasVal ? "val" : "test";
  const gpu = options.gpu ?? await getGpu();
  const zs = await zeroShotAccuracy(
    features.testClip,
    features.testLabels,
    features.clipWeights,
    { gpu, chunkBytes: options.chunkBytes },
  );
  const model = new LogregGpu(gpu, features.trainClip, features.trainLabels, K);
  try {
    model.addSplit("test", features.testClip, features.testLabels, options.chunkBytes);
    if (hasVal) model.addSplit("val", features.valClip!, features.valLabels!, options.chunkBytes);
    const solutions = new Map<number, Float64Array>();
    const search: { C: number; acc: number }[] = [];
    const tryC = async (C: number): Promise<number> => {
      let start: Float64Array | undefined;
      let nearest = Infinity;
      for (const [c, theta] of solutions) {
        const d = Math.abs(Math.log(c / C));
        if (d < nearest) {
          nearest = d;
          start = theta;
        }
      }
      const fit = await fitLogreg(model, C, config, start);
      solutions.set(C, fit.x);
      const acc = await model.accuracy(searchSplit, fit.x);
      search.push({ C, acc });
      log(
        `linear probe: C ${C.toPrecision(4)}: ${searchSplit} ${acc.toFixed(2)}% ` +
          `(${fit.iterations} iterations, stopped by ${fit.stop})`,
      );
      return acc;
    };
    let bestC = config.c_grid[0];
    let bestAcc = -1;
    for (const C of config.c_grid) {
      const acc = await tryC(C);
      if (acc > bestAcc) {
        bestAcc = acc;
        bestC = C;
      }
    }
    const lo = Math.log10(Math.min(...config.c_grid)), hi = Math.log10(Math.max(...config.c_grid));
    let step = config.c_grid.length > 1 ? 0.5 * minLogGap(config.c_grid) : 0;
    for (let s = 0; s < config.refine_steps && step > 0; s++, step /= 2) {
      const e = Math.log10(bestC);
      let moveC = bestC, moveAcc = bestAcc;
      for (const cand of [e - step, e + step]) {
        if (cand < lo - 1e-12 || cand > hi + 1e-12) continue;
        const C = 10 ** cand;
        const acc = await tryC(C);
        if (acc > moveAcc) {
          moveAcc = acc;
          moveC = C;
        }
      }
      bestC = moveC;
      bestAcc = moveAcc;
    }
    const fit = await fitLogreg(
      model,
      bestC,
      { ...config, tol: config.tol / 10 },
      solutions.get(bestC),
    );
    const testAcc = await model.accuracy("test", fit.x);
    log(
      `linear probe: C ${bestC.toPrecision(4)} (${searchSplit} ${bestAcc.toFixed(2)}%): test ` +
        `${testAcc.toFixed(2)}%`,
    );
    return {
      method: "linear-probe",
      zero_shot_acc: zs,
      final: { test_acc: testAcc, C: bestC },
      search_split: searchSplit,
      search,
      theta: fit.x,
      fit,
    };
  } finally {
    model.dispose();
  }
}

/** Smallest gap between neighbouring grid values, in decades. */
function minLogGap(grid: number[]): number {
  const e = grid.map(Math.log10).sort((a, b) => a - b);
  let gap = Infinity;
  for (let i = 1; i < e.length; i++) if (e[i] - e[i - 1] > 0) gap = Math.min(gap, e[i] - e[i - 1]);
  return Number.isFinite(gap) ? gap : 0;
}
