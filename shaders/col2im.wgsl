// Col2Im: Y[n, c, p] = sum of X[n, c * K + k, b] over kernel offsets k and sliding blocks b
// whose position b * stride - pad + k * dilation is p (1-3 image axes, run as 3-D with unit
// leading axes). Written as a gather (one invocation per image position, visiting its kernel
// offsets and solving for the block) so no two invocations add into one output.

struct Params {
  image: vec4<u32>, // D, H, W, D*H*W
  kernel: vec4<u32>, // KD, KH, KW, K
  blocks: vec4<u32>, // blocks along D, H, W; L
  stride: vec4<u32>,
  dilation: vec4<u32>,
  pad_begin: vec4<u32>,
  count: u32, // N * C * D*H*W
}

override WG: u32 = 64u;
override ROUND_F16: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

//#include "lib/f16.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.count) {
    return;
  }
  let plane = i / params.image.w;
  let s = i % params.image.w;
  let p = vec3<i32>(
    i32(s / (params.image.y * params.image.z)),
    i32((s / params.image.z) % params.image.y),
    i32(s % params.image.z),
  );
  let q0 = p + vec3<i32>(params.pad_begin.xyz);
  let stride = vec3<i32>(params.stride.xyz);
  let dil = vec3<i32>(params.dilation.xyz);
  let blocks = vec3<i32>(params.blocks.xyz);
  let base = plane * params.kernel.w * params.blocks.w;
  var sum = 0.0;
  for (var a = 0; a < i32(params.kernel.x); a++) {
    let qd = q0.x - a * dil.x;
    if (qd < 0 || qd % stride.x != 0 || qd / stride.x >= blocks.x) {
      continue;
    }
    for (var b = 0; b < i32(params.kernel.y); b++) {
      let qh = q0.y - b * dil.y;
      if (qh < 0 || qh % stride.y != 0 || qh / stride.y >= blocks.y) {
        continue;
      }
      for (var c = 0; c < i32(params.kernel.z); c++) {
        let qw = q0.z - c * dil.z;
        if (qw < 0 || qw % stride.z != 0 || qw / stride.z >= blocks.z) {
          continue;
        }
        let k = u32((a * i32(params.kernel.y) + b) * i32(params.kernel.z) + c);
        let col = u32(((qd / stride.x) * blocks.y + qh / stride.y) * blocks.z + qw / stride.z);
        sum += x[base + k * params.blocks.w + col];
      }
    }
  }
  if (ROUND_F16) {
    sum = round_f16(sum);
  }
  y[i] = sum;
}
