// Index-tuple addressing: GatherND reads, ScatterND and ScatterElements write, at positions an
// index tensor (i32 on the GPU; int64 runs as i32) gives.
//
// Index policy: a negative index counts from the end (i + dim); one still outside [0, dim) is
// invalid (ONNX requires an error). The invocation then leaves its output element alone (GatherND
// writes 0; the scatters skip the update, so the element keeps its copied data) and reports it
// in this dispatch's status slot: word 0 |= 1, word 1 = the offending index (the layout of
// src/gpu/status.ts, which the plan reads back and raises as an error naming the node).
//
// `gather_nd`: out is [tuples, slice] where tuples = prod(indices.shape[:-1]) and slice is the
// size of the data dims a tuple does not address. Tuple u, in batch b = u / tuples_per_batch,
// addresses data at b * batch_stride + sum_j resolve(indices[u * depth + j], dims[j]) * strides[j].
// One invocation per output element.
//
// `scatter_nd`: out (already a copy of data) gets updates [tuples, slice] at the same addresses
// (no batch dims). REDUCE 0 (none) runs one invocation per update element (ONNX forbids duplicate
// indices there); the reductions run one invocation per slice position that walks the tuples in
// order, so duplicates combine deterministically without atomics.
//
// `scatter_elements`: indices and updates share a shape (rank <= 8); update p goes to p with its
// `axis` coordinate replaced by resolve(indices[p], dims[0]). Only updates that differ in the
// axis coordinate can collide, so one invocation per line along the axis walks it in order
// (last write wins for REDUCE 0, as the ONNX reference does).
//
// REDUCE: 0 none, 1 add, 2 mul, 3 max, 4 min. {{T}} is f32, i32 or u32 (bool, REDUCE 0 only).
// ROUND_F16 rounds each add/mul result of float16 data to half.

struct Params {
  threads: u32, // invocations that do work
  tuples: u32, // gather_nd/scatter_nd: index tuples; scatter_elements: updates per line
  slice: u32, // elements per addressed slice (scatter_elements: 1)
  depth: u32, // gather_nd/scatter_nd: index tuple length; scatter_elements: rank
  tuples_per_batch: u32, // gather_nd: tuples in one batch (all of them without batch dims)
  batch_stride: u32, // gather_nd: data elements per batch
  axis: u32, // scatter_elements: the scattered axis
  status_slot: u32, // this dispatch's slot in `status`
  dims: array<vec4<u32>, 2>, // addressed data dims (scatter_elements: [0] = data dim at axis)
  strides: array<vec4<u32>, 2>, // their data strides (scatter_elements: all of data's)
  idx_shape: array<vec4<u32>, 2>, // scatter_elements: indices (= updates) shape
}

@group(0) @binding(0) var<storage, read> indices: array<i32>;
@group(0) @binding(1) var<storage, read> src: array<{{T}}>; // gather_nd: data; scatters: updates
@group(0) @binding(2) var<storage, read_write> out: array<{{T}}>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;

override WG: u32 = 64u;
override REDUCE: u32 = 0u;
override ROUND_F16: bool = false;

//#include "lib/f16_finish.wgsl"

fn at(a: array<vec4<u32>, 2>, d: u32) -> u32 {
  return a[d / 4u][d % 4u];
}

// The resolved index in [0, dim), or -1 after reporting an invalid one.
fn resolve(raw: i32, dim: u32) -> i32 {
  var i = raw;
  if (i < 0) {
    i += i32(dim);
  }
  if (i < 0 || i >= i32(dim)) {
    atomicOr(&status[params.status_slot * 2u], 1u);
    atomicStore(&status[params.status_slot * 2u + 1u], bitcast<u32>(raw));
    return -1;
  }
  return i;
}

// Data offset of tuple u (without batch or slice offsets), or -1 when an index is invalid.
fn tuple_offset(u: u32) -> i32 {
  var off = 0u;
  for (var j = 0u; j < params.depth; j++) {
    let i = resolve(indices[u * params.depth + j], at(params.dims, j));
    if (i < 0) {
      return -1;
    }
    off += u32(i) * at(params.strides, j);
  }
  return i32(off);
}

fn combine(old: {{T}}, v: {{T}}) -> {{T}} {
  switch REDUCE {
    case 1u: {
      return finish(old + v);
    }
    case 2u: {
      return finish(old * v);
    }
    case 3u: {
      return max(old, v);
    }
    case 4u: {
      return min(old, v);
    }
    default: {
      return v;
    }
  }
}

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn gather_nd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = linear(gid, nwg);
  if (t >= params.threads) {
    return;
  }
  let u = t / params.slice;
  let off = tuple_offset(u);
  if (off < 0) {
    out[t] = {{T}}(0);
    return;
  }
  let b = u / params.tuples_per_batch;
  out[t] = src[b * params.batch_stride + u32(off) + t % params.slice];
}

@compute @workgroup_size(WG)
fn scatter_nd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = linear(gid, nwg);
  if (t >= params.threads) {
    return;
  }
  var first = 0u;
  var last = params.tuples;
  var e = t;
  if (REDUCE == 0u) {
    first = t / params.slice;
    last = first + 1u;
    e = t % params.slice;
  }
  for (var u = first; u < last; u++) {
    let off = tuple_offset(u);
    if (off >= 0) {
      let dst = u32(off) + e;
      out[dst] = combine(out[dst], src[u * params.slice + e]);
    }
  }
}

@compute @workgroup_size(WG)
fn scatter_elements(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let t = linear(gid, nwg);
  if (t >= params.threads) {
    return;
  }
  // Position of this line in the indices (axis coordinate 0) and its data offset off the axis.
  var rest = t;
  var pos = 0u;
  var base = 0u;
  var pos_step = 1u; // indices stride of the axis
  var size = 1u;
  for (var d = i32(params.depth) - 1; d >= 0; d--) {
    let n = at(params.idx_shape, u32(d));
    if (u32(d) == params.axis) {
      pos_step = size;
    } else {
      let c = rest % n;
      rest = rest / n;
      pos += c * size;
      base += c * at(params.strides, u32(d));
    }
    size *= n;
  }
  let axis_stride = at(params.strides, params.axis);
  for (var a = 0u; a < params.tuples; a++) {
    let p = pos + a * pos_step;
    let i = resolve(indices[p], at(params.dims, 0u));
    if (i >= 0) {
      let dst = base + u32(i) * axis_stride;
      out[dst] = combine(out[dst], src[p]);
    }
  }
}
