// Fills the first `count` 32-bit words of a buffer with one bit pattern (zeroing accumulators,
// ConstantOfShape, padding values). Works for f32, i32 and u32 tensors alike.

struct Params {
  count: u32,
  bits: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < params.count) {
    out[i] = params.bits;
  }
}
