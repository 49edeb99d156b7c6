// LRN: y = x / (bias + alpha / size * sum of x^2 over neighbouring channels) ^ beta.
//
// X viewed as [N, C, inner]; one invocation per element sums its channel window (size is small,
// typically 5, so re-reading the neighbours beats a shared-memory scheme on these devices).

struct Params {
  channels: u32,
  inner: u32,
  count: u32,
  before: u32, // floor((size - 1) / 2)
  after: u32, // ceil((size - 1) / 2)
  scale: f32, // alpha / size
  bias: f32,
  beta: f32,
}

override WG: u32 = 64u;
override ROUND_F16: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

//#include "lib/f16.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let item = gid.x + gid.y * nwg.x * WG;
  if (item >= params.count) {
    return;
  }
  let inner = params.inner;
  let i = item % inner;
  let ch = (item / inner) % params.channels;
  let base = item - ch * inner; // channel 0 of this (n, i)
  let lo = select(0u, ch - params.before, ch >= params.before);
  let hi = min(params.channels - 1u, ch + params.after);
  var sum = 0.0;
  for (var k = lo; k <= hi; k++) {
    let v = x[base + k * inner];
    sum += v * v;
  }
  var r = x[item] / pow(params.bias + params.scale * sum, params.beta);
  if (ROUND_F16) {
    r = round_f16(r);
  }
  y[item] = r;
}
