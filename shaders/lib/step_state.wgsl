// What every AMU training kernel reads about the current step, written on the GPU by amu_step's
// `begin`; packed on the host by packStepState (src/kernels/amu_step_shape.ts), whose field docs
// say what each one means.
struct StepState {
  step: u32,
  iter: u32,
  rowStart: u32,
  rowCount: u32,
  lr: f32,
  decay: f32,
  stepSize: f32,
  bc2Sqrt: f32,
}
