// Diagonal-band masks over the last two axes, viewed as a stack of [rows, cols] matrices.
// Element (r, c) lies on diagonal c - r (0 = main, positive = above).
//
// `trilu` (Trilu): out = x where the diagonal is >= k (UPPER) or <= k (lower), else 0.
// `eye` (EyeLike): out = `one` on diagonal k, else 0.
//
// Values move as raw 32-bit words (0 is zero in every dtype's storage), so one pipeline serves
// every dtype; `one` is the bit pattern of 1 in the output's storage type.

struct Params {
  total: u32,
  rows: u32,
  cols: u32,
  k: i32,
  one: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<u32>;

override WG: u32 = 64u;
override UPPER: bool = true;

// Diagonal of element t, or none for t past the end (then the invocation returns).
fn diagonal(t: u32) -> i32 {
  let c = t % params.cols;
  let r = (t / params.cols) % params.rows;
  return i32(c) - i32(r);
}

@compute @workgroup_size(WG)
fn trilu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.total) {
    return;
  }
  let d = diagonal(t);
  var keep = d <= params.k;
  if (UPPER) {
    keep = d >= params.k;
  }
  out[t] = select(0u, x[t], keep);
}

@compute @workgroup_size(WG)
fn eye(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.total) {
    return;
  }
  out[t] = select(0u, params.one, diagonal(t) == params.k);
}
