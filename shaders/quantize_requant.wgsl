// Requantization of an integer accumulator (ONNX QLinearMatMul / QLinearConv), one element per
// invocation:
//
//   out[i] = clamp(round_half_even(acc[i] * m + y_zero), QMIN, QMAX),
//   m = a_scale * b_scale[s] / y_scale
//
// acc holds the exact integer sums of the centred products (sum of (a - a_zero) * (b - b_zero)
// plus any int32 bias) as f32 values (see src/kernels/quantize.ts for when the f32 accumulation
// is exact). b_scale is per-tensor or per-channel: s = (i / inner) % channels * b_stride
// (b_stride 0: per-tensor). a_scale, y_scale and y_zero are one-element tensors (run-time values,
// hence buffers rather than constants).
//
// Like the ONNX reference, m is formed in the scales' own precision (float32, or float16 with
// ROUND_F16: numpy rounds each float16 product and quotient) and the zero point is added before
// rounding. The reference then multiplies in float64; here acc * m + y_zero is computed in f32,
// which can differ only when that rounding lands on or crosses a .5 tie (relative 2^-24).

struct Params {
  count: u32,
  inner: u32,
  channels: u32,
  b_stride: u32,
}

@group(0) @binding(0) var<storage, read> acc: array<f32>;
@group(0) @binding(1) var<storage, read> a_scale: array<f32>;
@group(0) @binding(2) var<storage, read> b_scale: array<f32>;
@group(0) @binding(3) var<storage, read> y_scale: array<f32>;
@group(0) @binding(4) var<storage, read> y_zero: array<i32>;
@group(0) @binding(5) var<storage, read_write> out: array<i32>;
@group(0) @binding(6) var<uniform> params: Params;

override WG: u32 = 256u;
override QMIN: i32 = 0;
override QMAX: i32 = 255;
override ROUND_F16: bool = false;

//#include "lib/f16.wgsl"

fn half_if(v: f32) -> f32 {
  if (ROUND_F16) {
    return round_f16(v);
  }
  return v;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.count) {
    return;
  }
  let s = (i / params.inner) % params.channels * params.b_stride;
  let m = half_if(half_if(a_scale[0] * b_scale[s]) / y_scale[0]);
  let v = acc[i] * m + f32(y_zero[0]);
  if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) {
    out[i] = QMIN; // NaN (a zero y_scale with a zero sum), as numpy's cast then clip gives
    return;
  }
  out[i] = i32(clamp(round(v), f32(QMIN), f32(QMAX)));
}
