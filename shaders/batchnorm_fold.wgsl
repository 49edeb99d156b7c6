// Batch normalization's parameters folded into the affine map batchnorm.wgsl applies:
//   scale' = scale / sqrt(var + eps), shift' = B - mean * scale',
// for parameters computed on the GPU (the host folds constant ones once instead).

struct Params {
  count: u32, // parameters
  epsilon: f32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> scale: array<f32>;
@group(0) @binding(1) var<storage, read> shift: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> variance: array<f32>;
// [scale' (count), shift' (count)]
@group(0) @binding(4) var<storage, read_write> folded: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// One invocation per parameter.
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.count) {
    return;
  }
  let a = scale[i] / sqrt(variance[i] + params.epsilon);
  folded[i] = a;
  folded[params.count + i] = shift[i] - mean[i] * a;
}
