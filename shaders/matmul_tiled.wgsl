// Shared-memory tiled matrix multiply for real GPUs, batched, same contract as matmul.wgsl:
//   out[z, m, n] = act(alpha * sum_k A[z](m, k) * B[z](k, n) + beta * bias[z](m, n))
// with operands addressed through strides (transposes and broadcast batch axes without copies).
//
// Why this shape: a workgroup of WG_X x WG_Y invocations computes a (4*WG_Y) x (4*WG_X) block of
// the output. For each slice of TILE_K values of k it stages the A and B tiles in workgroup
// memory once (each global value is read by one invocation, in the operand's contiguous order
// so neighbouring invocations read neighbouring addresses), then every invocation accumulates
// its 4 x 4 outputs from the fast shared copies. Outputs of one invocation are spaced WG_Y rows
// and WG_X columns apart, so neighbouring invocations read neighbouring shared words (no bank
// conflicts) and store neighbouring outputs. Out-of-range rows, columns and k are staged as 0.
// On llvmpipe this loses to matmul.wgsl (shared memory is as slow as storage there, plus the
// barriers); it is the variant for hardware GPUs.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  batch_rank: u32,
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

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TILE_K: u32 = 16u;
override HAS_BIAS: bool = false;
override ACT: u32 = 0u;
override ROUND_F16: bool = false;

const TM: u32 = 4u;
const TN: u32 = 4u;
// Largest tiles any specialisation may use (workgroup arrays need a fixed size here):
// (4 * WG_Y) * TILE_K and TILE_K * (4 * WG_X) must not exceed it.
const TILE_CAPACITY: u32 = 2048u;

var<workgroup> tile_a: array<f32, TILE_CAPACITY>; // [TILE_K][4 * WG_Y]
var<workgroup> tile_b: array<f32, TILE_CAPACITY>; // [TILE_K][4 * WG_X]

//#include "lib/activation.wgsl"

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
    r = unpack2x16float(pack2x16float(vec2<f32>(r, 0.0))).x;
  }
  return r;
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let BM = TM * WG_Y;
  let BN = TN * WG_X;
  let threads = WG_X * WG_Y;
  let tile_m0 = wid.y * BM;
  let tile_n0 = wid.x * BN;

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
  // Stage in the order the operand is contiguous in: along k for A unless it is transposed,
  // along n for B unless it is transposed.
  let a_k_fast = p.a_col == 1u;
  let b_n_fast = p.b_col == 1u;

  var acc: array<array<f32, TN>, TM>;
  for (var k0 = 0u; k0 < p.K; k0 += TILE_K) {
    for (var l = tid; l < BM * TILE_K; l += threads) {
      var mm = l % BM;
      var kk = l / BM;
      if (a_k_fast) {
        mm = l / TILE_K;
        kk = l % TILE_K;
      }
      let m = tile_m0 + mm;
      let k = k0 + kk;
      var v = 0.0;
      if (m < p.M && k < p.K) {
        v = a[a_base + m * p.a_row + k * p.a_col];
      }
      tile_a[kk * BM + mm] = v;
    }
    for (var l = tid; l < BN * TILE_K; l += threads) {
      var nn = l / TILE_K;
      var kk = l % TILE_K;
      if (b_n_fast) {
        nn = l % BN;
        kk = l / BN;
      }
      let n = tile_n0 + nn;
      let k = k0 + kk;
      var v = 0.0;
      if (n < p.N && k < p.K) {
        v = b[b_base + k * p.b_row + n * p.b_col];
      }
      tile_b[kk * BN + nn] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      var av: array<f32, TM>;
      var bv: array<f32, TN>;
      for (var i = 0u; i < TM; i++) {
        av[i] = tile_a[kk * BM + lid.y + i * WG_Y];
      }
      for (var j = 0u; j < TN; j++) {
        bv[j] = tile_b[kk * BN + lid.x + j * WG_X];
      }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
          acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }

  let out_base = wid.z * p.M * p.N;
  for (var i = 0u; i < TM; i++) {
    let m = tile_m0 + lid.y + i * WG_Y;
    for (var j = 0u; j < TN; j++) {
      let n = tile_n0 + lid.x + j * WG_X;
      if (m < p.M && n < p.N) {
        var v = p.alpha * acc[i][j];
        if (HAS_BIAS) {
          v += p.beta * bias[bias_base + m * p.bias_row + n * p.bias_col];
        }
        out[out_base + m * p.N + n] = epilogue(v);
      }
    }
  }
}
