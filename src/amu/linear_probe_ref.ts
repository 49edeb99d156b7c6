/** Float64 host reference of the linear-probe problem (see linear_probe.ts): multinomial logistic
 * regression in sklearn's LogisticRegression(C) convention,
 *   minimise  C * sum_i CE(W x_i + b, y_i) + 0.5 * ||W||^2      (b unpenalised)
 * on L2-normalised features. Parameters are theta [K, D + 1], row c = (W[c, :], b[c]); rows of
 * x are augmented with a trailing 1. Solved by Newton's method with a backtracking line search (an
 * independent solver from the GPU path's L-BFGS), to near float64 precision.
 *
 * The objective does not change when the same constant is added to every bias; from a start
 * whose biases sum to zero, every gradient and Newton step keeps that sum at zero (the softmax
 * gradient sums to zero over classes), so both solvers reach the same zero-sum biases. */
import { EngineError } from "../util/errors.ts";
import { logregRowsRef, logregWeightGradRef } from "../kernels/logreg_ref.ts";

/** Rows of `x` [rows, dim] L2-normalised, with a trailing 1: [rows, dim + 1] float64. */
export function augmentRows(x: ArrayLike<number>, rows: number, dim: number): Float64Array {
  const out = new Float64Array(rows * (dim + 1));
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let k = 0; k < dim; k++) ss += x[i * dim + k] * x[i * dim + k];
    const norm = Math.sqrt(ss);
    for (let k = 0; k < dim; k++) out[i * (dim + 1) + k] = x[i * dim + k] / norm;
    out[i * (dim + 1) + dim] = 1;
  }
  return out;
}

/** x [rows, depth] @ theta^T [depth, K]. */
export function logitsRef(
  theta: ArrayLike<number>,
  xa: ArrayLike<number>,
  rows: number,
  classes: number,
): Float64Array {
  const depth = theta.length / classes;
  const z = new Float64Array(rows * classes);
  for (let i = 0; i < rows; i++) {
    for (let c = 0; c < classes; c++) {
      let s = 0;
      for (let k = 0; k < depth; k++) s += xa[i * depth + k] * theta[c * depth + k];
      z[i * classes + c] = s;
    }
  }
  return z;
}

/** The penalty 0.5 * ||W||^2 (bias column excluded) and its gradient added into `grad`. */
export function addPenalty(theta: ArrayLike<number>, classes: number, grad?: Float64Array): number {
  const depth = theta.length / classes;
  let p = 0;
  for (let c = 0; c < classes; c++) {
    for (let k = 0; k < depth - 1; k++) {
      const w = theta[c * depth + k];
      p += 0.5 * w * w;
      if (grad) grad[c * depth + k] += w;
    }
  }
  return p;
}

/** Objective value and gradient at theta, in float64. */
export function logregObjectiveRef(
  theta: ArrayLike<number>,
  xa: ArrayLike<number>,
  labels: Int32Array,
  classes: number,
  C: number,
): { f: number; grad: Float64Array } {
  const rows = labels.length, depth = theta.length / classes;
  const { loss, g } = logregRowsRef(logitsRef(theta, xa, rows, classes), labels, classes);
  const grad = logregWeightGradRef(g, xa, rows, classes, depth);
  let f = 0;
  for (const l of loss) f += l;
  f *= C;
  for (let i = 0; i < grad.length; i++) grad[i] *= C;
  f += addPenalty(theta, classes, grad);
  return { f, grad };
}

/** Solves A x = b (A symmetric positive definite) by Gaussian elimination with pivoting. */
function solve(A: Float64Array, b: Float64Array, n: number): Float64Array {
  const a = A.slice(), x = b.slice();
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let r = col + 1; r < n; r++) {
      if (Math.abs(a[r * n + col]) > Math.abs(a[piv * n + col])) piv = r;
    }
    if (a[piv * n + col] === 0) throw new EngineError("linear probe reference: singular Hessian");
    if (piv !== col) {
      for (let k = 0; k < n; k++) {
        const t = a[col * n + k];
        a[col * n + k] = a[piv * n + k];
        a[piv * n + k] = t;
      }
      const t = x[col];
      x[col] = x[piv];
      x[piv] = t;
    }
    for (let r = col + 1; r < n; r++) {
      const f = a[r * n + col] / a[col * n + col];
      if (f === 0) continue;
      for (let k = col; k < n; k++) a[r * n + k] -= f * a[col * n + k];
      x[r] -= f * x[col];
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    let s = x[r];
    for (let k = r + 1; k < n; k++) s -= a[r * n + k] * x[k];
    x[r] = s / a[r * n + r];
  }
  return x;
}

/** The Hessian [P, P] (P = K * depth), plus (sum of biases)^2's to pin the biases' free shift. */
function hessian(
  theta: Float64Array,
  xa: ArrayLike<number>,
  labels: Int32Array,
  classes: number,
  C: number,
): Float64Array {
  const rows = labels.length, K = classes, depth = theta.length / K, P = K * depth;
  const H = new Float64Array(P * P);
  const z = logitsRef(theta, xa, rows, K);
  const p = new Float64Array(K);
  for (let i = 0; i < rows; i++) {
    let m = -Infinity;
    for (let c = 0; c < K; c++) m = Math.max(m, z[i * K + c]);
    let s = 0;
    for (let c = 0; c < K; c++) s += p[c] = Math.exp(z[i * K + c] - m);
    for (let c = 0; c < K; c++) p[c] /= s;
    for (let c = 0; c < K; c++) {
      for (let e = 0; e < K; e++) {
        const w = C * ((c === e ? p[c] : 0) - p[c] * p[e]);
        if (w === 0) continue;
        for (let k = 0; k < depth; k++) {
          const xk = w * xa[i * depth + k];
          const row = (c * depth + k) * P + e * depth;
          for (let l = 0; l < depth; l++) H[row + l] += xk * xa[i * depth + l];
        }
      }
    }
  }
  for (let c = 0; c < K; c++) {
    for (let k = 0; k < depth - 1; k++) H[(c * depth + k) * P + c * depth + k] += 1;
    for (let e = 0; e < K; e++) H[(c * depth + depth - 1) * P + e * depth + depth - 1] += 1;
  }
  return H;
}

export interface RefFit {
  theta: Float64Array;
  f: number;
  gradMax: number;
  iterations: number;
}

/** Newton's method from theta = 0 until the gradient's largest entry is below `gtol`. */
export function fitLogregRef(
  xa: ArrayLike<number>,
  labels: Int32Array,
  classes: number,
  C: number,
  gtol = 1e-10,
  maxIter = 100,
): RefFit {
  const depth = xa.length / labels.length, P = classes * depth;
  let theta = new Float64Array(P);
  let { f, grad } = logregObjectiveRef(theta, xa, labels, classes, C);
  let it = 0;
  const gmax = (g: Float64Array) => g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  for (; it < maxIter && gmax(grad) > gtol; it++) {
    const step = solve(hessian(theta, xa, labels, classes, C), grad, P);
    let t = 1;
    let next = theta, nf = f, ng = grad;
    for (let ls = 0; ls < 60; ls++) {
      next = theta.map((v, i) => v - t * step[i]);
      ({ f: nf, grad: ng } = logregObjectiveRef(next, xa, labels, classes, C));
      if (nf <= f) break;
      t /= 2;
    }
    if (!(nf <= f)) break;
    theta = next;
    f = nf;
    grad = ng;
  }
  return { theta, f, gradMax: gmax(grad), iterations: it };
}

/** argmax of each row's logits (lowest class on ties). */
export function predictRef(
  theta: ArrayLike<number>,
  xa: ArrayLike<number>,
  rows: number,
  classes: number,
): Int32Array {
  const z = logitsRef(theta, xa, rows, classes);
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (z[i * classes + c] > z[i * classes + best]) best = c;
    out[i] = best;
  }
  return out;
}
