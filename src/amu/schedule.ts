/** Learning-rate schedule and per-step AdamW scalars. The reference steps PyTorch's
 * CosineAnnealingLR(T_max = epochs * iters_per_epoch, eta_min = 0) every iteration; we use its
 * closed form in float64, lr_t = 0.5 * lr0 * (1 + cos(pi * t / T)) (PyTorch's recursive update
 * agrees to ~1e-19, below float32 resolution), and round to float32 once. */
import type { AmuConfig } from "./config.ts";

/** Learning rate of global step t (0-based) out of `total` steps. */
export function cosineLr(lr0: number, t: number, total: number): number {
  return 0.5 * lr0 * (1 + Math.cos(Math.PI * t / total));
}

/** Scalars the GPU reads per step, [total, 4] float32: (lr, 1 - lr * weight_decay,
 * lr / (1 - beta1^(t+1)), sqrt(1 - beta2^(t+1))), each computed in float64 from the float64 lr
 * (as PyTorch computes them from Python floats) and rounded to float32 once. */
export function stepScalarTable(config: AmuConfig, total: number): Float32Array {
  const out = new Float32Array(total * 4);
  for (let t = 0; t < total; t++) {
    const lr = cosineLr(config.lr, t, total);
    const n = t + 1;
    out[t * 4] = lr;
    out[t * 4 + 1] = 1 - lr * config.weightDecay;
    out[t * 4 + 2] = lr / (1 - config.adamBeta1 ** n);
    out[t * 4 + 3] = Math.sqrt(1 - config.adamBeta2 ** n);
  }
  return out;
}
