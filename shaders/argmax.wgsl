// ArgMax / ArgMin along one axis: the index k < n of the largest (smallest with IS_MIN) element
// of each row, the first such index on ties, or the last with SELECT_LAST (ONNX
// select_last_index). Indices are written as i32 (ONNX int64 runs as i32 on the GPU).
//
// The tensor is viewed as [outer, n, inner]: row r = (o, i) holds x[(o * n + k) * inner + i];
// output r is row r. {{T}} is the element type (f32, i32, or u32 for bool).
// Entry points share out rows two ways, chosen on the host by size:
//  - `per_thread`: one invocation per row (many short rows);
//  - `per_group`: one workgroup per row; invocations stride over the row and merge their
//    (value, index) candidates in a tree in workgroup memory (few long rows).

override WG: u32 = 64u;
override IS_MIN: bool = false;
override SELECT_LAST: bool = false;
override IS_FLOAT: bool = true; // {{T}} is f32: a NaN wins, as numpy's argmax/argmin give it

struct Params {
  rows: u32,
  n: u32,
  inner: u32,
}

@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> y: array<i32>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> best_value: array<{{T}}, WG>;
// Index of each invocation's best element; -1 when it saw none.
var<workgroup> best_index: array<i32, WG>;

fn row_base(r: u32) -> u32 {
  let o = r / params.inner;
  let i = r % params.inner;
  return o * params.n * params.inner + i;
}

// NaN tested on the bits: a compiler may assume comparisons never see NaN.
fn is_nan(v: {{T}}) -> bool {
  return IS_FLOAT && (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

/// Whether candidate (v, k) beats (best, kb): strictly better value, or equal value and the
/// preferred side of the tie (kb = -1: no candidate yet). A NaN beats every number, and NaNs
/// tie among themselves (numpy returns the first NaN, or the last with select_last_index).
fn beats(v: {{T}}, k: i32, best: {{T}}, kb: i32) -> bool {
  if (kb < 0) { return true; }
  if (k < 0) { return false; }
  let v_nan = is_nan(v);
  let best_nan = is_nan(best);
  if (v_nan || best_nan) {
    if (v_nan != best_nan) { return v_nan; }
    if (SELECT_LAST) { return k > kb; }
    return k < kb;
  }
  var strictly: bool;
  if (IS_MIN) { strictly = v < best; } else { strictly = v > best; }
  if (strictly) { return true; }
  if (v == best) {
    if (SELECT_LAST) { return k > kb; }
    return k < kb;
  }
  return false;
}

@compute @workgroup_size(WG)
fn per_thread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= params.rows) { return; }
  let base = row_base(r);
  let stride = params.inner;
  var best = x[base];
  var kb = 0i;
  for (var k = 1u; k < params.n; k++) {
    let v = x[base + k * stride];
    if (beats(v, i32(k), best, kb)) {
      best = v;
      kb = i32(k);
    }
  }
  y[r] = kb;
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
  var best = x[base];
  var kb = -1i;
  for (var k = lid; k < params.n; k += WG) {
    let v = x[base + k * stride];
    if (beats(v, i32(k), best, kb)) {
      best = v;
      kb = i32(k);
    }
  }
  best_value[lid] = best;
  best_index[lid] = kb;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h && beats(best_value[lid + h], best_index[lid + h], best_value[lid], best_index[lid])) {
      best_value[lid] = best_value[lid + h];
      best_index[lid] = best_index[lid + h];
    }
    workgroupBarrier();
  }
  if (lid == 0u) { y[r] = best_index[0]; }
}
