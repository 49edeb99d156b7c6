// AMU-Tuning: the head's initial weights from the training features,
//   W0[c, k] = (sum over rows i of class c of x[i, k]) / (N / C)
// (x = L2-normalised auxiliary features), i.e. each row of W0 is its class's mean feature scaled
// by the class's share of the data, as the reference initialises its linear head.
//
// The host passes the rows grouped by class (CSR: classStart[c] .. classStart[c + 1] index into
// classRows, rows ascending within a class), so each invocation sums one weight's column over
// its class's rows only, in row order (deterministic). Runs once per training run.

struct Params {
  classes: u32,
  dim: u32,
  rowsPerClass: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> classStart: array<u32>;
@group(0) @binding(2) var<storage, read> classRows: array<u32>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= params.classes * params.dim) {
    return;
  }
  let c = e / params.dim;
  let k = e % params.dim;
  var s = 0.0;
  for (var i = classStart[c]; i < classStart[c + 1u]; i++) {
    s += x[classRows[i] * params.dim + k];
  }
  w[e] = s / params.rowsPerClass;
}
