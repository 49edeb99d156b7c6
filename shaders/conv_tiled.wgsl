// Convolution with shared-memory tiles, for hardware GPUs: 1-D/2-D/3-D (run as 3-D with unit
// leading axes), groups (depthwise included), strides, begin pads (the end pads only shorten the
// output), dilations, a bias and an optional fused ReLU.
//
// It is an implicit GEMM per group g: Y[g*Mg + m, p] = sum_k W[m, k] * X_col[k, p], where m runs
// over the group's Mg output channels, p over the N * OD*OH*OW output pixels of all images (so a
// small plane at batch 8 still fills the tiles) and k = c * taps + tap over (input channel of the
// group, kernel tap): W's own [Cg, KD, KH, KW] order.
//
// Why this shape: a workgroup of WG_N x WG_M invocations computes a block of BM = 4 * WG_M
// channels x BN = 4 * WG_N pixels (64 x 64 for 16 x 16) from workgroup memory. For each slice of
// TILE_K values of k it stages the weight tile [TILE_K][BM] and the input tile [TILE_K][BN], the
// latter gathered on the fly (im2col without the matrix: padding, strides and dilations are
// resolved while staging, outside values are 0), then every invocation accumulates its 4
// channels x 4 pixels from the shared copies, two vec4 reads per 16 FMAs. An invocation's 4
// pixels are consecutive (one vec4 of the input tile), so neighbouring invocations read
// neighbouring 16-byte words (no bank conflicts) while the invocations of a row share (broadcast)
// one weight quad. Each global value is staged once per workgroup: the input by 4 scalar loads
// of consecutive pixels, the weights by one quad load in their contiguous order.
//
// Staging is arranged so that an invocation stages the same 4 pixels it outputs (quad `ln` of
// the tile, at k rows lm, lm + WG_M, ...) for every slice, so their positions, bounds and output
// offsets are computed once, before the k loop; per row only k's (channel, tap) is decoded.
// With TILE_K = 16: one input row and one weight quad per invocation per slice at 16 x 16, two
// input rows and one quad at 16 x 8.
//
// Weights: a storage buffer of quads of 4 output channels, quad (g * K + k) * MQ + mq holding
// W[g*Mg + 4*mq + (0..3), k] (zero past Mg), MQ = ceil(Mg / 4): the order the weight tile reads.
// Constant weights are laid out once by the host (as float32, or HALF_WEIGHTS: float16 pairs,
// half the memory and bandwidth, decoded by unpack2x16float); weights computed on the GPU are
// laid out by `pack_weights` on every run (float32). Accumulation is float32 either way.
//
// On llvmpipe this loses to conv.wgsl (workgroup memory is ordinary memory there, and the
// barriers cost): it is a candidate only on hardware adapters.

struct Params {
  in_size: vec4<u32>, // D, H, W, D*H*W of one input channel
  out_size: vec4<u32>, // OD, OH, OW, OD*OH*OW
  kernel: vec4<u32>, // KD, KH, KW, KD*KH*KW (taps)
  stride: vec4<u32>, // D, H, W
  dilation: vec4<u32>, // D, H, W
  pad: vec4<u32>, // leading pads D, H, W
  channels: vec4<u32>, // C, M, Cg (= C / groups), Mg (= M / groups)
  // N * OD*OH*OW pixels, K = Cg * taps, MQ = weight quads per k (ceil(Mg / 4)), channel tiles
  // per group (ceil(Mg / BM))
  gemm: vec4<u32>,
}

override WG_N: u32 = 16u; // invocations along the pixels; BN = 4 * WG_N
override WG_M: u32 = 16u; // invocations along the channels; BM = 4 * WG_M
override TILE_K: u32 = 16u; // k values per staged slice
override RELU: bool = false;
override ROUND_F16: bool = false; // float16 output: round to half precision (stored as f32)
override HALF_WEIGHTS: bool = false; // weight quads are 4 float16 (one vec2<u32>), not 4 float32

// Largest tiles any specialisation may use, in vec4 (workgroup arrays need a fixed size):
// TILE_K * WG_M and TILE_K * WG_N must not exceed it. 2 x 4 KiB of workgroup memory.
const TILE_CAPACITY: u32 = 256u;

var<workgroup> tile_w: array<vec4<f32>, TILE_CAPACITY>; // [TILE_K][WG_M] quads of 4 channels
var<workgroup> tile_x: array<vec4<f32>, TILE_CAPACITY>; // [TILE_K][WG_N] quads of 4 pixels

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

//#include "lib/activation.wgsl"
//#include "lib/f16.wgsl"

// Weight quad i (4 output channels of one k) as float32.
fn weight_quad(i: u32) -> vec4<f32> {
  if (HALF_WEIGHTS) {
    let h = weights[i];
    return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
  }
  return bitcast<vec4<f32>>(vec4<u32>(weights[2u * i], weights[2u * i + 1u]));
}

// Where one invocation's 4 pixels are: their input window origins (may be negative: padding),
// the x offset of their image's first channel of the group, the y offset of their output
// value in channel 0, and which of them exist (the last tile may run past the pixels).
struct Pixels {
  origin_d: vec4<i32>,
  origin_h: vec4<i32>,
  origin_w: vec4<i32>,
  in_base: vec4<u32>,
  out_base: vec4<u32>,
  valid: vec4<bool>,
}

fn pixels_of(first: u32, g: u32) -> Pixels {
  let count = params.gemm.x;
  let p_raw = vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u);
  let p = min(p_raw, vec4<u32>(count - 1u));
  let plane = params.out_size.w;
  let img = p / plane;
  let s = p % plane;
  let ohw = params.out_size.y * params.out_size.z;
  var px: Pixels;
  px.origin_d = vec4<i32>((s / ohw) * params.stride.x) - i32(params.pad.x);
  px.origin_h = vec4<i32>(((s / params.out_size.z) % params.out_size.y) * params.stride.y) -
    i32(params.pad.y);
  px.origin_w = vec4<i32>((s % params.out_size.z) * params.stride.z) - i32(params.pad.z);
  px.in_base = (img * params.channels.x + g * params.channels.z) * params.in_size.w;
  px.out_base = img * params.channels.y * plane + s;
  px.valid = p_raw < vec4<u32>(count);
  return px;
}

// The 4 pixels' inputs at reduction index k (< K): channel c = k / taps of the group, tap
// k % taps; 0 where the tap falls in the padding or the pixel does not exist.
fn gather_inputs(px: Pixels, k: u32) -> vec4<f32> {
  let taps = params.kernel.w;
  let c = k / taps;
  let t = k % taps;
  let kd = t / (params.kernel.y * params.kernel.z);
  let kh = (t / params.kernel.z) % params.kernel.y;
  let kw = t % params.kernel.z;
  let d = px.origin_d + vec4<i32>(i32(kd * params.dilation.x));
  let h = px.origin_h + vec4<i32>(i32(kh * params.dilation.y));
  let w = px.origin_w + vec4<i32>(i32(kw * params.dilation.z));
  let size = vec3<i32>(params.in_size.xyz);
  let inside = px.valid & (d >= vec4<i32>(0)) & (d < vec4<i32>(size.x)) &
    (h >= vec4<i32>(0)) & (h < vec4<i32>(size.y)) & (w >= vec4<i32>(0)) &
    (w < vec4<i32>(size.z));
  // Outside lanes read a valid address (their image's first value) and are replaced by 0.
  let within = vec4<u32>((d * size.y + h) * size.z + w);
  let off = px.in_base + vec4<u32>(c * params.in_size.w) + select(vec4<u32>(0u), within, inside);
  let v = vec4<f32>(x[off.x], x[off.y], x[off.z], x[off.w]);
  return select(vec4<f32>(0.0), v, inside);
}

// Writes output channel mc (within group g) of the invocation's 4 pixels: bias, ReLU,
// rounding; pixels that do not exist and channels past Mg (the tile's overhang) are skipped.
fn store_channel(v_in: vec4<f32>, px: Pixels, g: u32, mc: u32) {
  let mg = params.channels.w;
  if (mc >= mg) {
    return;
  }
  let oc = g * mg + mc;
  let dst = px.out_base + vec4<u32>(oc * params.out_size.w);
  for (var j = 0u; j < 4u; j++) {
    if (px.valid[j]) {
      var v = v_in[j] + bias[oc];
      if (RELU) {
        v = relu(v);
      }
      if (ROUND_F16) {
        v = round_f16(v);
      }
      y[dst[j]] = v;
    }
  }
}

// Workgroup (pixel tile wid.x + wid.y * nwg.x, channel tile and group wid.z); invocation
// (ln, lm) = local id (x, y) owns channels 4*lm .. 4*lm+3 and pixels 4*ln .. 4*ln+3 of the tile.
@compute @workgroup_size(WG_N, WG_M)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let pixel_tile = wid.x + wid.y * nwg.x;
  if (pixel_tile * 4u * WG_N >= params.gemm.x) {
    return; // past the last pixel tile (the grid is split over x and y): the whole workgroup
  }
  let channel_tiles = params.gemm.w;
  let g = wid.z / channel_tiles;
  let quad0 = (wid.z % channel_tiles) * WG_M; // the tile's first weight quad within the group
  let ln = lid.x;
  let lm = lid.y;
  let px = pixels_of((pixel_tile * WG_N + ln) * 4u, g);
  let k_total = params.gemm.y;
  let mq = params.gemm.z;
  let w_base = g * k_total * mq;
  let threads = WG_N * WG_M;

  var acc0 = vec4<f32>(0.0); // channel 4*lm of the 4 pixels
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < k_total; k0 += TILE_K) {
    // Input tile: invocation (ln, lm) stages its own pixel quad ln at rows lm, lm + WG_M, ...
    for (var kk = lm; kk < TILE_K; kk += WG_M) {
      let k = k0 + kk;
      var v = vec4<f32>(0.0);
      if (k < k_total) {
        v = gather_inputs(px, k);
      }
      tile_x[kk * WG_N + ln] = v;
    }
    // Weight tile: TILE_K rows of WG_M quads, read along the quads (contiguous in memory).
    for (var l = tid; l < TILE_K * WG_M; l += threads) {
      let kk = l / WG_M;
      let q = quad0 + l % WG_M;
      let k = k0 + kk;
      var v = vec4<f32>(0.0);
      if (k < k_total && q < mq) {
        v = weight_quad(w_base + k * mq + q);
      }
      tile_w[l] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      let a = tile_w[kk * WG_M + lm];
      let b = tile_x[kk * WG_N + ln];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
  }

  let mc = (quad0 + lm) * 4u;
  store_channel(acc0, px, g, mc);
  store_channel(acc1, px, g, mc + 1u);
  store_channel(acc2, px, g, mc + 2u);
  store_channel(acc3, px, g, mc + 3u);
}

// ---- weights computed on the GPU: W [M, Cg, ...kernel] -> the quad layout above ----

@group(0) @binding(0) var<storage, read> w_src: array<f32>;
@group(0) @binding(1) var<storage, read_write> w_dst: array<vec2<u32>>;
@group(0) @binding(2) var<uniform> pack_params: Params;

override PACK_WG: u32 = 64u;

// One invocation per quad (g, k, q): 4 float32 channels, zero past Mg.
@compute @workgroup_size(PACK_WG)
fn pack_weights(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let k_total = pack_params.gemm.y;
  let mq = pack_params.gemm.z;
  let mg = pack_params.channels.w;
  let groups = pack_params.channels.y / mg;
  let i = gid.x + gid.y * nwg.x * PACK_WG;
  if (i >= groups * k_total * mq) {
    return;
  }
  let q = i % mq;
  let k = (i / mq) % k_total;
  let g = i / (mq * k_total);
  var v = vec4<f32>(0.0);
  for (var lane = 0u; lane < 4u; lane++) {
    let m = 4u * q + lane;
    if (m < mg) {
      v[lane] = w_src[(g * mg + m) * k_total + k];
    }
  }
  let bits = bitcast<vec4<u32>>(v);
  w_dst[2u * i] = bits.xy;
  w_dst[2u * i + 1u] = bits.zw;
}
