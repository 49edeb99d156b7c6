// MaxUnpool: Y = 0, then Y[I[k]] = X[k] for every element k of X. I holds flat positions in the
// tensor of the inferred shape [NC, D, H, W]; with an explicit (larger) output shape that tensor
// sits at Y's origin, so each position is re-flattened with Y's spatial lengths.
//
// Y is zeroed first (fill.wgsl); then one invocation per element of X moves it. Values are
// copied as raw 32-bit words, exact for every dtype. Indices from MaxPool repeat only where
// windows overlap, and a repeated index then carries the same value, so concurrent writes agree
// (other repeats race: the reference's last write is not guaranteed). Indices outside the
// tensor are skipped and reported in the status slot (the host raises them naming the node).

struct Params {
  inferred: vec4<u32>, // D, H, W, NC*D*H*W (1-3 spatial axes as 3-D with unit leading axes)
  shape: vec4<u32>, // Y's D, H, W
  in_count: u32,
  status_slot: u32, // this dispatch's slot in `status` (src/gpu/status.ts)
}

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> indices: array<i32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = gid.x + gid.y * nwg.x * WG;
  if (k >= params.in_count) {
    return;
  }
  let i = indices[k];
  if (i < 0 || u32(i) >= params.inferred.w) {
    atomicOr(&status[params.status_slot * 2u], 1u);
    atomicStore(&status[params.status_slot * 2u + 1u], bitcast<u32>(i));
    return;
  }
  let f = params.inferred;
  let s = params.shape;
  let w = u32(i) % f.z;
  let h = (u32(i) / f.z) % f.y;
  let d = (u32(i) / (f.z * f.y)) % f.x;
  let nc = u32(i) / (f.z * f.y * f.x);
  y[((nc * s.x + d) * s.y + h) * s.z + w] = x[k];
}
