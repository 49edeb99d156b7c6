// Strided copy: the one kernel behind Transpose, Slice (any steps, negative too), Concat, Split,
// Expand and DepthToSpace/SpaceToDepth. It walks a "region" of up to 8 axes and copies
//   dst[dst_offset + sum_d i_d * dst_strides[d]] = src[src_offset + sum_d i_d * src_strides[d]]
// for every multi-index i of the region. Strides are in words and may be negative (Slice with
// negative steps) or zero (Expand's broadcast axes).
//
// Movement never does arithmetic on values, so elements are copied as raw bits: {{WORD}} is u32
// (one element of any dtype) or vec4<u32> (four elements at once, chosen by the host when the
// last axis is contiguous on both sides and everything is a multiple of 4: offsets and strides
// are then counted in vec4s). On llvmpipe a vec4 load costs about as much as a scalar one, so
// that path moves ~2x more data per second.
//
// Why it is shaped this way: `lanes` invocations share one row of the region's last axis and
// each copies about last_dim / lanes words of it. The div/mod chain that turns a linear index
// into a multi-index is paid once per row instead of once per word (8x faster on llvmpipe than
// one word per invocation). INTERLEAVE picks how a row is shared: every lanes-th word
// (neighbouring invocations touch neighbouring words: coalesced on real GPUs) or consecutive
// runs (better for llvmpipe's per-invocation loops). The host merges axes that are contiguous in
// both source and destination first, so common cases collapse to rank 1-3 (Concat and Split are
// always rank 2; ViT's attention reshape [8,197,12,64] -> [8,12,197,64] becomes rank 4 with a
// contiguous last axis of 64).

struct Params {
  rank: u32, // region rank, 1..8
  threads: u32, // rows * lanes invocations do work
  lanes: u32, // invocations per row of the last axis
  run: u32, // ceil(last_dim / lanes): words per invocation
  src_offset: i32,
  dst_offset: i32,
  // shape[d / 4][d % 4] is the size of region axis d; likewise for the strides.
  shape: array<vec4<u32>, 2>,
  src_strides: array<vec4<i32>, 2>,
  dst_strides: array<vec4<i32>, 2>,
}

@group(0) @binding(0) var<storage, read> src: array<{{WORD}}>;
@group(0) @binding(1) var<storage, read_write> dst: array<{{WORD}}>;
@group(0) @binding(2) var<uniform> params: Params;

override WG: u32 = 64u;
override INTERLEAVE: bool = true;

fn dim(d: u32) -> u32 {
  return params.shape[d / 4u][d % 4u];
}

fn src_stride(d: u32) -> i32 {
  return params.src_strides[d / 4u][d % 4u];
}

fn dst_stride(d: u32) -> i32 {
  return params.dst_strides[d / 4u][d % 4u];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.threads) {
    return;
  }
  let last = params.rank - 1u;
  let row = t / params.lanes;
  let lane = t % params.lanes;
  let last_dim = dim(last);
  // This invocation's words of the row: first, count, and the hop between them.
  var first = lane * params.run;
  var hop = 1u;
  if (INTERLEAVE) {
    first = lane;
    hop = params.lanes;
  }
  var count = 0u;
  if (first < last_dim) {
    count = min(params.run, (last_dim - first + hop - 1u) / hop);
  }
  var s = params.src_offset + i32(first) * src_stride(last);
  var o = params.dst_offset + i32(first) * dst_stride(last);
  // Row index -> coordinates of the leading axes (innermost first).
  var rest = row;
  for (var d = i32(last) - 1; d >= 0; d--) {
    let size = dim(u32(d));
    let i = rest % size;
    rest = rest / size;
    s += i32(i) * src_stride(u32(d));
    o += i32(i) * dst_stride(u32(d));
  }
  let jump_src = i32(hop) * src_stride(last);
  let jump_dst = i32(hop) * dst_stride(last);
  for (var k = 0u; k < count; k++) {
    dst[u32(o)] = src[u32(s)];
    s += jump_src;
    o += jump_dst;
  }
}
