// Shared-memory tiled matrix multiply for hardware GPUs, batched; same contract as matmul.wgsl:
//   out[z, m, n] = act(alpha * sum_k A[z](m, k) * B[z](k, n) + beta * bias[z](m, n))
// with operands addressed through strides (transposes and broadcast batch axes without copies).
//
// Why this shape: a workgroup of WG_X x WG_Y invocations computes a BM x BN block of the output
// (BM = TM * WG_Y rows, BN = TN * WG_X columns). For each slice of TILE_K values of k it stages
// the A and B tiles in workgroup memory once, every global value read by one invocation, in the
// operand's contiguous order (neighbouring invocations read neighbouring addresses); then each
// invocation accumulates its TM x TN outputs from the shared copies, reading TM / 4 + TN / 4
// vec4 of workgroup memory per k for TM * TN multiply-adds. An invocation owns TM / 4 groups of
// 4 adjacent rows, 4 * WG_Y rows apart, and TN / 4 groups of 4 adjacent columns, 4 * WG_X
// columns apart: the invocations of a row read neighbouring vec4 of a tile (one wide access
// without bank conflicts) and those of a column the same vec4 (a broadcast).
//
// Tiles are k-major, 4 rows (of A) or 4 columns (of B) per vec4, one vec4 of padding per k row:
// a vec4 read along k (A row-major, B stored [N, K]) is scattered over 4 k rows, and the padding
// puts those stores in different banks. Operands are read as vec4 along their contiguous axis
// when its length and every other stride are multiples of 4 (whole, aligned vec4 that never
// straddle rows; A_MODE / B_MODE 0 along k, 1 along m / n), else one value at a time (mode 2):
// the host then binds them as arrays of scalars, so any buffer size works. Rows, columns and k
// past M, N and K are staged as 0.
//
// Placeholders, for what override constants cannot express: TM and TN (multiples of 4) size the
// per-invocation accumulator arrays; A_ELEM / B_ELEM are the operands' binding element types
// (f32 or vec4<f32>, and for a constant operand the host uploaded as halves f16 or vec4<f16>);
// T is the tiles' element type, f16 (with ENABLE the `enable f16;` directive and HALVES set) for
// half the workgroup memory and twice the depth of k per barrier. Accumulation is always f32;
// staging to halves rounds to nearest even (exactly as the host references' roundToF16).
// On llvmpipe this loses to the texture kernels (workgroup memory is as slow as storage there,
// plus the barriers); it is the family for hardware GPUs.

{{ENABLE}}

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

@group(0) @binding(0) var<storage, read> a: array<{{A_ELEM}}>;
@group(0) @binding(1) var<storage, read> b: array<{{B_ELEM}}>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
// k per staged slice: a multiple of 4.
override TILE_K: u32 = 16u;
// How each operand is read: 0 vec4 along k, 1 vec4 along m (A) / n (B), 2 one value at a time.
override A_MODE: u32 = 2u;
override B_MODE: u32 = 2u;
// The tiles hold halves (T is f16): staged values are rounded to half precision.
override HALVES: bool = false;
// Epilogue: add beta * bias; activation (0 none, 1 relu, 2 gelu, 3 quick_gelu); round to half
// precision (float16 tensors are stored as f32 holding half values).
override HAS_BIAS: bool = false;
override ACT: u32 = 0u;
override ROUND_F16: bool = false;

const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const GM: u32 = TM / 4u;
const GN: u32 = TN / 4u;

// [TILE_K][BM / 4 + 1] and [TILE_K][BN / 4 + 1] (the last vec4 of each k row is padding).
var<workgroup> tile_a: array<vec4<{{T}}>, TILE_K * (GM * WG_Y + 1u)>;
var<workgroup> tile_b: array<vec4<{{T}}>, TILE_K * (GN * WG_X + 1u)>;

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

// Element (or vec4, in modes 0 / 1) i of operand `op` (0 A, 1 B) as a vec4: a scalar binding
// yields its value in every lane, a half-precision one is widened exactly.
fn unit(op: u32, i: u32) -> vec4<f32> {
  if (op == 0u) {
    return vec4<f32>(vec4(a[i]));
  }
  return vec4<f32>(vec4(b[i]));
}

fn to_tile(v: f32) -> {{T}} {
  if (HALVES) {
    return {{T}}(round_f16(v));
  }
  return {{T}}(v);
}

// Lane c of vec4 `at` of operand `op`'s tile.
fn put(op: u32, at: u32, c: u32, v: f32) {
  if (op == 0u) {
    tile_a[at][c] = to_tile(v);
  } else {
    tile_b[at][c] = to_tile(v);
  }
}

fn put4(op: u32, at: u32, v: vec4<f32>) {
  let t = vec4<{{T}}>(to_tile(v.x), to_tile(v.y), to_tile(v.z), to_tile(v.w));
  if (op == 0u) {
    tile_a[at] = t;
  } else {
    tile_b[at] = t;
  }
}

// Stages operand `op`'s rows r0 .. r0 + R - 1 (m of A, n of B) at k0 .. k0 + TILE_K - 1 into
// its tile; rows past `rows` and k past K are 0. `rs` / `ks`: element strides along the rows and
// along k. Every invocation of the workgroup calls it (uniform control flow).
fn stage(op: u32, mode: u32, base: u32, r0: u32, R: u32, rows: u32, rs: u32, ks: u32, k0: u32,
  tid: u32) {
  let threads = WG_X * WG_Y;
  let row4 = R / 4u + 1u;
  if (mode == 0u) {
    // (r, k .. k + 3): contiguous along k (ks == 1, K % 4 == 0); invocations walk k fastest.
    let per_r = TILE_K / 4u;
    for (var l = tid; l < R * per_r; l += threads) {
      let r = l / per_r;
      let kk = (l % per_r) * 4u;
      var v = vec4<f32>(0.0);
      if (r0 + r < rows && k0 + kk < p.K) {
        v = unit(op, (base + (r0 + r) * rs + k0 + kk) >> 2u);
      }
      let at = kk * row4 + r / 4u;
      let c = r % 4u;
      put(op, at, c, v.x);
      put(op, at + row4, c, v.y);
      put(op, at + 2u * row4, c, v.z);
      put(op, at + 3u * row4, c, v.w);
    }
  } else if (mode == 1u) {
    // (r .. r + 3, k): contiguous along the rows (rs == 1, rows % 4 == 0), one tile vec4.
    let per_k = R / 4u;
    for (var l = tid; l < per_k * TILE_K; l += threads) {
      let r = (l % per_k) * 4u;
      let kk = l / per_k;
      var v = vec4<f32>(0.0);
      if (r0 + r < rows && k0 + kk < p.K) {
        v = unit(op, (base + r0 + r + (k0 + kk) * ks) >> 2u);
      }
      put4(op, kk * row4 + r / 4u, v);
    }
  } else {
    // One value at a time, walking the contiguous axis fastest when there is one.
    let k_fast = ks == 1u;
    for (var l = tid; l < R * TILE_K; l += threads) {
      var r = l % R;
      var kk = l / R;
      if (k_fast) {
        r = l / TILE_K;
        kk = l % TILE_K;
      }
      var v = 0.0;
      if (r0 + r < rows && k0 + kk < p.K) {
        v = unit(op, base + (r0 + r) * rs + (k0 + kk) * ks).x;
      }
      put(op, kk * row4 + r / 4u, r % 4u, v);
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let BM = TM * WG_Y;
  let BN = TN * WG_X;
  let row4_a = BM / 4u + 1u;
  let row4_b = BN / 4u + 1u;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;

  var a_base = 0u;
  var b_base = 0u;
  var bias_base = 0u;
  var rest = wid.z;
  for (var d = i32(p.batch_rank) - 1; d >= 0; d--) {
    let size = p.batch_shape[d / 4][d % 4];
    let idx = rest % size;
    rest = rest / size;
    a_base += idx * p.a_batch[d / 4][d % 4];
    b_base += idx * p.b_batch[d / 4][d % 4];
    bias_base += idx * p.bias_batch[d / 4][d % 4];
  }

  // acc[(4 * g + q) * GN + h]: row q of row group g, the 4 columns of column group h.
  var acc: array<vec4<f32>, TM * GN>;
  for (var k0 = 0u; k0 < p.K; k0 += TILE_K) {
    stage(0u, A_MODE, a_base, m0, BM, p.M, p.a_row, p.a_col, k0, tid);
    stage(1u, B_MODE, b_base, n0, BN, p.N, p.b_col, p.b_row, k0, tid);
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      var bv: array<vec4<f32>, GN>;
      for (var h = 0u; h < GN; h++) {
        bv[h] = vec4<f32>(tile_b[kk * row4_b + lid.x + h * WG_X]);
      }
      for (var g = 0u; g < GM; g++) {
        let av = vec4<f32>(tile_a[kk * row4_a + lid.y + g * WG_Y]);
        for (var h = 0u; h < GN; h++) {
          let i = 4u * g * GN + h;
          acc[i] = fma(vec4<f32>(av.x), bv[h], acc[i]);
          acc[i + GN] = fma(vec4<f32>(av.y), bv[h], acc[i + GN]);
          acc[i + 2u * GN] = fma(vec4<f32>(av.z), bv[h], acc[i + 2u * GN]);
          acc[i + 3u * GN] = fma(vec4<f32>(av.w), bv[h], acc[i + 3u * GN]);
        }
      }
    }
    workgroupBarrier();
  }

  let out_base = wid.z * p.M * p.N;
  for (var g = 0u; g < GM; g++) {
    for (var q = 0u; q < 4u; q++) {
      let m = m0 + 4u * (lid.y + g * WG_Y) + q;
      if (m >= p.M) {
        return;
      }
      for (var h = 0u; h < GN; h++) {
        let row = acc[(4u * g + q) * GN + h];
        for (var e = 0u; e < 4u; e++) {
          let n = n0 + 4u * (lid.x + h * WG_X) + e;
          if (n < p.N) {
            var v = p.alpha * row[e];
            if (HAS_BIAS) {
              v += p.beta * bias[bias_base + m * p.bias_row + n * p.bias_col];
            }
            out[out_base + m * p.N + n] = epilogue(v);
          }
        }
      }
    }
  }
}
