// TopK along one axis: the k largest (or smallest) elements of every row, sorted, with their
// int64 (i32 on the GPU) positions. ONNX breaks ties by the lower index.
//
// x is viewed as [outer, n, inner]; a "row" is one (outer, inner) pair, its n elements `inner`
// apart. One invocation per input element computes that element's rank in its row: the number of
// elements that come before it in the order (value first, then index). Ranks are a permutation
// of 0..n-1, so the elements of rank < k fill output slots 0..k-1 exactly once, already sorted.
// That costs n comparisons per element (n^2 per row) but needs no shared memory or passes: fine
// for the rows detection heads sort (a few thousand boxes).
//
// Values compare through an order-preserving u32 key, which gives floats a total order: NaN sorts
// above +inf (as numpy's sort puts it last), and -0 equals +0. {{T}} is f32 or i32 (int32/int64).

struct Params {
  total: u32, // outer * n * inner invocations
  n: u32, // axis size
  k: u32,
  inner: u32,
}

@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> values: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> indices: array<i32>;
@group(0) @binding(3) var<uniform> params: Params;

override WG: u32 = 64u;
override LARGEST: bool = true;
override IS_FLOAT: bool = true;

// Order-preserving unsigned key: a < b as numbers iff key(a) < key(b).
fn key(v: {{T}}) -> u32 {
  var bits = bitcast<u32>(v);
  if (IS_FLOAT) {
    if ((bits & 0x7fffffffu) == 0u) {
      bits = 0u; // -0 == +0
    }
    if ((bits & 0x80000000u) != 0u) {
      return ~bits;
    }
    return bits | 0x80000000u;
  }
  return bits ^ 0x80000000u;
}

// Whether (key a, index ia) comes before (key b, index ib) in the output order.
fn before(a: u32, ia: u32, b: u32, ib: u32) -> bool {
  if (a == b) {
    return ia < ib;
  }
  if (LARGEST) {
    return a > b;
  }
  return a < b;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.total) {
    return;
  }
  let inner = params.inner;
  let i = (t / inner) % params.n;
  let o = t / (inner * params.n);
  let base = o * params.n * inner + t % inner;
  let mine = key(x[t]);
  var rank = 0u;
  for (var m = 0u; m < params.n && rank < params.k; m++) {
    if (before(key(x[base + m * inner]), m, mine, i)) {
      rank++;
    }
  }
  if (rank < params.k) {
    let dst = (o * params.k + rank) * inner + t % inner;
    values[dst] = x[t];
    indices[dst] = i32(i);
  }
}
