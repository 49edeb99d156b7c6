/** The optimiser hyper-parameters `shaders/amu_update.wgsl` applies (pure TS, no GPU). */

/** AdamW hyper-parameters (PyTorch's names). */
export interface AdamHyper {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}
