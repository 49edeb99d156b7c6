// Gather and GatherElements: copy 32-bit words picked by an index tensor (i32; ONNX int64
// indices run as i32 on the GPU). Values are raw bits, so one pipeline serves every dtype.
//
// Index policy (both entry points): a negative index counts from the end (i + axis_dim); an
// index still outside [0, axis_dim) is invalid (ONNX): it sets this dispatch's status slot (flag
// and the offending index, see src/gpu/status.ts), which the host reads back with the results
// and turns into an error naming the node, and it is clamped to the nearest valid row so that
// nothing reads outside the buffer meanwhile. The CPU reference throws on it.
//
// `main` (Gather): data viewed as [outer, axis_dim, inner], indices flattened to n_idx entries,
// out as [outer, n_idx, inner]. `lanes` invocations share one gathered row, each copying about
// inner / lanes words of it (every lanes-th word when INTERLEAVE, for coalescing on GPUs, else
// a consecutive run, which llvmpipe prefers), so the index is loaded and the row located once
// per run. {{WORD}} is u32, or vec4<u32> when the host sees `inner` is a multiple of 4 (sizes
// are then counted in vec4s: embedding rows of hundreds of floats move 4 at a time).
//
// `elements` (GatherElements): out has the indices' shape; out[i] = data[i with its `axis`
// coordinate replaced by indices[i]]. One invocation per element, rank up to 8; always
// instantiated with {{WORD}} = u32.

struct Params {
  threads: u32, // invocations that do work
  axis_dim: u32, // size of the gathered axis in data
  // Gather
  n_idx: u32,
  inner: u32, // words per gathered row
  lanes: u32, // invocations per row
  run: u32, // ceil(inner / lanes)
  // GatherElements
  rank: u32,
  axis: u32,
  idx_shape: array<vec4<u32>, 2>, // indices (= output) shape
  data_strides: array<vec4<u32>, 2>, // row-major strides of data
  status_slot: u32, // this dispatch's slot in `status`
}

@group(0) @binding(0) var<storage, read> data: array<{{WORD}}>;
@group(0) @binding(1) var<storage, read> indices: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<{{WORD}}>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;

override WG: u32 = 64u;
override INTERLEAVE: bool = true;

// Wraps a negative index once; reports one still outside [0, axis_dim) and clamps it.
fn resolve_index(raw: i32) -> u32 {
  let n = i32(params.axis_dim);
  var i = raw;
  if (i < 0) {
    i += n;
  }
  if (i < 0 || i >= n) {
    atomicOr(&status[params.status_slot * 2u], 1u);
    atomicStore(&status[params.status_slot * 2u + 1u], bitcast<u32>(raw));
  }
  return u32(clamp(i, 0, n - 1));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.threads) {
    return;
  }
  let row = t / params.lanes; // = o * n_idx + j
  let lane = t % params.lanes;
  var first = lane * params.run;
  var hop = 1u;
  if (INTERLEAVE) {
    first = lane;
    hop = params.lanes;
  }
  if (first >= params.inner) {
    return;
  }
  let count = min(params.run, (params.inner - first + hop - 1u) / hop);
  let o = row / params.n_idx;
  let j = row % params.n_idx;
  var src = (o * params.axis_dim + resolve_index(indices[j])) * params.inner + first;
  var dst = row * params.inner + first;
  for (var k = 0u; k < count; k++) {
    out[dst] = data[src];
    src += hop;
    dst += hop;
  }
}

@compute @workgroup_size(WG)
fn elements(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.threads) {
    return;
  }
  var rest = t;
  var src = 0u;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let size = params.idx_shape[d / 4][d % 4];
    var i = rest % size;
    rest = rest / size;
    if (u32(d) == params.axis) {
      i = resolve_index(indices[t]);
    }
    src += i * params.data_strides[d / 4][d % 4];
  }
  out[t] = data[src];
}
