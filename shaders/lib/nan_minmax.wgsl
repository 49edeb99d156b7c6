// WGSL leaves min/max (and sign) of a NaN to the implementation; ONNX (numpy) and PyTorch
// propagate it.

//#include "lib/nan.wgsl"

fn max_f(a: f32, b: f32) -> f32 {
  return select(select(max(a, b), b, is_nan(b)), a, is_nan(a));
}

fn min_f(a: f32, b: f32) -> f32 {
  return select(select(min(a, b), b, is_nan(b)), a, is_nan(a));
}
