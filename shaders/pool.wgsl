// Max and average pooling over 1-3 spatial axes (run as 3-D with unit leading axes), with
// strides, pads, dilations and ceil-mode output sizes; MaxPool can also write the flat input
// index of each maximum (ONNX Indices, row- or column-major). Global pools are pools whose
// window is the whole spatial extent.
//
// One invocation per output value: windows are small (or, for global pools, one per channel),
// and each input value is read from a storage buffer once per window that covers it. Each axis'
// window is first clipped to the taps that land inside the input, so padding costs no loads
// and the count_include_pad divisor comes from arithmetic, not from visiting the padding.

struct Params {
  in_size: vec4<u32>, // D, H, W, D*H*W
  out_size: vec4<u32>, // OD, OH, OW, OD*OH*OW
  kernel: vec4<u32>, // KD, KH, KW
  stride: vec4<u32>,
  dilation: vec4<u32>,
  pad_begin: vec4<u32>,
  pad_end: vec4<u32>,
  count: u32, // N * C * OD*OH*OW outputs
}

override WG: u32 = 64u;
override MAX: bool = true; // max pooling; average otherwise
override COUNT_INCLUDE_PAD: bool = false; // average: divisor counts padded positions too
override WITH_INDICES: bool = false; // max: also write argmax positions
override COL_MAJOR: bool = false; // indices: column-major spatial order (storage_order = 1)
override ROUND_F16: bool = false; // average of float16 data: round to half precision

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<i32>;
@group(0) @binding(3) var<uniform> params: Params;

//#include "lib/nan.wgsl"
//#include "lib/f16.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.count) {
    return;
  }
  let out_plane = params.out_size.w;
  let plane = i / out_plane;
  let s = i % out_plane;
  let o = vec3<u32>(
    s / (params.out_size.y * params.out_size.z),
    (s / params.out_size.z) % params.out_size.y,
    s % params.out_size.z,
  );
  let in_dims = vec3<i32>(params.in_size.xyz);
  let dil = vec3<i32>(params.dilation.xyz);
  let kernel = vec3<i32>(params.kernel.xyz);
  let start = vec3<i32>(o * params.stride.xyz) - vec3<i32>(params.pad_begin.xyz);
  // Taps k with 0 <= start + k * dil < in, per axis: [k_lo, k_hi).
  let k_lo = select(vec3<i32>(0), (-start + dil - 1) / dil, start < vec3<i32>(0));
  // (Integer division truncates, so a window starting past the input is tested separately.)
  let room = in_dims - 1 - start;
  let k_hi = select(min(kernel, room / dil + 1), vec3<i32>(0), room < vec3<i32>(0));
  let base = plane * params.in_size.w;

  var best = 0.0;
  var best_index = -1;
  var sum = 0.0;
  var found = false;
  for (var a = k_lo.x; a < k_hi.x; a++) {
    let d = start.x + a * dil.x;
    for (var b = k_lo.y; b < k_hi.y; b++) {
      let h = start.y + b * dil.y;
      for (var c = k_lo.z; c < k_hi.z; c++) {
        let w = start.z + c * dil.z;
        let v = x[base + u32((d * in_dims.y + h) * in_dims.z + w)];
        if (MAX) {
          // A NaN wins and then stays (numpy and PyTorch's max_pool2d give NaN too).
          if (!found || (is_nan(v) || v > best) && !is_nan(best)) {
            best = v;
            if (COL_MAJOR) {
              best_index = d + (h + w * in_dims.y) * in_dims.x;
            } else {
              best_index = (d * in_dims.y + h) * in_dims.z + w;
            }
          }
          found = true;
        } else {
          sum += v;
        }
      }
    }
  }

  if (MAX) {
    y[i] = best;
    if (WITH_INDICES) {
      indices[i] = select(-1, i32(base) + best_index, found);
    }
  } else {
    var taps = max(k_hi - k_lo, vec3<i32>(0));
    if (COUNT_INCLUDE_PAD) {
      // Taps inside [-pad_begin, in + pad_end): start >= -pad_begin always holds.
      let padded_end = in_dims + vec3<i32>(params.pad_end.xyz);
      taps = clamp((padded_end - 1 - start) / dil + 1, vec3<i32>(0), kernel);
    }
    let divisor = taps.x * taps.y * taps.z;
    var mean = sum / f32(divisor);
    if (ROUND_F16) {
      mean = round_f16(mean);
    }
    y[i] = select(bitcast<f32>(0x7fc00000u), mean, divisor > 0);
  }
}
