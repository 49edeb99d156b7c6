// LpPool: y = (sum of |x|^p over the window) ^ (1/p) over 1-3 spatial axes (run as 3-D with unit
// leading axes), with strides, pads, dilations and ceil-mode output sizes; padding counts as
// zeros, so only taps inside the input are visited (each axis' window is clipped first).
// One invocation per output value, as pool.wgsl.

struct Params {
  in_size: vec4<u32>, // D, H, W, D*H*W
  out_size: vec4<u32>, // OD, OH, OW, OD*OH*OW
  kernel: vec4<u32>,
  stride: vec4<u32>,
  dilation: vec4<u32>,
  pad_begin: vec4<u32>,
  count: u32,
  p: f32,
}

override WG: u32 = 64u;
// p = 1 and p = 2 avoid pow (exact, and pow(0, p) is not defined in WGSL).
override P_KIND: u32 = 2u; // 1: p = 1, 2: p = 2, 0: general p
override ROUND_F16: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

//#include "lib/f16.wgsl"

fn term(v: f32) -> f32 {
  let a = abs(v);
  if (P_KIND == 1u) {
    return a;
  }
  if (P_KIND == 2u) {
    return a * a;
  }
  return select(pow(a, params.p), 0.0, a == 0.0);
}

fn root(s: f32) -> f32 {
  if (P_KIND == 1u) {
    return s;
  }
  if (P_KIND == 2u) {
    return sqrt(s);
  }
  return select(pow(s, 1.0 / params.p), 0.0, s == 0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.count) {
    return;
  }
  let plane = i / params.out_size.w;
  let s = i % params.out_size.w;
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
  let room = in_dims - 1 - start;
  let k_hi = select(min(kernel, room / dil + 1), vec3<i32>(0), room < vec3<i32>(0));
  let base = plane * params.in_size.w;
  var sum = 0.0;
  for (var a = k_lo.x; a < k_hi.x; a++) {
    let d = start.x + a * dil.x;
    for (var b = k_lo.y; b < k_hi.y; b++) {
      let h = start.y + b * dil.y;
      for (var c = k_lo.z; c < k_hi.z; c++) {
        let w = start.z + c * dil.z;
        sum += term(x[base + u32((d * in_dims.y + h) * in_dims.z + w)]);
      }
    }
  }
  var r = root(sum);
  if (ROUND_F16) {
    r = round_f16(r);
  }
  y[i] = r;
}
