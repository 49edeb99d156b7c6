// LayerNormalization of float32 rows whose length n and scale/bias counts are multiples of 4
// (ViT/CLIP widths 512, 768, 1024): y = (x - mean) * inv_std * scale + bias as `per_thread` in
// layernorm.wgsl, but every buffer is read and written as vec4<f32>, and mean and variance come
// from one Welford pass (1.07-1.17x the centred two-pass form here, which reads the row again).
// On llvmpipe each storage-buffer access compiles to a per-lane loop whose cost barely depends on
// the access width, so moving 4 values per access cuts the row loops' cost about 4x. A separate
// module (not a second entry point of layernorm.wgsl) so no binding is declared with two element
// types in one shader.
// One invocation per row (llvmpipe's best split, see chooseRowStrategy); float16 rows, whose
// results must be rounded to half, and other widths use layernorm.wgsl.

override WG: u32 = 64u;

struct Params {
  rows: u32,
  // Row length, scale and bias counts in vec4s (bias_count = 0: no bias).
  n4: u32,
  scale_count4: u32,
  bias_count4: u32,
  epsilon: f32,
  // Bit 0: write mean_out, bit 1: write inv_std_out.
  write_stats: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> scale: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> inv_std_out: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn per_thread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= params.rows) { return; }
  let n4 = params.n4;
  let n = f32(4u * n4);
  let base = row * n4;
  // One pass for mean and variance: Welford's update per component (four running means and
  // sums of squared deviations, each over n4 values), merged with Chan's formula. As stable as a
  // centred second pass, and it saves one read of the row, which is what this kernel costs.
  var mean4 = vec4<f32>(0.0);
  var m2 = vec4<f32>(0.0);
  for (var k = 0u; k < n4; k++) {
    let v = x[base + k];
    let delta = v - mean4;
    mean4 += delta / f32(k + 1u);
    m2 += delta * (v - mean4);
  }
  let mean = dot(mean4, vec4<f32>(0.25));
  let spread = mean4 - mean;
  let variance = (dot(m2, vec4<f32>(1.0)) + f32(n4) * dot(spread, spread)) / n;
  let inv_std = 1.0 / sqrt(variance + params.epsilon);
  var ks = 0u;
  var kb = 0u;
  for (var k = 0u; k < n4; k++) {
    var r = (x[base + k] - mean) * inv_std * scale[ks];
    if (params.bias_count4 > 0u) {
      r += bias[kb];
      kb++;
      if (kb == params.bias_count4) { kb = 0u; }
    }
    y[base + k] = r;
    ks++;
    if (ks == params.scale_count4) { ks = 0u; }
  }
  if ((params.write_stats & 1u) != 0u) { mean_out[row] = mean; }
  if ((params.write_stats & 2u) != 0u) { inv_std_out[row] = inv_std; }
}
