// Transposed convolution (ONNX ConvTranspose), 1-D/2-D/3-D (run as 3-D with unit leading axes),
// with groups, strides, dilations, leading pads (negative ones too: the output then starts before
// the full scatter line) and a bias. Output padding and trailing pads only change the output
// size, which the host passes in.
//
// Gather formulation, so that no two invocations write the same output and no atomics are
// needed: output position o of an axis (full position p = o + pad) receives input i through
// kernel tap k exactly when i * stride + k * dilation = p, i.e. p - k * dilation is a multiple
// of the stride and the quotient is a valid input index. Per group g, with Cg = C / groups input
// and Mg = M / groups output channels:
//   Y[n, g*Mg + m, o] = B[g*Mg + m] + sum_{c < Cg, taps k meeting o} X[n, g*Cg + c, i(o, k)] * W[g*Cg + c, m, k]
//
// Tiles: an invocation owns 4 output positions of one output row x 4 * TM4 output channels of
// one group, and for each tap walks the group's input channels loading 4 input values and TM4
// weight vec4s (4 output channels each) for 16 * TM4 FMAs. The 4 positions are one stride apart
// along W (ow0 + j * SW): they share their phase p mod SW, hence the same set of taps, and read 4
// consecutive input columns. Invocations are ordered phase-major (all quads of one (D, H, W)
// phase, then the next), so neighbouring invocations - the lanes of a SIMD group on CPU adapters,
// a wave on GPUs - skip the same taps instead of diverging on them.
//
// The accumulators are separate variables indexed by constants (a private array indexed by
// anything else lives in memory on llvmpipe; see conv.wgsl); TM4 (1..4) is an override
// constant and the blocks past it fold away.
//
// `main_folded` is the case of kernel == stride on every axis, unit dilations, no pads and no
// output padding (the 2x2/2 upsampling of detection and segmentation decoders): every output
// position is then reached by exactly one (input position, tap), so per group the operator is
// the matrix product Z[(m, tap), p] = sum_c W[g*Cg + c, m, tap] * X[n, g*Cg + c, p] with column
// (m, tap) of input position p stored at output p * stride + tap. Its tile is 4 consecutive input
// positions along W x 4 * TM4 columns (m, tap): `main`'s channel tile, with the taps folded into
// the channels. W [C, Mg, taps] is already W [C, Mg * taps], so the weights are packed as for
// `main` with Mg * taps channels and one tap. Where Mg is small this fills the tile: a 24 -> 1
// 2x2/2 layer computes 4 useful columns per input load instead of 1, and ran 2-2.4x faster on
// llvmpipe (timings in src/kernels/conv_transpose.ts).
//
// Weight layout (written once by the host when W is constant, else by conv_transpose_pack.wgsl):
// vec4 ((g * taps + tap) * Cg + c) * MB + mb holds W[g*Cg + c, 4*mb + (0..3), tap], zero past Mg.
// MB, the channel blocks per group, is a multiple of TM4 so that a tile stays in its group, and
// its TM4 blocks are consecutive.

struct Params {
  in_size: vec4<u32>, // ID, IH, IW, ID*IH*IW
  out_size: vec4<u32>, // OD, OH, OW, OD*OH*OW
  kernel: vec4<u32>, // KD, KH, KW, KD*KH*KW (taps)
  stride: vec4<u32>, // SD, SH, SW, SD*SH*SW (phases)
  dilation: vec4<u32>, // DD, DH, DW, unused
  pad: vec4<i32>, // leading pads D, H, W (may be negative), unused
  channels: vec4<u32>, // C, M, Cg, Mg
  // Quads per phase along each axis: UD = ceil(OD / SD), UH = ceil(OH / SH),
  // QW = ceil(ceil(OW / SW) / 4); and N * UD * UH * QW, the quads of one phase.
  grid: vec4<u32>,
  // Channel tiles per group, groups, MB, and for `main_folded` the columns per group, Mg * taps.
  // (`main_folded` reads grid.z: quads per input row, ceil(IW / 4), and grid.w: all quads.)
  tiles: vec4<u32>,
}

override WG: u32 = 64u;
override TM4: u32 = 1u; // output channel blocks (of 4) per invocation, 1..4
override ROUND_F16: bool = false; // float16 output: round to half precision (stored as f32)

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// 4 output channels (the fields) x the quad's 4 positions (the vec4 lanes).
struct Block {
  c0: vec4<f32>,
  c1: vec4<f32>,
  c2: vec4<f32>,
  c3: vec4<f32>,
}

//#include "lib/f16.wgsl"

fn fma_block(b: ptr<function, Block>, xv: vec4<f32>, wv: vec4<f32>) {
  (*b).c0 = fma(xv, vec4<f32>(wv.x), (*b).c0);
  (*b).c1 = fma(xv, vec4<f32>(wv.y), (*b).c1);
  (*b).c2 = fma(xv, vec4<f32>(wv.z), (*b).c2);
  (*b).c3 = fma(xv, vec4<f32>(wv.w), (*b).c3);
}

// Writes output channel mc (within group g) of the quad: bias, rounding; lanes that are not
// `valid` and channels past Mg (the zero padding of the last block) are skipped.
fn store_channel(v: vec4<f32>, out_base: vec4<u32>, g: u32, mc: u32, valid: vec4<bool>) {
  let mg = params.channels.w;
  if (mc >= mg) {
    return;
  }
  var r = v + vec4<f32>(bias[g * mg + mc]);
  if (ROUND_F16) {
    r = round_f16_4(r);
  }
  let o = out_base + vec4<u32>(mc * params.out_size.w);
  if (valid.x) { y[o.x] = r.x; }
  if (valid.y) { y[o.y] = r.y; }
  if (valid.z) { y[o.z] = r.z; }
  if (valid.w) { y[o.w] = r.w; }
}

fn store_block(b: Block, out_base: vec4<u32>, g: u32, mc: u32, valid: vec4<bool>) {
  store_channel(b.c0, out_base, g, mc, valid);
  store_channel(b.c1, out_base, g, mc + 1u, valid);
  store_channel(b.c2, out_base, g, mc + 2u, valid);
  store_channel(b.c3, out_base, g, mc + 3u, valid);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  let per_phase = params.grid.w;
  let phases = params.stride.w;
  let channel_tiles = params.tiles.x;
  if (t >= per_phase * phases * channel_tiles * params.tiles.y) {
    return;
  }
  let quad = t % per_phase;
  var r = t / per_phase;
  let phase = r % phases;
  r /= phases;
  let channel_tile = r % channel_tiles;
  let g = r / channel_tiles;

  let stride = params.stride.xyz;
  let phase_w = phase % stride.z;
  let phase_h = (phase / stride.z) % stride.y;
  let phase_d = phase / (stride.z * stride.y);
  let qw = quad % params.grid.z;
  r = quad / params.grid.z;
  let uh = r % params.grid.y;
  r /= params.grid.y;
  let ud = r % params.grid.x;
  let n = r / params.grid.x;
  let od = phase_d + stride.x * ud;
  let oh = phase_h + stride.y * uh;
  let ow0 = phase_w + stride.z * 4u * qw;
  let out_size = params.out_size;
  if (od >= out_size.x || oh >= out_size.y || ow0 >= out_size.z) {
    return; // the phase has fewer positions than the grid's bound
  }
  let ow = vec4<u32>(ow0) + vec4<u32>(0u, 1u, 2u, 3u) * stride.z;
  let valid = ow < vec4<u32>(out_size.z);

  let sd = i32(stride.x);
  let sh = i32(stride.y);
  let sw = i32(stride.z);
  let in_d = i32(params.in_size.x);
  let in_h = i32(params.in_size.y);
  let in_w = i32(params.in_size.z);
  let in_plane = params.in_size.w;
  let dilation = vec3<i32>(params.dilation.xyz);
  // Full (uncropped) positions of the quad's first output.
  let pd = i32(od) + params.pad.x;
  let ph = i32(oh) + params.pad.y;
  let pw = i32(ow0) + params.pad.z;
  let cg = params.channels.z;
  let mb = params.tiles.z;
  let x_base = (n * params.channels.x + g * cg) * in_plane; // (n, first channel of g)
  let kernel = params.kernel;
  // vec4 of (g, tap 0, c 0, the tile's first block); a tap adds Cg * MB, a channel MB.
  let w_group = g * kernel.w * cg * mb + channel_tile * TM4;

  var acc0: Block;
  var acc1: Block;
  var acc2: Block;
  var acc3: Block;
  for (var kd = 0u; kd < kernel.x; kd++) {
    let td = pd - i32(kd) * dilation.x;
    if (td < 0 || td % sd != 0 || td / sd >= in_d) {
      continue;
    }
    for (var kh = 0u; kh < kernel.y; kh++) {
      let th = ph - i32(kh) * dilation.y;
      if (th < 0 || th % sh != 0 || th / sh >= in_h) {
        continue;
      }
      let row = (td / sd * in_h + th / sh) * in_w; // input offset of the row within a plane
      for (var kw = 0u; kw < kernel.z; kw++) {
        // Exact division (when the remainder is 0) is right for negative tw too.
        let tw = pw - i32(kw) * dilation.z;
        if (tw % sw != 0) {
          continue;
        }
        let iw = vec4<i32>(tw / sw) + vec4<i32>(0, 1, 2, 3);
        let inside = valid & (iw >= vec4<i32>(0)) & (iw < vec4<i32>(in_w));
        if (!any(inside)) {
          continue;
        }
        // Lanes outside read a valid address and are replaced by 0.
        var off = select(
          vec4<u32>(x_base),
          vec4<u32>(x_base) + vec4<u32>(vec4<i32>(row) + iw),
          inside,
        );
        var wi = w_group + ((kd * kernel.y + kh) * kernel.z + kw) * cg * mb;
        for (var c = 0u; c < cg; c++) {
          let xv = select(
            vec4<f32>(0.0),
            vec4<f32>(x[off.x], x[off.y], x[off.z], x[off.w]),
            inside,
          );
          fma_block(&acc0, xv, weights[wi]);
          if (TM4 > 1u) {
            fma_block(&acc1, xv, weights[wi + 1u]);
          }
          if (TM4 > 2u) {
            fma_block(&acc2, xv, weights[wi + 2u]);
          }
          if (TM4 > 3u) {
            fma_block(&acc3, xv, weights[wi + 3u]);
          }
          off += vec4<u32>(in_plane);
          wi += mb;
        }
      }
    }
  }

  let mg = params.channels.w;
  let out_plane = out_size.w;
  // y offsets of the quad in the group's first output channel.
  let out_base = vec4<u32>((n * params.channels.y + g * mg) * out_plane +
    (od * out_size.y + oh) * out_size.z) + ow;
  let mc0 = channel_tile * TM4 * 4u; // the tile's first channel within the group
  store_block(acc0, out_base, g, mc0, valid);
  if (TM4 > 1u) {
    store_block(acc1, out_base, g, mc0 + 4u, valid);
  }
  if (TM4 > 2u) {
    store_block(acc2, out_base, g, mc0 + 8u, valid);
  }
  if (TM4 > 3u) {
    store_block(acc3, out_base, g, mc0 + 12u, valid);
  }
}

// Writes column j = mc * taps + tap (within group g) of `main_folded`'s quad of input positions
// (lanes one input column apart, so their outputs are SW apart): bias, rounding; lanes that
// are not `valid` and the zero padding past Mg * taps are skipped.
fn store_folded(v: vec4<f32>, out_row: vec4<u32>, g: u32, j: u32, valid: vec4<bool>) {
  if (j >= params.tiles.w) {
    return;
  }
  let kernel = params.kernel;
  let mc = j / kernel.w;
  let tap = j % kernel.w;
  let kd = tap / (kernel.y * kernel.z);
  let kh = (tap / kernel.z) % kernel.y;
  let kw = tap % kernel.z;
  let oc = g * params.channels.w + mc;
  var r = v + vec4<f32>(bias[oc]);
  if (ROUND_F16) {
    r = round_f16_4(r);
  }
  let out_size = params.out_size;
  let o = out_row + vec4<u32>(oc * out_size.w + (kd * out_size.y + kh) * out_size.z + kw);
  if (valid.x) { y[o.x] = r.x; }
  if (valid.y) { y[o.y] = r.y; }
  if (valid.z) { y[o.z] = r.z; }
  if (valid.w) { y[o.w] = r.w; }
}

fn store_folded_block(b: Block, out_row: vec4<u32>, g: u32, j: u32, valid: vec4<bool>) {
  store_folded(b.c0, out_row, g, j, valid);
  store_folded(b.c1, out_row, g, j + 1u, valid);
  store_folded(b.c2, out_row, g, j + 2u, valid);
  store_folded(b.c3, out_row, g, j + 3u, valid);
}

@compute @workgroup_size(WG)
fn main_folded(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let t = gid.x + gid.y * nwg.x * WG;
  let quads = params.grid.w; // N * ID * IH * ceil(IW / 4)
  let channel_tiles = params.tiles.x;
  if (t >= quads * channel_tiles * params.tiles.y) {
    return;
  }
  let quad = t % quads;
  let r = t / quads;
  let channel_tile = r % channel_tiles;
  let g = r / channel_tiles;

  let in_size = params.in_size;
  let row = quad / params.grid.z; // (n * ID + id) * IH + ih
  let iw = vec4<u32>((quad % params.grid.z) * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
  let valid = iw < vec4<u32>(in_size.z);
  let rows_per_image = in_size.x * in_size.y;
  let n = row / rows_per_image;
  let id = (row % rows_per_image) / in_size.y;
  let ih = row % in_size.y;
  let in_plane = in_size.w;
  let cg = params.channels.z;
  let mb = params.tiles.z;
  // Lanes past the row read its last value (valid, and never stored).
  var off = vec4<u32>((n * params.channels.x + g * cg) * in_plane + (row % rows_per_image) *
    in_size.z) + min(iw, vec4<u32>(in_size.z - 1u));
  var wi = g * cg * mb + channel_tile * TM4;

  var acc0: Block;
  var acc1: Block;
  var acc2: Block;
  var acc3: Block;
  for (var c = 0u; c < cg; c++) {
    let xv = vec4<f32>(x[off.x], x[off.y], x[off.z], x[off.w]);
    fma_block(&acc0, xv, weights[wi]);
    if (TM4 > 1u) {
      fma_block(&acc1, xv, weights[wi + 1u]);
    }
    if (TM4 > 2u) {
      fma_block(&acc2, xv, weights[wi + 2u]);
    }
    if (TM4 > 3u) {
      fma_block(&acc3, xv, weights[wi + 3u]);
    }
    off += vec4<u32>(in_plane);
    wi += mb;
  }

  let out_size = params.out_size;
  let stride = params.stride.xyz;
  // y offsets of the lanes' tap-0 outputs (position i * stride per axis) in image n's first
  // channel.
  let out_row = vec4<u32>(n * params.channels.y * out_size.w +
    (id * stride.x * out_size.y + ih * stride.y) * out_size.z) + iw * stride.z;
  let j0 = channel_tile * TM4 * 4u; // the tile's first column within the group
  store_folded_block(acc0, out_row, g, j0, valid);
  if (TM4 > 1u) {
    store_folded_block(acc1, out_row, g, j0 + 4u, valid);
  }
  if (TM4 > 2u) {
    store_folded_block(acc2, out_row, g, j0 + 8u, valid);
  }
  if (TM4 > 3u) {
    store_folded_block(acc3, out_row, g, j0 + 12u, valid);
  }
}
