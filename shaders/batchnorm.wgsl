// Inference batch normalization as a per-parameter affine map:
//   Y[i] = X[i] * scale'[p] + shift'[p],  p = (i / inner) % params,
// with scale' = scale / sqrt(var + eps) and shift' = B - mean * scale' (folded once: by the host
// when the parameters are constants, else by batchnorm_fold.wgsl on every run).
//
// `main` gives each invocation a run of RUN consecutive elements of one row (one (n, parameter)
// pair), so the two parameter loads are shared by the run: storage loads are the cost on CPU
// adapters, and a run of 4 nearly halves them.

struct Params {
  rows: u32, // N * params
  inner: u32, // elements per row (spatial size, or 1)
  params: u32,
  runs_per_row: u32, // ceil(inner / RUN)
}

const RUN: u32 = 4u;
override WG: u32 = 64u;
override ROUND_F16: bool = false; // float16 output: round to half precision (stored as f32)

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> affine: array<f32>; // [scale' (params), shift' (params)]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//#include "lib/f16.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.rows * params.runs_per_row) {
    return;
  }
  let row = t / params.runs_per_row;
  let first = (t % params.runs_per_row) * RUN;
  let p = row % params.params;
  let a = affine[p];
  let b = affine[params.params + p];
  let base = row * params.inner;
  for (var j = 0u; j < RUN; j++) {
    if (first + j < params.inner) {
      var v = x[base + first + j] * a + b;
      if (ROUND_F16) {
        v = round_f16(v);
      }
      y[base + first + j] = v;
    }
  }
}
