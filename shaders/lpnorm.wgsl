// LpNormalization (p = 1 or 2) along one axis: y = x / ||row||_p.
//
// The tensor is viewed as [outer, n, inner]: row r = (o, i) holds x[(o * n + k) * inner + i]
// for k < n. One pass accumulates |x| (p = 1) or x^2 (p = 2), a second writes x / norm. As in
// the ONNX reference, an all-zero row stays zero (0 / 0 taken as 0, not NaN).
// Entry points share out rows two ways, chosen on the host by size:
//  - `per_thread`: one invocation per row (many short rows);
//  - `per_group`: one workgroup per row, tree sum in workgroup memory (few long rows).

override WG: u32 = 64u;
override P: u32 = 2u;
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

var<workgroup> partial: array<f32, WG>;

fn row_base(r: u32) -> u32 {
  let o = r / params.inner;
  let i = r % params.inner;
  return o * params.n * params.inner + i;
}

fn term(v: f32) -> f32 {
  if (P == 1u) { return abs(v); }
  return v * v;
}

fn norm_of(total: f32) -> f32 {
  if (P == 1u) { return total; }
  return sqrt(total);
}

//#include "lib/f16.wgsl"

fn scaled(v: f32, norm: f32) -> f32 {
  var r = select(v / norm, 0.0, norm == 0.0);
  if (ROUND_F16) { r = round_f16(r); }
  return r;
}

@compute @workgroup_size(WG)
fn per_thread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= params.rows) { return; }
  let base = row_base(r);
  let stride = params.inner;
  var s = 0.0;
  for (var k = 0u; k < params.n; k++) { s += term(x[base + k * stride]); }
  let norm = norm_of(s);
  for (var k = 0u; k < params.n; k++) {
    let idx = base + k * stride;
    y[idx] = scaled(x[idx], norm);
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
  var s = 0.0;
  for (var k = lid; k < params.n; k += WG) { s += term(x[base + k * stride]); }
  partial[lid] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { partial[lid] += partial[lid + h]; }
    workgroupBarrier();
  }
  let norm = norm_of(partial[0]);
  for (var k = lid; k < params.n; k += WG) {
    let idx = base + k * stride;
    y[idx] = scaled(x[idx], norm);
  }
}
