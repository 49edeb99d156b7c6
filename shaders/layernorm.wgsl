// LayerNormalization: each row (the trailing dims from `axis` on, n elements, contiguous) is
//   y = (x - mean) * inv_std * scale + bias,   inv_std = 1 / sqrt(mean((x - mean)^2) + epsilon)
// and optionally its mean and inv_std are written (ONNX's Mean and InvStdDev outputs).
// Computed in f32 (ONNX stash_type = 1).
// The variance is a second pass over the centred values rather than E[x^2] - mean^2, which
// cancels catastrophically when |mean| >> std (transformer residual streams have outlier
// features of magnitude ~100); a single shifted-data pass measured no faster on llvmpipe.
// scale and bias hold `scale_count` / `bias_count` values that repeat along the row (the
// normalised shape or a suffix of it); bias_count = 0 means no bias. Their indices wrap with a
// compare instead of `k % count` (integer division is slow on CPU SIMD).
// Entry points share out rows two ways, chosen on the host by size and adapter:
//  - `per_thread`: one invocation per row (many short rows, and always on llvmpipe);
//  - `per_group`: one workgroup per row, tree sums in workgroup memory (few long rows).

override WG: u32 = 64u;
// Round y to half precision (float16 tensors are stored as f32).
override ROUND_F16: bool = false;

struct Params {
  rows: u32,
  n: u32,
  scale_count: u32,
  bias_count: u32,
  epsilon: f32,
  // Bit 0: write mean_out, bit 1: write inv_std_out.
  write_stats: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> inv_std_out: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

var<workgroup> partial: array<f32, WG>;

//#include "lib/f16.wgsl"

fn finish(v: f32) -> f32 {
  if (ROUND_F16) { return round_f16(v); }
  return v;
}

fn write_stats(row: u32, mean: f32, inv_std: f32) {
  if ((params.write_stats & 1u) != 0u) { mean_out[row] = mean; }
  if ((params.write_stats & 2u) != 0u) { inv_std_out[row] = inv_std; }
}


@compute @workgroup_size(WG)
fn per_thread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= params.rows) { return; }
  let n = params.n;
  let base = row * n;
  var s = 0.0;
  for (var k = 0u; k < n; k++) { s += x[base + k]; }
  let mean = s / f32(n);
  var v = 0.0;
  for (var k = 0u; k < n; k++) {
    let d = x[base + k] - mean;
    v += d * d;
  }
  let inv_std = 1.0 / sqrt(v / f32(n) + params.epsilon);
  var ks = 0u;
  var kb = 0u;
  for (var k = 0u; k < n; k++) {
    var r = (x[base + k] - mean) * inv_std * scale[ks];
    if (params.bias_count > 0u) {
      r += bias[kb];
      kb++;
      if (kb == params.bias_count) { kb = 0u; }
    }
    y[base + k] = finish(r);
    ks++;
    if (ks == params.scale_count) { ks = 0u; }
  }
  write_stats(row, mean, inv_std);
}

/// Sum of `partial` over the workgroup (WG a power of two), returned to every invocation.
fn group_sum(lid: u32, value: f32) -> f32 {
  partial[lid] = value;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { partial[lid] += partial[lid + h]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier(); // everyone has read partial[0] before it is reused
  return total;
}

@compute @workgroup_size(WG)
fn per_group(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) { return; }
  let n = params.n;
  let base = row * n;
  var s = 0.0;
  for (var k = lid; k < n; k += WG) { s += x[base + k]; }
  let mean = group_sum(lid, s) / f32(n);
  var v = 0.0;
  for (var k = lid; k < n; k += WG) {
    let d = x[base + k] - mean;
    v += d * d;
  }
  let inv_std = 1.0 / sqrt(group_sum(lid, v) / f32(n) + params.epsilon);
  for (var k = lid; k < n; k += WG) {
    var r = (x[base + k] - mean) * inv_std * scale[k % params.scale_count];
    if (params.bias_count > 0u) { r += bias[k % params.bias_count]; }
    y[base + k] = finish(r);
  }
  if (lid == 0u) { write_stats(row, mean, inv_std); }
}
