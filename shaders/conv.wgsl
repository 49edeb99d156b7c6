// Direct convolution, 1-D/2-D/3-D (run as 3-D with unit leading axes), with groups (depthwise
// included), strides, begin pads, dilations, a bias and an optional fused ReLU.
//
// It is an implicit GEMM per group: Y[m, p] = sum_k W[m, k] * X_col[k, p], where p runs over the
// N * OD*OH*OW output pixels and k = tap * Cg + c over (kernel tap, input channel of the group).
// Nothing is materialised: each invocation owns a register tile of 4 consecutive output pixels
// (the lanes of a vec4; on the ROW path, of one output row) x 4 * TM4 output channels, and walks
// k loading 4 input values and TM4 weight texels (vec4 = 4 output channels) per step, for
// 16 * TM4 FMAs.
//
// Why this shape (measured on llvmpipe, where every per-invocation load is a per-lane gather):
// a storage-buffer load is by far the dearest (a loop with branches per lane), a texel fetch is
// a branch-free gather and cheaper, and a private array indexed by anything but constants
// lives in memory (a single dynamic index into the accumulators made 16- and 32-channel tiles
// 2-4x slower; the epilogue therefore stores channel by channel with constant indices). So the
// weights come from an rgba32float texture, the 4 pixels live in vec4 lanes, and the tile is
// 4 pixels x 4 * TM4 channels (default 16: 1.2-1.4x the 8-channel tile on ResNet-50's stem and
// strided 3x3 convolutions, where 32 channels are faster still and chosen when measured).
// Nothing in it is bad for GPUs either.
//
// The reduction runs tap-major: for each kernel tap the pixels' input offsets and their
// inside-the-image tests are computed once, then the loop over the group's input channels only
// adds a channel stride. Padding reads a valid address and is replaced by 0 with `select`.
//
// Weight texture (written once by the host when W is constant, else by `pack_weights`): texel
// (k % width, block * rows + k / width) holds W[g*Mg + 4*mb + (0..3), c, tap] for
// block = g * MB + mb, zero past Mg. MB, the channel blocks per group, is a multiple of TM4, so
// an invocation's TM4 blocks never leave its group. `rows` > 1 only when K exceeds the
// adapter's texture width. TM4 sizes a private array, so it is a placeholder.

struct Params {
  in_size: vec4<u32>, // D, H, W, D*H*W of one input channel
  out_size: vec4<u32>, // OD, OH, OW, OD*OH*OW
  kernel: vec4<u32>, // KD, KH, KW, KD*KH*KW (taps)
  stride: vec4<u32>, // D, H, W
  dilation: vec4<u32>, // D, H, W
  pad: vec4<u32>, // leading pads D, H, W
  channels: vec4<u32>, // C, M, Cg (= C / groups), Mg (= M / groups)
  tiles: vec4<u32>, // N * OD*OH*OW pixels, channel tiles per group, groups, tiles per chunk
  // width, rows per channel block, quads per output row (ROW; 0: quads of consecutive pixels),
  // unused
  texture: vec4<u32>,
}

const TM4: u32 = {{TM4}}u; // output channel blocks (of 4) per invocation

override WG: u32 = 64u;
override RELU: bool = false;

//#include "lib/f16.wgsl"

// Relu that keeps NaN (WGSL's max may return the other operand; ONNX and PyTorch give NaN),
// tested on the bits so that a compiler's finite-math assumption cannot fold it away.
fn relu4(v: vec4<f32>) -> vec4<f32> {
  let nan = (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
  return select(max(v, vec4<f32>(0.0)), v, nan);
}

override ROUND_F16: bool = false; // float16 output: round to half precision (stored as f32)
// Input paths the host picks from the geometry (both only cut storage-buffer loads, which
// dominate on llvmpipe; results match the generic path to rounding):
// VEC4_INPUT: each quad's 4 inputs per tap and channel are 4 consecutive, 4-aligned values, all
// inside or all padding (1x1 stride-1 unpadded convs with OD*OH*OW % 4 == 0; stride 1 along W
// with OW, W and the W pad multiples of 4 and KW == 1): one vec4 load instead of 4 scalar ones
// (measured ~1.1x on llvmpipe, whose vec4 storage loads still loop per component).
// ROW: the weights fit one texture row per channel block, and no quad crosses an output row:
// OW % 4 == 0, or quads laid out per output row (params.texture.z), the last one partial, which
// the host allows while at most 1 lane in 8 idles (OW 7, 11, 14...). The KW taps of a kernel
// row then read the quad's inputs at columns w0 + j * SW + t * DW (lane j, tap t), which span
// ROW_SPAN = 3 * SW + (KW - 1) * DW + 1 consecutive values per channel: they are loaded once
// and shared by the taps, ROW_SPAN loads instead of 4 * KW. The host takes it only where
// ROW_SPAN < 4 * KW, ROW_SPAN <= 16 (the registers of v) and KW <= 7 (the taps written out).
// Measured on llvmpipe: 3x3/1 ~1.3x (6 loads instead of 12; ~1.4x at OW 14 and 7 despite the
// idle lanes), the 7x7/2 ResNet stem ~1.45x (13 instead of 28). The taps of a row are summed
// channel by channel, a different order from the generic path.
override VEC4_INPUT: bool = false;
override ROW: bool = false;
override ROW_KW: u32 = 3u; // KW
override ROW_SW: u32 = 1u; // stride along W
override ROW_DW: u32 = 1u; // dilation along W
override ROW_SPAN: u32 = 6u; // 3 * ROW_SW + (ROW_KW - 1) * ROW_DW + 1

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var weights: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>; // the same buffer as x (VEC4_INPUT)

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  let pixels = params.tiles.x;
  // Quads of 4 consecutive pixels, or (row_quads > 0) ceil(OW / 4) quads per output row, the
  // last one partial, so that no quad crosses a row end (the row path needs that).
  let row_quads = params.texture.z;
  let ow = params.out_size.z;
  let quads = select((pixels + 3u) / 4u, (pixels / ow) * row_quads, row_quads > 0u);
  let channel_tiles = params.tiles.y;
  if (t >= quads * channel_tiles * params.tiles.z) {
    return;
  }
  let tile = tile_of(t, quads);
  let quad = tile.x;
  let channel_tile = tile.y;
  let g = tile.z;

  // Four consecutive output pixels, one per vec4 lane (clamped: the tail repeats the last one,
  // and only `valid` lanes are written).
  var p = min(vec4<u32>(quad * 4u) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(pixels - 1u));
  var valid = vec4<u32>(quad * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(pixels);
  if (row_quads > 0u) {
    let col = vec4<u32>((quad % row_quads) * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    p = vec4<u32>((quad / row_quads) * ow) + min(col, vec4<u32>(ow - 1u));
    valid = col < vec4<u32>(ow);
  }
  let out_plane = params.out_size.w;
  let n = p / out_plane;
  let s = p % out_plane;
  let ohw = params.out_size.y * params.out_size.z;
  let origin_d = vec4<i32>((s / ohw) * params.stride.x) - i32(params.pad.x);
  let origin_h = vec4<i32>(((s / params.out_size.z) % params.out_size.y) * params.stride.y) -
    i32(params.pad.y);
  let origin_w = vec4<i32>((s % params.out_size.z) * params.stride.z) - i32(params.pad.z);
  let in_plane = params.in_size.w;
  let cg = params.channels.z;
  let base = (n * params.channels.x + g * cg) * in_plane; // x offsets of (n, first channel of g)
  let in_d = i32(params.in_size.x);
  let in_h = i32(params.in_size.y);
  let in_w = i32(params.in_size.z);
  let dilation = vec3<i32>(params.dilation.xyz);

  let width = params.texture.x;
  let rows = params.texture.y;
  let first_row = (g * channel_tiles + channel_tile) * TM4 * rows;
  var kx = 0u; // texel column of k
  var ky = 0u; // texel row offset of k within a channel block

  // acc[m] holds output channel m of the tile for the four pixels.
  var acc: array<vec4<f32>, 4u * TM4>; // zero-initialised
  let kh_kw = params.kernel.y * params.kernel.z;
  if (ROW && ROW_KW == 3u && ROW_SW == 1u && ROW_DW == 1u) {
    // 3x3/1 has its own code: the general row code below is 1.2x slower on it (measured).
    // Kernel rows (kd, kh) one at a time: wa, wb are the 6 input columns the quad's 3 taps read.
    let w0 = origin_w.x;
    let wa = vec4<i32>(w0) + vec4<i32>(0, 1, 2, 3);
    let wb = vec2<i32>(w0 + 4, w0 + 5);
    let row_taps = params.kernel.w / 3u;
    for (var tr = 0u; tr < row_taps; tr++) {
      let tap0 = tr * 3u;
      let qd = origin_d.x + i32(tap0 / kh_kw) * dilation.x;
      let qh = origin_h.x + i32((tap0 / params.kernel.z) % params.kernel.y) * dilation.y;
      let row_in = qd >= 0 && qd < in_d && qh >= 0 && qh < in_h;
      let in_a = vec4<bool>(row_in) & (wa >= vec4<i32>(0)) & (wa < vec4<i32>(in_w));
      let in_b = vec2<bool>(row_in) & (wb >= vec2<i32>(0)) & (wb < vec2<i32>(in_w));
      let row_off = i32(base.x) + (qd * in_h + qh) * in_w;
      var off_a = select(vec4<u32>(base.x), vec4<u32>(vec4<i32>(row_off) + wa), in_a);
      var off_b = select(vec2<u32>(base.x), vec2<u32>(vec2<i32>(row_off) + wb), in_b);
      var k = tap0 * cg; // texel column of (tap0, c); taps tap0 + 1, tap0 + 2 follow at +cg
      for (var c = 0u; c < cg; c++) {
        let va = select(
          vec4<f32>(0.0),
          vec4<f32>(x[off_a.x], x[off_a.y], x[off_a.z], x[off_a.w]),
          in_a,
        );
        let vb = select(vec2<f32>(0.0), vec2<f32>(x[off_b.x], x[off_b.y]), in_b);
        let x1 = vec4<f32>(va.yzw, vb.x); // the quad's inputs for tap0 + 1, then tap0 + 2
        let x2 = vec4<f32>(va.zw, vb);
        for (var b = 0u; b < TM4; b++) {
          let row = first_row + b;
          let w0v = textureLoad(weights, vec2<u32>(k, row), 0);
          let w1v = textureLoad(weights, vec2<u32>(k + cg, row), 0);
          let w2v = textureLoad(weights, vec2<u32>(k + 2u * cg, row), 0);
          acc[4u * b] = fma(va, vec4<f32>(w0v.x), acc[4u * b]);
          acc[4u * b + 1u] = fma(va, vec4<f32>(w0v.y), acc[4u * b + 1u]);
          acc[4u * b + 2u] = fma(va, vec4<f32>(w0v.z), acc[4u * b + 2u]);
          acc[4u * b + 3u] = fma(va, vec4<f32>(w0v.w), acc[4u * b + 3u]);
          acc[4u * b] = fma(x1, vec4<f32>(w1v.x), acc[4u * b]);
          acc[4u * b + 1u] = fma(x1, vec4<f32>(w1v.y), acc[4u * b + 1u]);
          acc[4u * b + 2u] = fma(x1, vec4<f32>(w1v.z), acc[4u * b + 2u]);
          acc[4u * b + 3u] = fma(x1, vec4<f32>(w1v.w), acc[4u * b + 3u]);
          acc[4u * b] = fma(x2, vec4<f32>(w2v.x), acc[4u * b]);
          acc[4u * b + 1u] = fma(x2, vec4<f32>(w2v.y), acc[4u * b + 1u]);
          acc[4u * b + 2u] = fma(x2, vec4<f32>(w2v.z), acc[4u * b + 2u]);
          acc[4u * b + 3u] = fma(x2, vec4<f32>(w2v.w), acc[4u * b + 3u]);
        }
        off_a += vec4<u32>(in_plane);
        off_b += vec2<u32>(in_plane);
        k += 1u;
      }
    }
  } else if (ROW) {
    // Any other row geometry: kernel rows (kd, kh) one at a time, the ROW_SPAN input columns
    // from w0 loaded once per channel into v.
    let w0 = origin_w.x;
    let row_taps = params.kernel.w / ROW_KW;
    for (var tr = 0u; tr < row_taps; tr++) {
      let tap0 = tr * ROW_KW;
      let qd = origin_d.x + i32(tap0 / kh_kw) * dilation.x;
      let qh = origin_h.x + i32((tap0 / params.kernel.z) % params.kernel.y) * dilation.y;
      let row_in = qd >= 0 && qd < in_d && qh >= 0 && qh < in_h;
      var inside_mask = 0u; // bit i: column w0 + i is inside the image
      for (var i = 0u; i < ROW_SPAN; i++) {
        let col = w0 + i32(i);
        if (row_in && col >= 0 && col < in_w) {
          inside_mask |= 1u << i;
        }
      }
      // x offset of column w0 of this row (wraps when w0 < 0; only inside columns are read).
      var off = base.x + bitcast<u32>((qd * in_h + qh) * in_w + w0);
      var k = tap0 * cg; // texel column of (tap0, c); tap tap0 + t follows at + t * cg
      for (var c = 0u; c < cg; c++) {
        // Written out, not loops over v, so that v is indexed by constants and stays in registers
        // (measured on the 7x7/2 stem: 27 ms with loops, 22.5 ms written out). Code past ROW_SPAN
        // and ROW_KW folds away; its indices are clamped so that it still compiles.
        var v: array<f32, 16>;
        v[0] = row_value(off, 0u, inside_mask, base.x);
        v[1] = row_value(off, 1u, inside_mask, base.x);
        v[2] = row_value(off, 2u, inside_mask, base.x);
        v[3] = row_value(off, 3u, inside_mask, base.x);
        if (ROW_SPAN > 4u) {
          v[4] = row_value(off, 4u, inside_mask, base.x);
        }
        if (ROW_SPAN > 5u) {
          v[5] = row_value(off, 5u, inside_mask, base.x);
        }
        if (ROW_SPAN > 6u) {
          v[6] = row_value(off, 6u, inside_mask, base.x);
        }
        if (ROW_SPAN > 7u) {
          v[7] = row_value(off, 7u, inside_mask, base.x);
        }
        if (ROW_SPAN > 8u) {
          v[8] = row_value(off, 8u, inside_mask, base.x);
        }
        if (ROW_SPAN > 9u) {
          v[9] = row_value(off, 9u, inside_mask, base.x);
        }
        if (ROW_SPAN > 10u) {
          v[10] = row_value(off, 10u, inside_mask, base.x);
        }
        if (ROW_SPAN > 11u) {
          v[11] = row_value(off, 11u, inside_mask, base.x);
        }
        if (ROW_SPAN > 12u) {
          v[12] = row_value(off, 12u, inside_mask, base.x);
        }
        if (ROW_SPAN > 13u) {
          v[13] = row_value(off, 13u, inside_mask, base.x);
        }
        if (ROW_SPAN > 14u) {
          v[14] = row_value(off, 14u, inside_mask, base.x);
        }
        if (ROW_SPAN > 15u) {
          v[15] = row_value(off, 15u, inside_mask, base.x);
        }
        if (ROW_KW > 0u) {
          let i0 = 0u * ROW_DW;
          let x0 = vec4<f32>(
            v[min(i0, 15u)],
            v[min(i0 + ROW_SW, 15u)],
            v[min(i0 + 2u * ROW_SW, 15u)],
            v[min(i0 + 3u * ROW_SW, 15u)],
          );
          row_tap(&acc, x0, k + 0u * cg, first_row);
        }
        if (ROW_KW > 1u) {
          let i1 = 1u * ROW_DW;
          let x1 = vec4<f32>(
            v[min(i1, 15u)],
            v[min(i1 + ROW_SW, 15u)],
            v[min(i1 + 2u * ROW_SW, 15u)],
            v[min(i1 + 3u * ROW_SW, 15u)],
          );
          row_tap(&acc, x1, k + 1u * cg, first_row);
        }
        if (ROW_KW > 2u) {
          let i2 = 2u * ROW_DW;
          let x2 = vec4<f32>(
            v[min(i2, 15u)],
            v[min(i2 + ROW_SW, 15u)],
            v[min(i2 + 2u * ROW_SW, 15u)],
            v[min(i2 + 3u * ROW_SW, 15u)],
          );
          row_tap(&acc, x2, k + 2u * cg, first_row);
        }
        if (ROW_KW > 3u) {
          let i3 = 3u * ROW_DW;
          let x3 = vec4<f32>(
            v[min(i3, 15u)],
            v[min(i3 + ROW_SW, 15u)],
            v[min(i3 + 2u * ROW_SW, 15u)],
            v[min(i3 + 3u * ROW_SW, 15u)],
          );
          row_tap(&acc, x3, k + 3u * cg, first_row);
        }
        if (ROW_KW > 4u) {
          let i4 = 4u * ROW_DW;
          let x4 = vec4<f32>(
            v[min(i4, 15u)],
            v[min(i4 + ROW_SW, 15u)],
            v[min(i4 + 2u * ROW_SW, 15u)],
            v[min(i4 + 3u * ROW_SW, 15u)],
          );
          row_tap(&acc, x4, k + 4u * cg, first_row);
        }
        if (ROW_KW > 5u) {
          let i5 = 5u * ROW_DW;
          let x5 = vec4<f32>(
            v[min(i5, 15u)],
            v[min(i5 + ROW_SW, 15u)],
            v[min(i5 + 2u * ROW_SW, 15u)],
            v[min(i5 + 3u * ROW_SW, 15u)],
          );
          row_tap(&acc, x5, k + 5u * cg, first_row);
        }
        if (ROW_KW > 6u) {
          let i6 = 6u * ROW_DW;
          let x6 = vec4<f32>(
            v[min(i6, 15u)],
            v[min(i6 + ROW_SW, 15u)],
            v[min(i6 + 2u * ROW_SW, 15u)],
            v[min(i6 + 3u * ROW_SW, 15u)],
          );
          row_tap(&acc, x6, k + 6u * cg, first_row);
        }
        off += in_plane;
        k += 1u;
      }
    }
  }
  let taps = select(params.kernel.w, 0u, ROW); // the generic path: one tap at a time
  for (var tap = 0u; tap < taps; tap++) {
    let k = vec3<i32>(
      i32(tap / kh_kw),
      i32((tap / params.kernel.z) % params.kernel.y),
      i32(tap % params.kernel.z),
    ) * dilation;
    let qd = origin_d + k.x;
    let qh = origin_h + k.y;
    let qw = origin_w + k.z;
    let inside = (qd >= vec4<i32>(0)) & (qd < vec4<i32>(in_d)) & (qh >= vec4<i32>(0)) &
      (qh < vec4<i32>(in_h)) & (qw >= vec4<i32>(0)) & (qw < vec4<i32>(in_w));
    var offset = base + select(vec4<u32>(0u), vec4<u32>((qd * in_h + qh) * in_w + qw), inside);
    var o = u32((qd.x * in_h + qh.x) * in_w + qw.x) + base.x; // VEC4_INPUT: lane j reads o + j
    for (var c = 0u; c < cg; c++) {
      var xv: vec4<f32>;
      if (VEC4_INPUT) {
        xv = select(vec4<f32>(0.0), x4[select(0u, o / 4u, inside.x)], inside);
        o += in_plane;
      } else {
        xv = select(
          vec4<f32>(0.0),
          vec4<f32>(x[offset.x], x[offset.y], x[offset.z], x[offset.w]),
          inside,
        );
      }
      for (var b = 0u; b < TM4; b++) {
        let wv = textureLoad(weights, vec2<u32>(kx, first_row + b * rows + ky), 0);
        acc[4u * b] = fma(xv, vec4<f32>(wv.x), acc[4u * b]);
        acc[4u * b + 1u] = fma(xv, vec4<f32>(wv.y), acc[4u * b + 1u]);
        acc[4u * b + 2u] = fma(xv, vec4<f32>(wv.z), acc[4u * b + 2u]);
        acc[4u * b + 3u] = fma(xv, vec4<f32>(wv.w), acc[4u * b + 3u]);
      }
      offset += vec4<u32>(in_plane);
      kx += 1u;
      if (kx == width) {
        kx = 0u;
        ky += 1u;
      }
    }
  }

  let out_base = n * params.channels.y * out_plane + s;
  // Constant indices only: one dynamic index into acc would keep the whole array in memory
  // (see store_wide). Stores past the tile's 4 * TM4 channels fold away.
  let mc0 = channel_tile * TM4 * 4u; // the tile's first channel within the group
  if (4u * TM4 > 0u) {
    store_channel(acc[min(0u, 4u * TM4 - 1u)], out_base, g, mc0 + 0u, valid);
  }
  if (4u * TM4 > 1u) {
    store_channel(acc[min(1u, 4u * TM4 - 1u)], out_base, g, mc0 + 1u, valid);
  }
  if (4u * TM4 > 2u) {
    store_channel(acc[min(2u, 4u * TM4 - 1u)], out_base, g, mc0 + 2u, valid);
  }
  if (4u * TM4 > 3u) {
    store_channel(acc[min(3u, 4u * TM4 - 1u)], out_base, g, mc0 + 3u, valid);
  }
  if (4u * TM4 > 4u) {
    store_channel(acc[min(4u, 4u * TM4 - 1u)], out_base, g, mc0 + 4u, valid);
  }
  if (4u * TM4 > 5u) {
    store_channel(acc[min(5u, 4u * TM4 - 1u)], out_base, g, mc0 + 5u, valid);
  }
  if (4u * TM4 > 6u) {
    store_channel(acc[min(6u, 4u * TM4 - 1u)], out_base, g, mc0 + 6u, valid);
  }
  if (4u * TM4 > 7u) {
    store_channel(acc[min(7u, 4u * TM4 - 1u)], out_base, g, mc0 + 7u, valid);
  }
  if (4u * TM4 > 8u) {
    store_channel(acc[min(8u, 4u * TM4 - 1u)], out_base, g, mc0 + 8u, valid);
  }
  if (4u * TM4 > 9u) {
    store_channel(acc[min(9u, 4u * TM4 - 1u)], out_base, g, mc0 + 9u, valid);
  }
  if (4u * TM4 > 10u) {
    store_channel(acc[min(10u, 4u * TM4 - 1u)], out_base, g, mc0 + 10u, valid);
  }
  if (4u * TM4 > 11u) {
    store_channel(acc[min(11u, 4u * TM4 - 1u)], out_base, g, mc0 + 11u, valid);
  }
  if (4u * TM4 > 12u) {
    store_channel(acc[min(12u, 4u * TM4 - 1u)], out_base, g, mc0 + 12u, valid);
  }
  if (4u * TM4 > 13u) {
    store_channel(acc[min(13u, 4u * TM4 - 1u)], out_base, g, mc0 + 13u, valid);
  }
  if (4u * TM4 > 14u) {
    store_channel(acc[min(14u, 4u * TM4 - 1u)], out_base, g, mc0 + 14u, valid);
  }
  if (4u * TM4 > 15u) {
    store_channel(acc[min(15u, 4u * TM4 - 1u)], out_base, g, mc0 + 15u, valid);
  }
  if (4u * TM4 > 16u) {
    store_channel(acc[min(16u, 4u * TM4 - 1u)], out_base, g, mc0 + 16u, valid);
  }
  if (4u * TM4 > 17u) {
    store_channel(acc[min(17u, 4u * TM4 - 1u)], out_base, g, mc0 + 17u, valid);
  }
  if (4u * TM4 > 18u) {
    store_channel(acc[min(18u, 4u * TM4 - 1u)], out_base, g, mc0 + 18u, valid);
  }
  if (4u * TM4 > 19u) {
    store_channel(acc[min(19u, 4u * TM4 - 1u)], out_base, g, mc0 + 19u, valid);
  }
  if (4u * TM4 > 20u) {
    store_channel(acc[min(20u, 4u * TM4 - 1u)], out_base, g, mc0 + 20u, valid);
  }
  if (4u * TM4 > 21u) {
    store_channel(acc[min(21u, 4u * TM4 - 1u)], out_base, g, mc0 + 21u, valid);
  }
  if (4u * TM4 > 22u) {
    store_channel(acc[min(22u, 4u * TM4 - 1u)], out_base, g, mc0 + 22u, valid);
  }
  if (4u * TM4 > 23u) {
    store_channel(acc[min(23u, 4u * TM4 - 1u)], out_base, g, mc0 + 23u, valid);
  }
  if (4u * TM4 > 24u) {
    store_channel(acc[min(24u, 4u * TM4 - 1u)], out_base, g, mc0 + 24u, valid);
  }
  if (4u * TM4 > 25u) {
    store_channel(acc[min(25u, 4u * TM4 - 1u)], out_base, g, mc0 + 25u, valid);
  }
  if (4u * TM4 > 26u) {
    store_channel(acc[min(26u, 4u * TM4 - 1u)], out_base, g, mc0 + 26u, valid);
  }
  if (4u * TM4 > 27u) {
    store_channel(acc[min(27u, 4u * TM4 - 1u)], out_base, g, mc0 + 27u, valid);
  }
  if (4u * TM4 > 28u) {
    store_channel(acc[min(28u, 4u * TM4 - 1u)], out_base, g, mc0 + 28u, valid);
  }
  if (4u * TM4 > 29u) {
    store_channel(acc[min(29u, 4u * TM4 - 1u)], out_base, g, mc0 + 29u, valid);
  }
  if (4u * TM4 > 30u) {
    store_channel(acc[min(30u, 4u * TM4 - 1u)], out_base, g, mc0 + 30u, valid);
  }
  if (4u * TM4 > 31u) {
    store_channel(acc[min(31u, 4u * TM4 - 1u)], out_base, g, mc0 + 31u, valid);
  }
}

// Writes output channel mc (within group g) of `main`'s quad: bias, ReLU, rounding; lanes
// that are not `valid` and channels past the group's Mg (padding) are skipped.
fn store_channel(v_in: vec4<f32>, out_base: vec4<u32>, g: u32, mc: u32, valid: vec4<bool>) {
  let mg = params.channels.w;
  if (mc >= mg) {
    return;
  }
  let oc = g * mg + mc;
  var v = v_in + bias[oc];
  if (RELU) {
    v = relu4(v);
  }
  if (ROUND_F16) {
    v = round_f16_4(v);
  }
  let dst = out_base + oc * params.out_size.w;
  for (var j = 0u; j < 4u; j++) {
    if (valid[j]) {
      y[dst[j]] = v[j];
    }
  }
}

// (pixel unit, channel tile, group) of invocation t, with `units` pixel units (quads, segments)
// per group. Cache blocking: channel tiles come in chunks whose weights fit in a CPU's L2 cache.
// Within a chunk the tile varies fastest, so the invocations computing one pixel unit run
// together and share its input values; the chunk's weights stay cached while the units go by.
fn tile_of(t: u32, units: u32) -> vec3<u32> {
  let chunk = params.tiles.w;
  let chunks = params.tiles.y / chunk;
  let rest = t / chunk;
  return vec3<u32>(
    rest % units,
    ((rest / units) % chunks) * chunk + t % chunk,
    rest / (units * chunks),
  );
}

// Input value `i` of the row path's span (0 outside the image: `inside_mask` bit i clear).
fn row_value(off: u32, i: u32, inside_mask: u32, fallback: u32) -> f32 {
  let inside = ((inside_mask >> i) & 1u) != 0u;
  return select(0.0, x[select(fallback, off + i, inside)], inside);
}

// One tap of the row path: the quad's inputs `xv` times the tap's weight texels (column `col`).
fn row_tap(
  acc: ptr<function, array<vec4<f32>, 4u * TM4>>,
  xv: vec4<f32>,
  col: u32,
  first_row: u32,
) {
  for (var b = 0u; b < TM4; b++) {
    let wv = textureLoad(weights, vec2<u32>(col, first_row + b), 0);
    (*acc)[4u * b] = fma(xv, vec4<f32>(wv.x), (*acc)[4u * b]);
    (*acc)[4u * b + 1u] = fma(xv, vec4<f32>(wv.y), (*acc)[4u * b + 1u]);
    (*acc)[4u * b + 2u] = fma(xv, vec4<f32>(wv.z), (*acc)[4u * b + 2u]);
    (*acc)[4u * b + 3u] = fma(xv, vec4<f32>(wv.w), (*acc)[4u * b + 3u]);
  }
}

// ---- wide tiles for 3-wide and 1-wide kernel rows at stride 1 or 2 (the bulk of a ResNet) ----
//
// `main_wide3`: an invocation computes 8 consecutive output pixels of one output row (two quads,
// the lanes of two vec4) x 16 output channels (4 weight blocks, TM4 = 4 in the texture layout).
// Per input channel and kernel row it loads the 10 input columns the 8 pixels' 3 taps read
// (once, shared by the taps) and 12 weight texels, for 96 vec4 multiply-adds: about twice the
// multiply-adds per load of `main`'s 4 pixels x 8 channels, which is what llvmpipe rewards
// (1.6-1.9x the 8-channel tile and 1.3-1.5x the 16-channel one on ResNet-50's 3x3/1 shapes).
// Its 32 vec4 accumulators are two arrays indexed by constants only (written out in `tap16`).
// Rows are cut into ceil(OW / 8) segments, the last one partial; params.texture.z holds that
// count. Sums run over kernel rows, then channels, then the 3 taps of a row, as on ROW. At
// stride 2 along W (`wide_strided`) the 8 pixels read 17 columns (15 for 1x1): 1.1-1.45x the
// best 4-pixel tile on ResNet-50's downsampling convolutions.

alias Acc16 = array<vec4<f32>, 16>; // acc[4 b + i]: output channel 4 b + i of the tile, 4 pixels

// Kernel row width: 3 (3x3 and the like), or 1 (1x1 kernels: 8 inputs and 4 texels per channel
// for 64 vec4 multiply-adds).
override WIDE_KW: u32 = 3u;
// Stride along W: 1, or 2 (the strided 3x3 and 1x1 convolutions of a ResNet's downsampling),
// whose 8 pixels read every other column of a span of 7 * 2 + KW (`wide_strided`).
override WIDE_SW: u32 = 1u;
// Input columns a segment's 8 pixels read per kernel row: 7 * WIDE_SW + WIDE_KW (at most 17).
override WIDE_SPAN: u32 = 10u;

// acc += x * w for one tap of one quad: x holds the quad's 4 inputs, w0..w3 the tap's weights
// for channel blocks 0..3 (lane i of block b: output channel 4 b + i).
fn tap16(
  acc: ptr<function, Acc16>,
  x: vec4<f32>,
  w0: vec4<f32>,
  w1: vec4<f32>,
  w2: vec4<f32>,
  w3: vec4<f32>,
) {
  (*acc)[0] = fma(x, vec4<f32>(w0.x), (*acc)[0]);
  (*acc)[1] = fma(x, vec4<f32>(w0.y), (*acc)[1]);
  (*acc)[2] = fma(x, vec4<f32>(w0.z), (*acc)[2]);
  (*acc)[3] = fma(x, vec4<f32>(w0.w), (*acc)[3]);
  (*acc)[4] = fma(x, vec4<f32>(w1.x), (*acc)[4]);
  (*acc)[5] = fma(x, vec4<f32>(w1.y), (*acc)[5]);
  (*acc)[6] = fma(x, vec4<f32>(w1.z), (*acc)[6]);
  (*acc)[7] = fma(x, vec4<f32>(w1.w), (*acc)[7]);
  (*acc)[8] = fma(x, vec4<f32>(w2.x), (*acc)[8]);
  (*acc)[9] = fma(x, vec4<f32>(w2.y), (*acc)[9]);
  (*acc)[10] = fma(x, vec4<f32>(w2.z), (*acc)[10]);
  (*acc)[11] = fma(x, vec4<f32>(w2.w), (*acc)[11]);
  (*acc)[12] = fma(x, vec4<f32>(w3.x), (*acc)[12]);
  (*acc)[13] = fma(x, vec4<f32>(w3.y), (*acc)[13]);
  (*acc)[14] = fma(x, vec4<f32>(w3.z), (*acc)[14]);
  (*acc)[15] = fma(x, vec4<f32>(w3.w), (*acc)[15]);
}

// One tap's weights for the 4 channel blocks of a tile (texture column `col`).
fn wide_weights(col: u32, first_row: u32) -> array<vec4<f32>, 4> {
  return array<vec4<f32>, 4>(
    textureLoad(weights, vec2<u32>(col, first_row), 0),
    textureLoad(weights, vec2<u32>(col, first_row + 1u), 0),
    textureLoad(weights, vec2<u32>(col, first_row + 2u), 0),
    textureLoad(weights, vec2<u32>(col, first_row + 3u), 0),
  );
}

// Writes one output channel of a quad (pixel j at out_base + j, while j < lanes), through the
// epilogue of `main` (bias, ReLU, rounding); channels past the group's Mg (padding) are skipped.
fn store_wide_channel(v_in: vec4<f32>, out_base: u32, oc: u32, mc: u32, lanes: u32) {
  if (mc >= params.channels.w) {
    return;
  }
  var v = v_in + bias[oc];
  if (RELU) {
    v = relu4(v);
  }
  if (ROUND_F16) {
    v = round_f16_4(v);
  }
  let dst = out_base + oc * params.out_size.w;
  for (var j = 0u; j < 4u; j++) {
    if (j < lanes) {
      y[dst + j] = v[j];
    }
  }
}

// Writes the 16 channels of a tile for one quad; oc0 is the tile's first output channel, mc0
// its index within the group. Indexed by constants only: one dynamic index into the array
// would put all of it in memory for the whole kernel (measured: 3x slower).
fn store_wide(acc: ptr<function, Acc16>, out_base: u32, oc0: u32, mc0: u32, lanes: u32) {
  store_wide_channel((*acc)[0], out_base, oc0, mc0, lanes);
  store_wide_channel((*acc)[1], out_base, oc0 + 1u, mc0 + 1u, lanes);
  store_wide_channel((*acc)[2], out_base, oc0 + 2u, mc0 + 2u, lanes);
  store_wide_channel((*acc)[3], out_base, oc0 + 3u, mc0 + 3u, lanes);
  store_wide_channel((*acc)[4], out_base, oc0 + 4u, mc0 + 4u, lanes);
  store_wide_channel((*acc)[5], out_base, oc0 + 5u, mc0 + 5u, lanes);
  store_wide_channel((*acc)[6], out_base, oc0 + 6u, mc0 + 6u, lanes);
  store_wide_channel((*acc)[7], out_base, oc0 + 7u, mc0 + 7u, lanes);
  store_wide_channel((*acc)[8], out_base, oc0 + 8u, mc0 + 8u, lanes);
  store_wide_channel((*acc)[9], out_base, oc0 + 9u, mc0 + 9u, lanes);
  store_wide_channel((*acc)[10], out_base, oc0 + 10u, mc0 + 10u, lanes);
  store_wide_channel((*acc)[11], out_base, oc0 + 11u, mc0 + 11u, lanes);
  store_wide_channel((*acc)[12], out_base, oc0 + 12u, mc0 + 12u, lanes);
  store_wide_channel((*acc)[13], out_base, oc0 + 13u, mc0 + 13u, lanes);
  store_wide_channel((*acc)[14], out_base, oc0 + 14u, mc0 + 14u, lanes);
  store_wide_channel((*acc)[15], out_base, oc0 + 15u, mc0 + 15u, lanes);
}

// One input channel of a kernel row at stride 2 along W: the span's WIDE_SPAN values are
// loaded once (written out with constant indices so that they stay in registers; code past
// the span folds away), then tap t of pixel j reads value 2 j + t.
fn wide_strided(
  acc_a: ptr<function, Acc16>,
  acc_b: ptr<function, Acc16>,
  off: u32,
  inside_mask: u32,
  base: u32,
  k: u32,
  cg: u32,
  first_row: u32,
) {
  var v: array<f32, 17>;
  v[0] = row_value(off, 0u, inside_mask, base);
  v[1] = row_value(off, 1u, inside_mask, base);
  v[2] = row_value(off, 2u, inside_mask, base);
  v[3] = row_value(off, 3u, inside_mask, base);
  v[4] = row_value(off, 4u, inside_mask, base);
  v[5] = row_value(off, 5u, inside_mask, base);
  v[6] = row_value(off, 6u, inside_mask, base);
  v[7] = row_value(off, 7u, inside_mask, base);
  v[8] = row_value(off, 8u, inside_mask, base);
  v[9] = row_value(off, 9u, inside_mask, base);
  v[10] = row_value(off, 10u, inside_mask, base);
  v[11] = row_value(off, 11u, inside_mask, base);
  v[12] = row_value(off, 12u, inside_mask, base);
  v[13] = row_value(off, 13u, inside_mask, base);
  v[14] = row_value(off, 14u, inside_mask, base);
  if (WIDE_SPAN > 15u) {
    v[15] = row_value(off, 15u, inside_mask, base);
    v[16] = row_value(off, 16u, inside_mask, base);
  }
  let w_0 = wide_weights(k, first_row);
  tap16(acc_a, vec4<f32>(v[0], v[2], v[4], v[6]), w_0[0], w_0[1], w_0[2], w_0[3]);
  tap16(acc_b, vec4<f32>(v[8], v[10], v[12], v[14]), w_0[0], w_0[1], w_0[2], w_0[3]);
  if (WIDE_KW == 3u) {
    let w_1 = wide_weights(k + cg, first_row);
    tap16(acc_a, vec4<f32>(v[1], v[3], v[5], v[7]), w_1[0], w_1[1], w_1[2], w_1[3]);
    tap16(acc_b, vec4<f32>(v[9], v[11], v[13], v[15]), w_1[0], w_1[1], w_1[2], w_1[3]);
    let w_2 = wide_weights(k + 2u * cg, first_row);
    tap16(acc_a, vec4<f32>(v[2], v[4], v[6], v[8]), w_2[0], w_2[1], w_2[2], w_2[3]);
    tap16(acc_b, vec4<f32>(v[10], v[12], v[14], v[16]), w_2[0], w_2[1], w_2[2], w_2[3]);
  }
}

@compute @workgroup_size(WG)
fn main_wide3(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let t = gid.x + gid.y * nwg.x * WG;
  let ow = params.out_size.z;
  let segments_per_row = params.texture.z;
  let segments = (params.tiles.x / ow) * segments_per_row; // N * OD * OH rows
  let channel_tiles = params.tiles.y;
  if (t >= segments * channel_tiles * params.tiles.z) {
    return;
  }
  let tile = tile_of(t, segments);
  let segment = tile.x;
  let channel_tile = tile.y;
  let g = tile.z;

  let col0 = (segment % segments_per_row) * 8u; // the segment's first output column
  let out_plane = params.out_size.w;
  let p0 = (segment / segments_per_row) * ow + col0; // its flat output pixel
  let n = p0 / out_plane;
  let s0 = p0 % out_plane;
  let ohw = params.out_size.y * ow;
  let origin_d = i32((s0 / ohw) * params.stride.x) - i32(params.pad.x);
  let origin_h = i32(((s0 / ow) % params.out_size.y) * params.stride.y) - i32(params.pad.y);
  let w0 = i32(col0 * WIDE_SW) - i32(params.pad.z); // input column of tap 0, pixel 0
  let in_plane = params.in_size.w;
  let cg = params.channels.z;
  let base = (n * params.channels.x + g * cg) * in_plane;
  let in_d = i32(params.in_size.x);
  let in_h = i32(params.in_size.y);
  let in_w = i32(params.in_size.z);
  let first_row = (g * channel_tiles + channel_tile) * 4u;
  let kh_kw = params.kernel.y * params.kernel.z;

  var acc_a: Acc16; // columns col0 .. col0 + 3
  var acc_b: Acc16; // columns col0 + 4 .. col0 + 7
  let row_taps = params.kernel.w / WIDE_KW;
  for (var tr = 0u; tr < row_taps; tr++) {
    let tap0 = tr * WIDE_KW;
    let qd = origin_d + i32(tap0 / kh_kw) * i32(params.dilation.x);
    let qh = origin_h + i32((tap0 / params.kernel.z) % params.kernel.y) * i32(params.dilation.y);
    let row_in = qd >= 0 && qd < in_d && qh >= 0 && qh < in_h;
    var inside_mask = 0u; // bit i: column w0 + i is inside the image
    for (var i = 0u; i < WIDE_SPAN; i++) {
      let col = w0 + i32(i);
      if (row_in && col >= 0 && col < in_w) {
        inside_mask |= 1u << i;
      }
    }
    // x offset of column w0 of this row (wraps when w0 < 0; only inside columns are read).
    var off = base + bitcast<u32>((qd * in_h + qh) * in_w + w0);
    var k = tap0 * cg; // texel column of (tap0, c); taps tap0 + 1, tap0 + 2 follow at +cg
    for (var c = 0u; c < cg; c++) {
      if (WIDE_SW == 1u) {
        let va = vec4<f32>(
          row_value(off, 0u, inside_mask, base),
          row_value(off, 1u, inside_mask, base),
          row_value(off, 2u, inside_mask, base),
          row_value(off, 3u, inside_mask, base),
        );
        let vb = vec4<f32>(
          row_value(off, 4u, inside_mask, base),
          row_value(off, 5u, inside_mask, base),
          row_value(off, 6u, inside_mask, base),
          row_value(off, 7u, inside_mask, base),
        );
        let w_0 = wide_weights(k, first_row);
        tap16(&acc_a, va, w_0[0], w_0[1], w_0[2], w_0[3]);
        tap16(&acc_b, vb, w_0[0], w_0[1], w_0[2], w_0[3]);
        if (WIDE_KW == 3u) {
          let vc = vec2<f32>(
            row_value(off, 8u, inside_mask, base),
            row_value(off, 9u, inside_mask, base),
          );
          let w_1 = wide_weights(k + cg, first_row);
          tap16(&acc_a, vec4<f32>(va.yzw, vb.x), w_1[0], w_1[1], w_1[2], w_1[3]);
          tap16(&acc_b, vec4<f32>(vb.yzw, vc.x), w_1[0], w_1[1], w_1[2], w_1[3]);
          let w_2 = wide_weights(k + 2u * cg, first_row);
          tap16(&acc_a, vec4<f32>(va.zw, vb.xy), w_2[0], w_2[1], w_2[2], w_2[3]);
          tap16(&acc_b, vec4<f32>(vb.zw, vc), w_2[0], w_2[1], w_2[2], w_2[3]);
        }
      } else {
        wide_strided(&acc_a, &acc_b, off, inside_mask, base, k, cg, first_row);
      }
      off += in_plane;
      k += 1u;
    }
  }

  let mg = params.channels.w;
  let mc0 = channel_tile * 16u;
  let oc0 = g * mg + mc0;
  let out_base = n * params.channels.y * out_plane + s0;
  store_wide(&acc_a, out_base, oc0, mc0, min(ow - col0, 4u));
  if (col0 + 4u < ow) {
    store_wide(&acc_b, out_base + 4u, oc0, mc0, min(ow - col0 - 4u, 4u));
  }
}

// ---- weight packing for weights that are not known at plan time ----
// `pack_weights` reads the convolution's own Params: K = taps * Cg (kernel.w * channels.z), the
// channel blocks per group MB = tiles.y * TM4 (channel tiles per group, TM4 blocks each), the
// groups (tiles.z), and the texture's width and rows per channel block (texture.x, texture.y).

@group(0) @binding(0) var<storage, read> w_src: array<f32>;
@group(0) @binding(1) var w_dst: texture_storage_2d<rgba32float, write>;
@group(0) @binding(2) var<uniform> pack_params: Params;

// One invocation per texel: W[M, Cg, taps] -> the texture layout above.
@compute @workgroup_size(WG)
fn pack_weights(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let cg = pack_params.channels.z;
  let mg = pack_params.channels.w;
  let taps = pack_params.kernel.w;
  let k_total = taps * cg;
  let blocks = pack_params.tiles.y * TM4;
  let width = pack_params.texture.x;
  let rows = pack_params.texture.y;
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= k_total * blocks * pack_params.tiles.z) {
    return;
  }
  let k = i % k_total;
  let block = i / k_total; // g * MB + mb
  let tap = k / cg;
  let c = k % cg;
  let g = block / blocks;
  let m0 = (block % blocks) * 4u;
  var v = vec4<f32>(0.0);
  for (var lane = 0u; lane < 4u; lane++) {
    let m = m0 + lane;
    if (m < mg) {
      v[lane] = w_src[((g * mg + m) * cg + c) * taps + tap];
    }
  }
  textureStore(w_dst, vec2<u32>(k % width, block * rows + k / width), v);
}
