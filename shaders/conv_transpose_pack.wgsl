// Packs conv_transpose.wgsl's weights on the GPU, for weights that are not known at plan time
// (constant weights are packed once by the host, src/kernels/conv_transpose.ts): W [C, Mg, taps]
// -> vec4 ((g * taps + tap) * Cg + c) * MB + mb holding W[g*Cg + c, 4*mb + (0..3), tap], zero
// past Mg (see conv_transpose.wgsl's header).

struct Params {
  cg: u32,
  mg: u32,
  taps: u32,
  mb: u32, // channel blocks per group
  total: u32, // groups * taps * Cg * MB vec4s
}

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> w_src: array<f32>;
@group(0) @binding(1) var<storage, read_write> w_dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: Params;

// One invocation per packed vec4.
@compute @workgroup_size(WG)
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.total) {
    return;
  }
  let block = i % params.mb;
  var r = i / params.mb;
  let c = r % params.cg;
  r /= params.cg;
  let tap = r % params.taps;
  let g = r / params.taps;
  var v = vec4<f32>(0.0);
  for (var lane = 0u; lane < 4u; lane++) {
    let m = block * 4u + lane;
    if (m < params.mg) {
      v[lane] = w_src[((g * params.cg + c) * params.mg + m) * params.taps + tap];
    }
  }
  w_dst[i] = v;
}
