// Matrix multiply reading its operands from textures, batched (one texture layer per output
// batch entry):
//   out[z, m, n] = act(alpha * sum_k A[z](m, k) * B[z](k, n) + beta * bias[z](m, n))
//
// Why: on llvmpipe a textureLoad is a branch-free gather, markedly cheaper per value than a
// storage-buffer load (a loop over the SIMD lanes), and loads are what a matmul costs there.
// The operands are packed into the textures by matmul_texture_pack.wgsl (or, for constant
// operands, once on the host by src/kernels/matmul_pack.ts). Entry points:
//  - `main_8x8` / `main_16x16` (f32 textures) and `main_f16_16x16` (half textures, f32
//    accumulation) give each invocation a block of outputs, kept as 4 x 4 matrices in
//    registers. A's texture holds A(m, k ..) at texel (k / 4 or k / 8, m), B's holds B(k, n ..)
//    at (n / 4 or n / 8, k), so a 4 x 4 block of either is four texel loads (two blocks for
//    halves: half the loads per multiply-add, which is why the f16 form is faster) and one
//    matrix product does 64 multiply-adds.
//  - each product's `_v4` twin (`main_16x16_v4`, ...) stores one vec4 per four outputs of a row
//    instead of one output at a time; the host picks it when N % 4 == 0.
// The blocks are written out with constant indices rather than looped over: loops over register
// arrays are not reliably unrolled, and an array that is not unrolled lives in memory.

struct Params {
  M: u32,
  N: u32,
  // Texels along k of A's texture (ceil(K / 4), or ceil(K / 8) for halves); zero past K.
  K_TEXELS: u32,
  batch_rank: u32,
  bias_row: u32,
  bias_col: u32,
  alpha: f32,
  beta: f32,
  batch_shape: array<vec4<u32>, 2>,
  bias_batch: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var tex_a: texture_2d_array<f32>;
@group(0) @binding(1) var tex_b: texture_2d_array<f32>;
@group(0) @binding(0) var tex_a_f16: texture_2d_array<u32>;
@group(0) @binding(1) var tex_b_f16: texture_2d_array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// The same output seen as vec4 rows, for the `_v4` entry points (N % 4 == 0): one store per four
// outputs. On llvmpipe every storage access is a loop over the SIMD lanes, so a short-K product
// (a 64-channel 1x1 convolution) spent much of its time in scalar stores.
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
// Epilogue: add beta * bias; activation (0 none, 1 relu, 2 gelu, 3 quick_gelu); round to half.
override HAS_BIAS: bool = false;
override ACT: u32 = 0u;
override ROUND_F16: bool = false;
// An operand broadcast over every batch entry (a weight) is packed into one layer, read by all.
override A_SHARED: bool = false;
override B_SHARED: bool = false;

// ---- loading 4 x 4 blocks ----
// An A block holds rows r .. r + 3 as matrix columns, each a vec4 along k; a B block holds rows
// k .. k + 3 as matrix columns, each a vec4 along n. Then (B block) * (A block) is the 4 x 4
// product block with output rows as columns.

fn load_a(z: u32, r: u32, k4: u32) -> mat4x4<f32> {
  return mat4x4<f32>(
    textureLoad(tex_a, vec2<u32>(k4, r), z, 0),
    textureLoad(tex_a, vec2<u32>(k4, r + 1u), z, 0),
    textureLoad(tex_a, vec2<u32>(k4, r + 2u), z, 0),
    textureLoad(tex_a, vec2<u32>(k4, r + 3u), z, 0),
  );
}

fn load_b(z: u32, c4: u32, k: u32) -> mat4x4<f32> {
  return mat4x4<f32>(
    textureLoad(tex_b, vec2<u32>(c4, k), z, 0),
    textureLoad(tex_b, vec2<u32>(c4, k + 1u), z, 0),
    textureLoad(tex_b, vec2<u32>(c4, k + 2u), z, 0),
    textureLoad(tex_b, vec2<u32>(c4, k + 3u), z, 0),
  );
}

// Eight halves (one rgba32uint texel) as two vec4.
fn unpack8(t: vec4<u32>) -> array<vec4<f32>, 2> {
  return array<vec4<f32>, 2>(
    vec4<f32>(unpack2x16float(t.x), unpack2x16float(t.y)),
    vec4<f32>(unpack2x16float(t.z), unpack2x16float(t.w)),
  );
}

// A rows r .. r + 3 at k = 8 * k8 .. + 7: element 0 holds k .. k + 3, element 1 k + 4 .. k + 7.
fn load_a_f16(z: u32, r: u32, k8: u32) -> array<mat4x4<f32>, 2> {
  let r0 = unpack8(textureLoad(tex_a_f16, vec2<u32>(k8, r), z, 0));
  let r1 = unpack8(textureLoad(tex_a_f16, vec2<u32>(k8, r + 1u), z, 0));
  let r2 = unpack8(textureLoad(tex_a_f16, vec2<u32>(k8, r + 2u), z, 0));
  let r3 = unpack8(textureLoad(tex_a_f16, vec2<u32>(k8, r + 3u), z, 0));
  return array<mat4x4<f32>, 2>(
    mat4x4<f32>(r0[0], r1[0], r2[0], r3[0]),
    mat4x4<f32>(r0[1], r1[1], r2[1], r3[1]),
  );
}

// B rows k .. k + 3 at columns 8 * c8 .. + 7: element 0 holds columns 8 c8 .. + 3, element 1
// the next four.
fn load_b_f16(z: u32, c8: u32, k: u32) -> array<mat4x4<f32>, 2> {
  let k0 = unpack8(textureLoad(tex_b_f16, vec2<u32>(c8, k), z, 0));
  let k1 = unpack8(textureLoad(tex_b_f16, vec2<u32>(c8, k + 1u), z, 0));
  let k2 = unpack8(textureLoad(tex_b_f16, vec2<u32>(c8, k + 2u), z, 0));
  let k3 = unpack8(textureLoad(tex_b_f16, vec2<u32>(c8, k + 3u), z, 0));
  return array<mat4x4<f32>, 2>(
    mat4x4<f32>(k0[0], k1[0], k2[0], k3[0]),
    mat4x4<f32>(k0[1], k1[1], k2[1], k3[1]),
  );
}

// ---- 16 x 16 register block: acc[4 i + j] holds rows 4i .. 4i + 3, columns 4j .. 4j + 3 ----

alias Acc16 = array<mat4x4<f32>, 16>;
alias Quad = array<mat4x4<f32>, 4>;

fn update_16x16(acc: ptr<function, Acc16>, a: Quad, b: Quad) {
  (*acc)[0] += b[0] * a[0];
  (*acc)[1] += b[1] * a[0];
  (*acc)[2] += b[2] * a[0];
  (*acc)[3] += b[3] * a[0];
  (*acc)[4] += b[0] * a[1];
  (*acc)[5] += b[1] * a[1];
  (*acc)[6] += b[2] * a[1];
  (*acc)[7] += b[3] * a[1];
  (*acc)[8] += b[0] * a[2];
  (*acc)[9] += b[1] * a[2];
  (*acc)[10] += b[2] * a[2];
  (*acc)[11] += b[3] * a[2];
  (*acc)[12] += b[0] * a[3];
  (*acc)[13] += b[1] * a[3];
  (*acc)[14] += b[2] * a[3];
  (*acc)[15] += b[3] * a[3];
}

// Two steps of k at once (a, b for k .. k + 3; a2, b2 for k + 4 .. k + 7): each accumulator is
// read and written once per eight multiply-adds. On llvmpipe the 256 accumulators do not fit in
// registers, so this halves the accumulator traffic of two update_16x16 calls (measured 1.07x
// for the f16 kernel, whose eight k arrive in one texel anyway).
fn update8_16x16(acc: ptr<function, Acc16>, a: Quad, b: Quad, a2: Quad, b2: Quad) {
  (*acc)[0] += b[0] * a[0] + b2[0] * a2[0];
  (*acc)[1] += b[1] * a[0] + b2[1] * a2[0];
  (*acc)[2] += b[2] * a[0] + b2[2] * a2[0];
  (*acc)[3] += b[3] * a[0] + b2[3] * a2[0];
  (*acc)[4] += b[0] * a[1] + b2[0] * a2[1];
  (*acc)[5] += b[1] * a[1] + b2[1] * a2[1];
  (*acc)[6] += b[2] * a[1] + b2[2] * a2[1];
  (*acc)[7] += b[3] * a[1] + b2[3] * a2[1];
  (*acc)[8] += b[0] * a[2] + b2[0] * a2[2];
  (*acc)[9] += b[1] * a[2] + b2[1] * a2[2];
  (*acc)[10] += b[2] * a[2] + b2[2] * a2[2];
  (*acc)[11] += b[3] * a[2] + b2[3] * a2[2];
  (*acc)[12] += b[0] * a[3] + b2[0] * a2[3];
  (*acc)[13] += b[1] * a[3] + b2[1] * a2[3];
  (*acc)[14] += b[2] * a[3] + b2[2] * a2[3];
  (*acc)[15] += b[3] * a[3] + b2[3] * a2[3];
}

fn store_16x16(z: u32, acc: ptr<function, Acc16>, m0: u32, n0: u32) {
  store_block(z, (*acc)[0], m0, n0);
  store_block(z, (*acc)[1], m0, n0 + 4u);
  store_block(z, (*acc)[2], m0, n0 + 8u);
  store_block(z, (*acc)[3], m0, n0 + 12u);
  store_block(z, (*acc)[4], m0 + 4u, n0);
  store_block(z, (*acc)[5], m0 + 4u, n0 + 4u);
  store_block(z, (*acc)[6], m0 + 4u, n0 + 8u);
  store_block(z, (*acc)[7], m0 + 4u, n0 + 12u);
  store_block(z, (*acc)[8], m0 + 8u, n0);
  store_block(z, (*acc)[9], m0 + 8u, n0 + 4u);
  store_block(z, (*acc)[10], m0 + 8u, n0 + 8u);
  store_block(z, (*acc)[11], m0 + 8u, n0 + 12u);
  store_block(z, (*acc)[12], m0 + 12u, n0);
  store_block(z, (*acc)[13], m0 + 12u, n0 + 4u);
  store_block(z, (*acc)[14], m0 + 12u, n0 + 8u);
  store_block(z, (*acc)[15], m0 + 12u, n0 + 12u);
}

fn store4_16x16(z: u32, acc: ptr<function, Acc16>, m0: u32, n0: u32) {
  store_block4(z, (*acc)[0], m0, n0);
  store_block4(z, (*acc)[1], m0, n0 + 4u);
  store_block4(z, (*acc)[2], m0, n0 + 8u);
  store_block4(z, (*acc)[3], m0, n0 + 12u);
  store_block4(z, (*acc)[4], m0 + 4u, n0);
  store_block4(z, (*acc)[5], m0 + 4u, n0 + 4u);
  store_block4(z, (*acc)[6], m0 + 4u, n0 + 8u);
  store_block4(z, (*acc)[7], m0 + 4u, n0 + 12u);
  store_block4(z, (*acc)[8], m0 + 8u, n0);
  store_block4(z, (*acc)[9], m0 + 8u, n0 + 4u);
  store_block4(z, (*acc)[10], m0 + 8u, n0 + 8u);
  store_block4(z, (*acc)[11], m0 + 8u, n0 + 12u);
  store_block4(z, (*acc)[12], m0 + 12u, n0);
  store_block4(z, (*acc)[13], m0 + 12u, n0 + 4u);
  store_block4(z, (*acc)[14], m0 + 12u, n0 + 8u);
  store_block4(z, (*acc)[15], m0 + 12u, n0 + 12u);
}

// ---- epilogue ----

//#include "lib/activation.wgsl"
//#include "lib/f16.wgsl"

fn epilogue(v: f32) -> f32 {
  var r = v;
  if (ACT == 1u) {
    r = relu(r);
  } else if (ACT == 2u) {
    r = 0.5 * r * (1.0 + erf_approx(r * 0.70710678118654752));
  } else if (ACT == 3u) {
    r = r / (1.0 + exp(-1.702 * r));
  }
  if (ROUND_F16) {
    r = round_f16(r);
  }
  return r;
}

fn bias_offset(z: u32) -> u32 {
  var base = 0u;
  var rest = z;
  for (var d = i32(p.batch_rank) - 1; d >= 0; d--) {
    let size = p.batch_shape[d / 4][d % 4];
    base += (rest % size) * p.bias_batch[d / 4][d % 4];
    rest = rest / size;
  }
  return base;
}

// The bias of a block's columns c .. c + 3: its offset for batch entry z, and the four values
// when the bias does not vary along rows (zero otherwise).
struct BlockBias {
  base: u32,
  cols: vec4<f32>,
}

// A bias that is constant along the rows (a Linear layer's, [N]) or along the columns (a
// convolution's, one per output channel) is read once per column or row of a block rather than
// once per output: with a short K (a 64-channel 1x1 convolution) those storage loads were a fifth
// of the kernel's time on llvmpipe.
fn block_bias(z: u32, c: u32) -> BlockBias {
  var bb = BlockBias(0u, vec4<f32>(0.0));
  if (HAS_BIAS) {
    bb.base = bias_offset(z);
    if (p.bias_row == 0u) {
      let last = bb.base + (p.N - 1u) * p.bias_col;
      bb.cols = p.beta * vec4<f32>(
        bias[min(bb.base + c * p.bias_col, last)],
        bias[min(bb.base + (c + 1u) * p.bias_col, last)],
        bias[min(bb.base + (c + 2u) * p.bias_col, last)],
        bias[min(bb.base + (c + 3u) * p.bias_col, last)],
      );
    }
  }
  return bb;
}

// Output row m, columns c .. c + 3, from its accumulators: alpha * acc + beta * bias, activated.
fn finish_row(bb: BlockBias, acc_row: vec4<f32>, m: u32, c: u32) -> vec4<f32> {
  var row = p.alpha * acc_row;
  if (HAS_BIAS) {
    if (p.bias_row == 0u) {
      row += bb.cols;
    } else if (p.bias_col == 0u) {
      row += vec4<f32>(p.beta * bias[bb.base + m * p.bias_row]);
    } else {
      for (var e = 0u; e < 4u; e++) {
        row[e] += p.beta * bias[bb.base + m * p.bias_row + min(c + e, p.N - 1u) * p.bias_col];
      }
    }
  }
  return vec4<f32>(epilogue(row.x), epilogue(row.y), epilogue(row.z), epilogue(row.w));
}

// Writes a 4 x 4 accumulator block (column q = output row r + q), one output at a time.
fn store_block(z: u32, acc: mat4x4<f32>, r: u32, c: u32) {
  let out_base = z * p.M * p.N;
  let bb = block_bias(z, c);
  for (var q = 0u; q < 4u; q++) {
    let m = r + q;
    if (m >= p.M) {
      return;
    }
    let row = finish_row(bb, acc[q], m, c);
    for (var e = 0u; e < 4u; e++) {
      if (c + e < p.N) {
        out[out_base + m * p.N + c + e] = row[e];
      }
    }
  }
}

// The same with one vec4 store per row (N % 4 == 0, so a block column inside N is whole).
fn store_block4(z: u32, acc: mat4x4<f32>, r: u32, c: u32) {
  if (c >= p.N) {
    return;
  }
  let row_texels = p.N / 4u;
  let out_base = z * p.M * row_texels + c / 4u;
  let bb = block_bias(z, c);
  for (var q = 0u; q < 4u; q++) {
    let m = r + q;
    if (m >= p.M) {
      return;
    }
    out4[out_base + m * row_texels] = finish_row(bb, acc[q], m, c);
  }
}

// ---- entry points ----
// Each product has two entry points: `main_*` stores one output at a time, `main_*_v4` one vec4
// per four outputs of a row (the host picks it when N % 4 == 0).

// Corner (m0, n0) of the block of `size` x `size` outputs of this invocation.
fn block_corner(wid: vec3<u32>, lid: vec3<u32>, size: u32) -> vec2<u32> {
  return vec2<u32>((wid.y * WG_Y + lid.y) * size, (wid.x * WG_X + lid.x) * size);
}

// Texture layers of A and B for output batch entry z.
fn layer_a(z: u32) -> u32 {
  return select(z, 0u, A_SHARED);
}

fn layer_b(z: u32) -> u32 {
  return select(z, 0u, B_SHARED);
}

// 8 x 8 block: four 4 x 4 accumulators, in order (rows, columns) 00, 01, 10, 11.
fn multiply_8x8(z: u32, m0: u32, n0: u32) -> array<mat4x4<f32>, 4> {
  let za = layer_a(z);
  let zb = layer_b(z);
  let c4 = n0 / 4u;
  var acc00: mat4x4<f32>;
  var acc01: mat4x4<f32>;
  var acc10: mat4x4<f32>;
  var acc11: mat4x4<f32>;
  for (var k4 = 0u; k4 < p.K_TEXELS; k4++) {
    let k = 4u * k4;
    let a0 = load_a(za, m0, k4);
    let a1 = load_a(za, m0 + 4u, k4);
    let b0 = load_b(zb, c4, k);
    let b1 = load_b(zb, c4 + 1u, k);
    acc00 += b0 * a0;
    acc01 += b1 * a0;
    acc10 += b0 * a1;
    acc11 += b1 * a1;
  }
  return array<mat4x4<f32>, 4>(acc00, acc01, acc10, acc11);
}

fn multiply_16x16(acc: ptr<function, Acc16>, z: u32, m0: u32, n0: u32) {
  let za = layer_a(z);
  let zb = layer_b(z);
  let c4 = n0 / 4u;
  // (Eight k per step with update8_16x16, as the f16 kernel does, measured slower here: the
  // extra operand registers cost more than the accumulator traffic saved.)
  for (var k4 = 0u; k4 < p.K_TEXELS; k4++) {
    let k = 4u * k4;
    let a = Quad(load_a(za, m0, k4), load_a(za, m0 + 4u, k4), load_a(za, m0 + 8u, k4),
      load_a(za, m0 + 12u, k4));
    let b = Quad(load_b(zb, c4, k), load_b(zb, c4 + 1u, k), load_b(zb, c4 + 2u, k),
      load_b(zb, c4 + 3u, k));
    update_16x16(acc, a, b);
  }
}

fn multiply_f16_16x16(acc: ptr<function, Acc16>, z: u32, m0: u32, n0: u32) {
  let za = layer_a(z);
  let zb = layer_b(z);
  let c8 = n0 / 8u;
  for (var k8 = 0u; k8 < p.K_TEXELS; k8++) {
    let k = 8u * k8;
    // Element h of each pair covers k + 4h .. k + 4h + 3.
    let a0 = load_a_f16(za, m0, k8);
    let a1 = load_a_f16(za, m0 + 4u, k8);
    let a2 = load_a_f16(za, m0 + 8u, k8);
    let a3 = load_a_f16(za, m0 + 12u, k8);
    // Element h of each pair covers columns +4h .. +4h + 3 of its eight.
    let b0 = load_b_f16(zb, c8, k);
    let b1 = load_b_f16(zb, c8 + 1u, k);
    let b2 = load_b_f16(zb, c8, k + 4u);
    let b3 = load_b_f16(zb, c8 + 1u, k + 4u);
    update8_16x16(
      acc,
      Quad(a0[0], a1[0], a2[0], a3[0]),
      Quad(b0[0], b0[1], b1[0], b1[1]),
      Quad(a0[1], a1[1], a2[1], a3[1]),
      Quad(b2[0], b2[1], b3[0], b3[1]),
    );
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_8x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let mn = block_corner(wid, lid, 8u);
  if (mn.x >= p.M || mn.y >= p.N) {
    return;
  }
  let acc = multiply_8x8(wid.z, mn.x, mn.y);
  store_block(wid.z, acc[0], mn.x, mn.y);
  store_block(wid.z, acc[1], mn.x, mn.y + 4u);
  store_block(wid.z, acc[2], mn.x + 4u, mn.y);
  store_block(wid.z, acc[3], mn.x + 4u, mn.y + 4u);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_8x8_v4(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let mn = block_corner(wid, lid, 8u);
  if (mn.x >= p.M || mn.y >= p.N) {
    return;
  }
  let acc = multiply_8x8(wid.z, mn.x, mn.y);
  store_block4(wid.z, acc[0], mn.x, mn.y);
  store_block4(wid.z, acc[1], mn.x, mn.y + 4u);
  store_block4(wid.z, acc[2], mn.x + 4u, mn.y);
  store_block4(wid.z, acc[3], mn.x + 4u, mn.y + 4u);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_16x16(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let mn = block_corner(wid, lid, 16u);
  if (mn.x >= p.M || mn.y >= p.N) {
    return;
  }
  var acc: Acc16;
  multiply_16x16(&acc, wid.z, mn.x, mn.y);
  store_16x16(wid.z, &acc, mn.x, mn.y);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_16x16_v4(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let mn = block_corner(wid, lid, 16u);
  if (mn.x >= p.M || mn.y >= p.N) {
    return;
  }
  var acc: Acc16;
  multiply_16x16(&acc, wid.z, mn.x, mn.y);
  store4_16x16(wid.z, &acc, mn.x, mn.y);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_f16_16x16(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let mn = block_corner(wid, lid, 16u);
  if (mn.x >= p.M || mn.y >= p.N) {
    return;
  }
  var acc: Acc16;
  multiply_f16_16x16(&acc, wid.z, mn.x, mn.y);
  store_16x16(wid.z, &acc, mn.x, mn.y);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_f16_16x16_v4(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let mn = block_corner(wid, lid, 16u);
  if (mn.x >= p.M || mn.y >= p.N) {
    return;
  }
  var acc: Acc16;
  multiply_f16_16x16(&acc, wid.z, mn.x, mn.y);
  store4_16x16(wid.z, &acc, mn.x, mn.y);
}
