// Resize along ONE axis (Resize/Upsample and image resampling run one pass per resized axis).
//
// The tensor is viewed as [outer, len, inner] with `len` the resized axis. The host computes the
// sampling table of the axis once (which input positions and weights each output position
// reads: nearest, linear, cubic, antialiased filters and tf_crop_and_resize fills all reduce to
// such a table), so the shader only gathers and sums, and is exact for every ONNX mode.
//
// Work item = (output position o, group of LANES neighbouring rows of the [outer*inner] "lane"
// space). The lanes share o, so one invocation loads o's table row once and reuses it LANES
// times: on llvmpipe every storage load costs, and table loads would otherwise double the
// traffic. Lanes past the end are clamped onto the last lane (they recompute and rewrite the
// same value), which keeps the lane loops at a constant trip count.
//
// Entry points:
//   interpolate: dst = bias[o] + sum_t weight[o,t] * src[index[o,t]], in f32; the source and
//     destination element types are placeholders so the first pass can read i32 data and the
//     last can write i32 (truncating like numpy's astype) or round to half precision.
//   gather: dst = src[index[o]] as raw 32-bit words (exact for every dtype); index 0xffffffff
//     means "extrapolated point" and writes `fill_bits`.
//
// Table layout (array<u32>):
//   interpolate: count[out_len] | bias[out_len] (f32 bits) | index[out_len * max_taps] |
//                weight[out_len * max_taps] (f32 bits)
//   gather:      index[out_len]

struct Params {
  lanes: u32, // outer * inner
  inner: u32,
  in_len: u32,
  out_len: u32,
  max_taps: u32,
  index_at: u32,
  weight_at: u32,
  fill_bits: u32,
}

@group(0) @binding(0) var<storage, read> src: array<{{SRC}}>;
@group(0) @binding(1) var<storage, read_write> dst: array<{{DST}}>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 128u;
// Round results to half precision (float16 tensors are stored as f32 holding half values).
override ROUND_F16: bool = false;

const LANES: u32 = 4u;

//#include "lib/f16.wgsl"

// Source offset of a lane's row start and destination offset of its element at position o.
fn lane_offsets(lane: u32, o: u32) -> vec2<u32> {
  let outer = lane / p.inner;
  let inner = lane - outer * p.inner;
  return vec2<u32>(outer * p.in_len * p.inner + inner, (outer * p.out_len + o) * p.inner + inner);
}

@compute @workgroup_size(WG)
fn interpolate(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let item = gid.x + gid.y * nwg.x * WG;
  let groups = (p.lanes + LANES - 1u) / LANES;
  if (item >= groups * p.out_len) {
    return;
  }
  let o = item / groups;
  let first_lane = (item - o * groups) * LANES;
  let bias = bitcast<f32>(table[p.out_len + o]);
  var src_at: array<u32, LANES>;
  var dst_at: array<u32, LANES>;
  var acc: array<f32, LANES>;
  for (var j = 0u; j < LANES; j++) {
    let at = lane_offsets(min(first_lane + j, p.lanes - 1u), o);
    src_at[j] = at.x;
    dst_at[j] = at.y;
    acc[j] = bias;
  }
  let count = table[o];
  let row = o * p.max_taps;
  for (var t = 0u; t < count; t++) {
    let offset = table[p.index_at + row + t] * p.inner;
    let w = bitcast<f32>(table[p.weight_at + row + t]);
    for (var j = 0u; j < LANES; j++) {
      acc[j] += w * f32(src[src_at[j] + offset]);
    }
  }
  for (var j = 0u; j < LANES; j++) {
    var r = acc[j];
    if (ROUND_F16) {
      r = round_f16(r);
    }
    dst[dst_at[j]] = {{DST}}(r);
  }
}

@compute @workgroup_size(WG)
fn gather(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let item = gid.x + gid.y * nwg.x * WG;
  let groups = (p.lanes + LANES - 1u) / LANES;
  if (item >= groups * p.out_len) {
    return;
  }
  let o = item / groups;
  let first_lane = (item - o * groups) * LANES;
  let index = table[o];
  let offset = index * p.inner;
  for (var j = 0u; j < LANES; j++) {
    let at = lane_offsets(min(first_lane + j, p.lanes - 1u), o);
    if (index == 0xffffffffu) {
      dst[at.y] = bitcast<{{DST}}>(p.fill_bits);
    } else {
      dst[at.y] = bitcast<{{DST}}>(src[at.x + offset]);
    }
  }
}
