// Softmax and LogSoftmax along one axis, numerically stable (the row maximum is subtracted).
//
// The tensor is viewed as [outer, n, inner]: row r = (o, i) holds x[(o * n + k) * inner + i]
// for k < n. (ONNX opset < 13 "coerce to 2-D at axis" is the view with inner = 1.)
// Per row, one read pass keeps a running maximum m and the sum s of exp(x - m), rescaling s
// when m grows ("online softmax"), then a second pass writes
//   softmax: exp(x - m) / s        log-softmax: x - m - log(s)
// so each element is loaded twice, not three times (loads are what costs on llvmpipe).
// Entry points share out rows two ways, chosen on the host by size:
//  - `per_thread`: one invocation per row (many short rows);
//  - `per_group`: one workgroup per row; invocations stride over the row and merge their
//    (m, s) pairs in a tree in workgroup memory (few long rows).

override WG: u32 = 64u;
override LOG: bool = false;
// Round results to half precision (float16 tensors are stored as f32).
override ROUND_F16: bool = false;

struct Params {
  rows: u32,
  n: u32,
  inner: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

// Start of the running maximum: the lowest finite f32, so that an invocation with no elements
// contributes exp(lowest - m) = 0 when merged, and -inf inputs give exp(-inf) = 0.
const LOWEST: f32 = -3.4028234e38;

var<workgroup> part_m: array<f32, WG>;
var<workgroup> part_s: array<f32, WG>;

fn row_base(r: u32) -> u32 {
  let o = r / params.inner;
  let i = r % params.inner;
  return o * params.n * params.inner + i;
}

/// Running (max, sum of exp(x - max)) after adding `v`.
fn online(ms: vec2<f32>, v: f32) -> vec2<f32> {
  if (v > ms.x) {
    return vec2<f32>(v, ms.y * exp(ms.x - v) + 1.0);
  }
  return vec2<f32>(ms.x, ms.y + exp(v - ms.x));
}

fn merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

//#include "lib/f16.wgsl"

fn result(v: f32, m: f32, inv_s: f32, log_s: f32) -> f32 {
  var r: f32;
  if (LOG) { r = v - m - log_s; } else { r = exp(v - m) * inv_s; }
  if (ROUND_F16) { r = round_f16(r); }
  return r;
}

@compute @workgroup_size(WG)
fn per_thread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= params.rows) { return; }
  let base = row_base(r);
  let stride = params.inner;
  var ms = vec2<f32>(LOWEST, 0.0);
  for (var k = 0u; k < params.n; k++) {
    ms = online(ms, x[base + k * stride]);
  }
  let inv_s = 1.0 / ms.y;
  let log_s = log(ms.y);
  for (var k = 0u; k < params.n; k++) {
    let idx = base + k * stride;
    y[idx] = result(x[idx], ms.x, inv_s, log_s);
  }
}

@compute @workgroup_size(WG)
fn per_group(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= params.rows) { return; }
  let base = row_base(r);
  let stride = params.inner;
  var ms = vec2<f32>(LOWEST, 0.0);
  for (var k = lid; k < params.n; k += WG) {
    ms = online(ms, x[base + k * stride]);
  }
  part_m[lid] = ms.x;
  part_s[lid] = ms.y;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) {
      let merged = merge(vec2<f32>(part_m[lid], part_s[lid]), vec2<f32>(part_m[lid + h], part_s[lid + h]));
      part_m[lid] = merged.x;
      part_s[lid] = merged.y;
    }
    workgroupBarrier();
  }
  let m = part_m[0];
  let s = part_s[0];
  let inv_s = 1.0 / s;
  let log_s = log(s);
  for (var k = lid; k < params.n; k += WG) {
    let idx = base + k * stride;
    y[idx] = result(x[idx], m, inv_s, log_s);
  }
}
