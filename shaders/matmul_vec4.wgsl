// Register-tiled matrix multiply with 16-byte (vec4) loads, batched; same contract as
// matmul.wgsl:
//   out[z, m, n] = act(alpha * sum_k A[z](m, k) * B[z](k, n) + beta * bias[z](m, n))
// Operands are addressed through element strides (transposes and broadcast batch axes without
// copies); `out` is contiguous.
//
// Why this shape: each invocation owns a block of outputs (entry points main_4x4, main_8x8,
// main_16x16) kept as 4 x 4 matrices in registers, and walks k four at a time. An operand whose
// contiguous axis has a length divisible by 4 is read as vec4 along that axis: along k for a
// row-major A or a B stored [N, K] (transB), along m for a transposed A, along n for a row-major
// B. On llvmpipe one vec4 load costs about as much as one scalar load (every storage load is a
// loop over the SIMD lanes, which carries all four components); on GPUs it is one wide load. A
// step of k then costs (TM + TN) / 4 * 4 loads for TM * TN * 4 multiply-adds, done as 4 x 4
// matrix products. Operands that cannot be read as vec4 (odd lengths) are read one value at a
// time from the same arrays (mode 2).
// The blocks are written out, not looped over: the shader compilers we target do not unroll
// loops over register arrays reliably, and an array that is not unrolled lives in memory.
// Rows and columns past M / N are clamped on load and skipped on store; k past K reads as 0.
// Requires A's and B's buffers to be a multiple of 16 bytes (the host falls back to
// matmul.wgsl otherwise).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  batch_rank: u32,
  // A(m, k) = a[a_base + m * a_row + k * a_col]; B(k, n) = b[b_base + k * b_row + n * b_col]
  // (element indices into the flattened buffers)
  a_row: u32,
  a_col: u32,
  b_row: u32,
  b_col: u32,
  bias_row: u32,
  bias_col: u32,
  alpha: f32,
  beta: f32,
  batch_shape: array<vec4<u32>, 2>,
  a_batch: array<vec4<u32>, 2>,
  b_batch: array<vec4<u32>, 2>,
  bias_batch: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
// How A is read: 0 vec4 along k (row-major, K % 4 == 0), 1 vec4 along m (transposed,
// M % 4 == 0), 2 one value at a time. B: 0 vec4 along n (row-major, N % 4 == 0), 1 vec4 along
// k (transposed, K % 4 == 0), 2 one value at a time.
override A_MODE: u32 = 0u;
override B_MODE: u32 = 0u;
// Epilogue: add beta * bias; activation (0 none, 1 relu, 2 gelu, 3 quick_gelu); round to half
// precision (float16 tensors are stored as f32 holding half values).
override HAS_BIAS: bool = false;
override ACT: u32 = 0u;
override ROUND_F16: bool = false;

// Where one invocation's block starts, and its batch entry's offsets in each operand.
struct Block {
  m0: u32,
  n0: u32,
  a_base: u32,
  b_base: u32,
  bias_base: u32,
  out_base: u32,
}

fn block_origin(wid: vec3<u32>, lid: vec3<u32>, tm: u32, tn: u32) -> Block {
  var blk: Block;
  blk.m0 = (wid.y * WG_Y + lid.y) * tm;
  blk.n0 = (wid.x * WG_X + lid.x) * tn;
  var rest = wid.z;
  for (var d = i32(p.batch_rank) - 1; d >= 0; d--) {
    let size = p.batch_shape[d / 4][d % 4];
    let idx = rest % size;
    rest = rest / size;
    blk.a_base += idx * p.a_batch[d / 4][d % 4];
    blk.b_base += idx * p.b_batch[d / 4][d % 4];
    blk.bias_base += idx * p.bias_batch[d / 4][d % 4];
  }
  blk.out_base = wid.z * p.M * p.N;
  return blk;
}

fn a_at(i: u32) -> f32 {
  return a[i >> 2u][i & 3u];
}

fn b_at(i: u32) -> f32 {
  return b[i >> 2u][i & 3u];
}

// Four values along k from k0 (0 past K), one at a time.
fn a_k4(row: u32, k0: u32) -> vec4<f32> {
  let s = p.a_col;
  let base = row + k0 * s;
  let v = vec4<f32>(a_at(base), a_at(base + s), a_at(base + 2u * s), a_at(base + 3u * s));
  return select(vec4<f32>(0.0), v, vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.K));
}

// A rows r .. r + 3 at k .. k + 3 as matrix columns (column q = A(r + q, k .. k + 3)).
fn load_a(blk: Block, r: u32, k: u32) -> mat4x4<f32> {
  let m_last = p.M - 1u;
  let r0 = blk.a_base + min(r, m_last) * p.a_row;
  let r1 = blk.a_base + min(r + 1u, m_last) * p.a_row;
  let r2 = blk.a_base + min(r + 2u, m_last) * p.a_row;
  let r3 = blk.a_base + min(r + 3u, m_last) * p.a_row;
  if (A_MODE == 0u) {
    return mat4x4<f32>(a[(r0 + k) >> 2u], a[(r1 + k) >> 2u], a[(r2 + k) >> 2u],
      a[(r3 + k) >> 2u]);
  }
  if (A_MODE == 1u) {
    // Rows of the transposed storage are k; four m per vec4.
    let at = (blk.a_base + min(r, m_last) + k * p.a_col) >> 2u;
    let s = p.a_col >> 2u;
    let kv = vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.K);
    return transpose(mat4x4<f32>(
      select(vec4<f32>(0.0), a[at], kv.x),
      select(vec4<f32>(0.0), a[at + s], kv.y),
      select(vec4<f32>(0.0), a[at + 2u * s], kv.z),
      select(vec4<f32>(0.0), a[at + 3u * s], kv.w),
    ));
  }
  return mat4x4<f32>(a_k4(r0, k), a_k4(r1, k), a_k4(r2, k), a_k4(r3, k));
}

// Four values along n from column c (clamped to N - 1), one at a time.
fn b_n4(row: u32, c: u32) -> vec4<f32> {
  let n_last = p.N - 1u;
  let s = p.b_col;
  return vec4<f32>(b_at(row + min(c, n_last) * s), b_at(row + min(c + 1u, n_last) * s),
    b_at(row + min(c + 2u, n_last) * s), b_at(row + min(c + 3u, n_last) * s));
}

// B rows k .. k + 3 at columns c .. c + 3 as matrix columns (column q = B(k + q, c .. c + 3)).
fn load_b(blk: Block, c: u32, k: u32) -> mat4x4<f32> {
  let n_last = p.N - 1u;
  let kv = vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.K);
  if (B_MODE == 0u) {
    let at = (blk.b_base + k * p.b_row + min(c, n_last)) >> 2u;
    let s = p.b_row >> 2u;
    return mat4x4<f32>(
      select(vec4<f32>(0.0), b[at], kv.x),
      select(vec4<f32>(0.0), b[at + s], kv.y),
      select(vec4<f32>(0.0), b[at + 2u * s], kv.z),
      select(vec4<f32>(0.0), b[at + 3u * s], kv.w),
    );
  }
  if (B_MODE == 1u) {
    // Stored [N, K]: one vec4 along k per column n.
    let base = blk.b_base + k;
    return transpose(mat4x4<f32>(
      b[(base + min(c, n_last) * p.b_col) >> 2u],
      b[(base + min(c + 1u, n_last) * p.b_col) >> 2u],
      b[(base + min(c + 2u, n_last) * p.b_col) >> 2u],
      b[(base + min(c + 3u, n_last) * p.b_col) >> 2u],
    ));
  }
  let row = blk.b_base + k * p.b_row;
  let s = p.b_row;
  return mat4x4<f32>(
    select(vec4<f32>(0.0), b_n4(row, c), kv.x),
    select(vec4<f32>(0.0), b_n4(row + s, c), kv.y),
    select(vec4<f32>(0.0), b_n4(row + 2u * s, c), kv.z),
    select(vec4<f32>(0.0), b_n4(row + 3u * s, c), kv.w),
  );
}

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

// Writes a 4 x 4 accumulator block (column q = output row r + q) through the epilogue.
fn store_block(blk: Block, acc: mat4x4<f32>, r: u32, c: u32) {
  for (var q = 0u; q < 4u; q++) {
    let m = r + q;
    if (m >= p.M) {
      return;
    }
    let row = acc[q];
    for (var e = 0u; e < 4u; e++) {
      let n = c + e;
      if (n < p.N) {
        var v = p.alpha * row[e];
        if (HAS_BIAS) {
          v += p.beta * bias[blk.bias_base + m * p.bias_row + n * p.bias_col];
        }
        out[blk.out_base + m * p.N + n] = epilogue(v);
      }
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_4x4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let blk = block_origin(wid, lid, 4u, 4u);
  if (blk.m0 >= p.M || blk.n0 >= p.N) {
    return;
  }
  var acc: mat4x4<f32>;
  for (var k = 0u; k < p.K; k += 4u) {
    acc += load_b(blk, blk.n0, k) * load_a(blk, blk.m0, k);
  }
  store_block(blk, acc, blk.m0, blk.n0);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_8x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let blk = block_origin(wid, lid, 8u, 8u);
  let m0 = blk.m0;
  let n0 = blk.n0;
  if (m0 >= p.M || n0 >= p.N) {
    return;
  }
  var acc00: mat4x4<f32>;
  var acc01: mat4x4<f32>;
  var acc10: mat4x4<f32>;
  var acc11: mat4x4<f32>;
  for (var k = 0u; k < p.K; k += 4u) {
    let a0 = load_a(blk, m0, k);
    let a1 = load_a(blk, m0 + 4u, k);
    let b0 = load_b(blk, n0, k);
    let b1 = load_b(blk, n0 + 4u, k);
    acc00 += b0 * a0;
    acc01 += b1 * a0;
    acc10 += b0 * a1;
    acc11 += b1 * a1;
  }
  store_block(blk, acc00, m0, n0);
  store_block(blk, acc01, m0, n0 + 4u);
  store_block(blk, acc10, m0 + 4u, n0);
  store_block(blk, acc11, m0 + 4u, n0 + 4u);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_16x16(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let blk = block_origin(wid, lid, 16u, 16u);
  let m0 = blk.m0;
  let n0 = blk.n0;
  if (m0 >= p.M || n0 >= p.N) {
    return;
  }
  // acc<i><j>: rows m0 + 4i .. + 3, columns n0 + 4j .. + 3.
  var acc00: mat4x4<f32>;
  var acc01: mat4x4<f32>;
  var acc02: mat4x4<f32>;
  var acc03: mat4x4<f32>;
  var acc10: mat4x4<f32>;
  var acc11: mat4x4<f32>;
  var acc12: mat4x4<f32>;
  var acc13: mat4x4<f32>;
  var acc20: mat4x4<f32>;
  var acc21: mat4x4<f32>;
  var acc22: mat4x4<f32>;
  var acc23: mat4x4<f32>;
  var acc30: mat4x4<f32>;
  var acc31: mat4x4<f32>;
  var acc32: mat4x4<f32>;
  var acc33: mat4x4<f32>;
  for (var k = 0u; k < p.K; k += 4u) {
    let b0 = load_b(blk, n0, k);
    let b1 = load_b(blk, n0 + 4u, k);
    let b2 = load_b(blk, n0 + 8u, k);
    let b3 = load_b(blk, n0 + 12u, k);
    let a0 = load_a(blk, m0, k);
    acc00 += b0 * a0;
    acc01 += b1 * a0;
    acc02 += b2 * a0;
    acc03 += b3 * a0;
    let a1 = load_a(blk, m0 + 4u, k);
    acc10 += b0 * a1;
    acc11 += b1 * a1;
    acc12 += b2 * a1;
    acc13 += b3 * a1;
    let a2 = load_a(blk, m0 + 8u, k);
    acc20 += b0 * a2;
    acc21 += b1 * a2;
    acc22 += b2 * a2;
    acc23 += b3 * a2;
    let a3 = load_a(blk, m0 + 12u, k);
    acc30 += b0 * a3;
    acc31 += b1 * a3;
    acc32 += b2 * a3;
    acc33 += b3 * a3;
  }
  store_block(blk, acc00, m0, n0);
  store_block(blk, acc01, m0, n0 + 4u);
  store_block(blk, acc02, m0, n0 + 8u);
  store_block(blk, acc03, m0, n0 + 12u);
  store_block(blk, acc10, m0 + 4u, n0);
  store_block(blk, acc11, m0 + 4u, n0 + 4u);
  store_block(blk, acc12, m0 + 4u, n0 + 8u);
  store_block(blk, acc13, m0 + 4u, n0 + 12u);
  store_block(blk, acc20, m0 + 8u, n0);
  store_block(blk, acc21, m0 + 8u, n0 + 4u);
  store_block(blk, acc22, m0 + 8u, n0 + 8u);
  store_block(blk, acc23, m0 + 8u, n0 + 12u);
  store_block(blk, acc30, m0 + 12u, n0);
  store_block(blk, acc31, m0 + 12u, n0 + 4u);
  store_block(blk, acc32, m0 + 12u, n0 + 8u);
  store_block(blk, acc33, m0 + 12u, n0 + 12u);
}
