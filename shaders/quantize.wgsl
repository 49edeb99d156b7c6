// Linear quantization (ONNX QuantizeLinear / DequantizeLinear) over a flat tensor, one element per
// invocation:
//
//   MODE_QUANTIZE:   out[i] = clamp(round_half_even(x[i] / scale[s]) + zero[s], QMIN, QMAX)
//   MODE_DEQUANTIZE: out[i] = (x[i] - zero[s]) * scale[s]
//
// where s is the scale (and zero point) index of element i. One formula covers the three ONNX
// granularities: with i = (outer * axis_len + a) * inner + j (a: the index along the quantization
// axis), s = outer * outer_stride + (a / block) * axis_stride + j * inner_stride, so
//   per-tensor: all strides 0;
//   per-axis:   axis_stride 1, block 1 (scale[a]);
//   blocked:    the scale has x's shape with the axis shortened to ceil(axis_len / block):
//               outer_stride = blocks * inner, axis_stride = inner, inner_stride = 1.
//
// Every engine element is one 32-bit word: x is f32 (quantize) or i32 (dequantize of int8, uint8
// or int32), zero points are i32 words (int8/uint8 values; a tensor of one 0 when the model has
// none), out is i32 (quantize) or f32 (dequantize). Both are declared array<u32> and bitcast.
//
// Rounding: WGSL round() is round-half-to-even, as ONNX specifies (numpy rint). The quotient is
// computed as one f32 division like the reference (numpy x / y_scale in float32); WGSL allows
// its division 2.5 ULP of error, so on an adapter whose division is not correctly rounded a
// quotient within a few ULP of a .5 tie could round the other way (llvmpipe divides exactly).
// With ROUND_F16 (float16 x and scale) the quotient is first rounded to half precision, as
// numpy's float16 arithmetic does; for a dequantize the result is rounded to half.

const MODE_QUANTIZE: u32 = 0u;
const MODE_DEQUANTIZE: u32 = 1u;

struct Params {
  count: u32,
  inner: u32,
  axis_len: u32,
  block: u32,
  outer_stride: u32,
  axis_stride: u32,
  inner_stride: u32,
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> zero: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;

override WG: u32 = 256u;
override MODE: u32 = MODE_QUANTIZE;
// Range of the quantized type (int8: -128..127, uint8: 0..255); quantize only.
override QMIN: i32 = 0;
override QMAX: i32 = 255;
override ROUND_F16: bool = false;

//#include "lib/f16.wgsl"

fn scale_index(i: u32) -> u32 {
  let j = i % params.inner;
  let t = i / params.inner;
  let a = t % params.axis_len;
  let outer = t / params.axis_len;
  return outer * params.outer_stride + (a / params.block) * params.axis_stride +
    j * params.inner_stride;
}

// round_half_even(v) + zp saturated to [QMIN, QMAX]. Clamped as f32 first so that huge values
// do not overflow i32 (|v| < 2^24 makes the f32 sum exact); NaN gives QMIN, as the reference
// does (rint(NaN) cast to int32 is INT32_MIN on x86, then clipped).
fn saturate(v: f32, zp: i32) -> i32 {
  if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) {
    return QMIN;
  }
  let r = clamp(round(v), -16777216.0, 16777216.0);
  return clamp(i32(r) + zp, QMIN, QMAX);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.count) {
    return;
  }
  let s = scale_index(i);
  if (MODE == MODE_QUANTIZE) {
    var q = bitcast<f32>(x[i]) / scale[s];
    if (ROUND_F16) {
      q = round_f16(q);
    }
    out[i] = bitcast<u32>(saturate(q, zero[s]));
  } else {
    // x - zero is an exact integer in f32 (|x - zero| < 2^24 for 8-bit types; int32 inputs have
    // zero point 0 and round once, in the conversion).
    var y = f32(bitcast<i32>(x[i]) - zero[s]) * scale[s];
    if (ROUND_F16) {
      y = round_f16(y);
    }
    out[i] = bitcast<u32>(y);
  }
}
