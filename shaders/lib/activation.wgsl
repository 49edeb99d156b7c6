// Activations the matmul kernels fuse into their epilogue.

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), for the fused GELU.
fn erf_approx(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 +
    t * (-1.453152027 + t * 1.061405429))));
  return sign(x) * (1.0 - poly * exp(-x * x));
}

// Relu that keeps NaN (WGSL's max may return the other operand; ONNX and PyTorch give NaN),
// tested on the bits so that a compiler's finite-math assumption cannot fold it away.
fn relu(v: f32) -> f32 {
  return select(max(v, 0.0), v, (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u);
}
