// Register-tiled matrix multiply on storage buffers with scalar loads, batched:
//   out[z, m, n] = act(alpha * sum_k A[z](m, k) * B[z](k, n) + beta * bias[z](m, n))
// Operands are addressed through strides, so one pipeline serves transposed operands
// (transA / transB: the host swaps the row and column strides), broadcast batch axes (stride 0)
// and a bias broadcast to [M, N] (Gemm's C, a Linear layer's [N] vector). `out` is contiguous.
//
// This is the fallback of the matmul family: it reads `array<f32>`, so it works on any buffer,
// including those whose size is not a multiple of 16 bytes, which matmul_vec4.wgsl's vec4
// arrays cannot address to the end. Each invocation owns a TM x TN block of outputs in
// registers; per step of k it loads TM values of A and TN of B for TM * TN multiply-adds. Rows
// and columns past M / N are clamped on load (no branches in the k loop) and skipped on store,
// so any M, N, K work. TM and TN are placeholders because they size function-scope arrays
// (override constants cannot); TN must be a multiple of 4.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  batch_rank: u32,
  // A(m, k) = a[a_base + m * a_row + k * a_col]; B(k, n) = b[b_base + k * b_row + n * b_col]
  a_row: u32,
  a_col: u32,
  b_row: u32,
  b_col: u32,
  bias_row: u32,
  bias_col: u32,
  alpha: f32,
  beta: f32,
  // Batch axes of the output (innermost last) and each operand's stride along them.
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

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
// Epilogue switches: add beta * bias; activation (0 none, 1 relu, 2 gelu, 3 quick_gelu);
// round to half precision (float16 tensors are stored as f32 holding half values).
override HAS_BIAS: bool = false;
override ACT: u32 = 0u;
override ROUND_F16: bool = false;

const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const TN4: u32 = TN / 4u;

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

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m0 = (wid.y * WG_Y + lid.y) * TM;
  let n0 = (wid.x * WG_X + lid.x) * TN;
  if (m0 >= p.M || n0 >= p.N) {
    return;
  }
  // Offsets of this batch entry (workgroup z) in each operand.
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

  // Clamped row / column offsets: loads never leave the operands, stores are checked.
  var a_rows: array<u32, TM>;
  for (var i = 0u; i < TM; i++) {
    a_rows[i] = a_base + min(m0 + i, p.M - 1u) * p.a_row;
  }
  var b_cols: array<vec4<u32>, TN4>;
  for (var j = 0u; j < TN4; j++) {
    let n = min(vec4<u32>(n0 + 4u * j) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.N - 1u));
    b_cols[j] = b_base + n * p.b_col;
  }

  var acc: array<vec4<f32>, TM * TN4>;
  for (var k = 0u; k < p.K; k++) {
    let b_k = k * p.b_row;
    var bv: array<vec4<f32>, TN4>;
    for (var j = 0u; j < TN4; j++) {
      let c = b_cols[j] + b_k;
      bv[j] = vec4<f32>(b[c.x], b[c.y], b[c.z], b[c.w]);
    }
    let a_k = k * p.a_col;
    for (var i = 0u; i < TM; i++) {
      let av = vec4<f32>(a[a_rows[i] + a_k]);
      for (var j = 0u; j < TN4; j++) {
        acc[i * TN4 + j] = fma(av, bv[j], acc[i * TN4 + j]);
      }
    }
  }

  let out_base = wid.z * p.M * p.N;
  for (var i = 0u; i < TM; i++) {
    let m = m0 + i;
    if (m >= p.M) {
      break;
    }
    for (var j = 0u; j < TN4; j++) {
      for (var c = 0u; c < 4u; c++) {
        let n = n0 + 4u * j + c;
        if (n < p.N) {
          var v = p.alpha * acc[i * TN4 + j][c];
          if (HAS_BIAS) {
            v += p.beta * bias[bias_base + m * p.bias_row + n * p.bias_col];
          }
          out[out_base + m * p.N + n] = epilogue(v);
        }
      }
    }
  }
}
