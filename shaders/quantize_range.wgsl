// Range of a tensor for ONNX DynamicQuantizeLinear (uint8), in one workgroup:
//
//   lo = min(0, min(x)), hi = max(0, max(x)),
//   scale = (hi - lo) / 255 (1 when hi == lo, i.e. x is all zeros),
//   zero  = round_half_even(clamp(0 - lo / scale, 0, 255)).
//
// One workgroup strides over the whole tensor and reduces in workgroup memory; invocation 0
// writes the scale (f32) and the zero point (an i32 word holding the uint8 value). A single
// workgroup keeps the kernel one dispatch with no second pass; the quantization that follows
// (shaders/quantize.wgsl) reads both as its per-tensor scale and zero point.
//
// The order of the min/max reduction does not matter (min and max are exact). NaN elements are
// skipped by WGSL's min/max on most adapters (numpy would propagate them); the reference skips
// them too.

struct Params {
  count: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> scale_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> zero_out: array<i32>;
@group(0) @binding(3) var<uniform> params: Params;

const WG: u32 = 256u;

var<workgroup> lows: array<f32, WG>;
var<workgroup> highs: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var lo = 0.0;
  var hi = 0.0;
  for (var i = lid; i < params.count; i += WG) {
    let v = x[i];
    if ((bitcast<u32>(v) & 0x7fffffffu) <= 0x7f800000u) {
      lo = min(lo, v);
      hi = max(hi, v);
    }
  }
  lows[lid] = lo;
  highs[lid] = hi;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      lows[lid] = min(lows[lid], lows[lid + stride]);
      highs[lid] = max(highs[lid], highs[lid + stride]);
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let l = lows[0];
    let h = highs[0];
    var s = 1.0;
    if (h != l) {
      s = (h - l) / 255.0;
    }
    scale_out[0] = s;
    zero_out[0] = i32(round(clamp(0.0 - l / s, 0.0, 255.0)));
  }
}
