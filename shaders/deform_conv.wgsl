// DeformConv (2-D): Y[n, o, i, j] = B[o] + sum over the group's input channels and kernel taps
// of W[o, ci, ki, kj] * mask * X sampled bilinearly (zeros outside) at the tap's regular position
// plus its learned offset (offset [N, offset groups, kH, kW, (dy, dx), oH, oW]).
//
// One invocation per output value: every tap's sampling point differs per output position and
// offset group, so there is no im2col reuse to exploit beyond the offset group's channels.

struct Params {
  in_size: vec4<u32>, // N, C, H, W
  out_size: vec4<u32>, // oC, oH, oW, count (N * oC * oH * oW)
  kernel: vec4<u32>, // kH, kW, C per group, oC per group
  stride: vec2<u32>,
  dilation: vec2<u32>,
  pad: vec2<u32>, // top, left
  offset_groups: u32,
  ic_per_offset_group: u32,
}

override WG: u32 = 64u;
override HAS_BIAS: bool = false;
override HAS_MASK: bool = false;
override ROUND_F16: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> offset: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

//#include "lib/f16.wgsl"

// Bilinear sample of the plane at `base`, each corner outside the input reading zero.
fn sample(base: u32, py: f32, px: f32) -> f32 {
  let h = i32(params.in_size.z);
  let wd = i32(params.in_size.w);
  let fy0 = floor(py);
  let fx0 = floor(px);
  let y0 = i32(fy0);
  let x0 = i32(fx0);
  let fy = py - fy0;
  let fx = px - fx0;
  var s = 0.0;
  for (var dy = 0; dy < 2; dy++) {
    let yy = y0 + dy;
    if (yy < 0 || yy >= h) {
      continue;
    }
    let wy = select(1.0 - fy, fy, dy == 1);
    for (var dx = 0; dx < 2; dx++) {
      let xx = x0 + dx;
      if (xx < 0 || xx >= wd) {
        continue;
      }
      let wx = select(1.0 - fx, fx, dx == 1);
      s += wy * wx * x[base + u32(yy * wd + xx)];
    }
  }
  return s;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let item = gid.x + gid.y * nwg.x * WG;
  if (item >= params.out_size.w) {
    return;
  }
  let oh = params.out_size.y;
  let ow = params.out_size.z;
  let j = item % ow;
  let i = (item / ow) % oh;
  let o = (item / (ow * oh)) % params.out_size.x;
  let b = item / (ow * oh * params.out_size.x);
  let kh = params.kernel.x;
  let kw = params.kernel.y;
  let taps = kh * kw;
  let icg = params.kernel.z;
  let g = o / params.kernel.w;
  let plane = oh * ow;
  let at = i * ow + j;
  var sum = 0.0;
  if (HAS_BIAS) {
    sum = bias[o];
  }
  for (var ci = 0u; ci < icg; ci++) {
    let ch = g * icg + ci;
    let og = ch / params.ic_per_offset_group;
    let x_base = (b * params.in_size.y + ch) * params.in_size.z * params.in_size.w;
    for (var t = 0u; t < taps; t++) {
      let ki = t / kw;
      let kj = t - ki * kw;
      let tap = (b * params.offset_groups + og) * taps + t;
      let dy = offset[tap * 2u * plane + at];
      let dx = offset[(tap * 2u + 1u) * plane + at];
      let py = f32(i * params.stride.x + ki * params.dilation.x) - f32(params.pad.x) + dy;
      let px = f32(j * params.stride.y + kj * params.dilation.y) - f32(params.pad.y) + dx;
      var v = sample(x_base, py, px);
      if (HAS_MASK) {
        v *= mask[tap * plane + at];
      }
      sum += w[(o * icg + ci) * taps + t] * v;
    }
  }
  if (ROUND_F16) {
    sum = round_f16(sum);
  }
  y[item] = sum;
}
