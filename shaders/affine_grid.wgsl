// AffineGrid: grid[n, p] = theta[n] @ [x, y(, z), 1], where (x, y(, z)) is output point p's
// normalised base coordinate (the last spatial axis first). 2-D and 3-D run as 3-D with a unit
// depth axis (RANK tells how many components are written). One invocation per output point.

struct Params {
  size: vec4<u32>, // D, H, W, D*H*W
  work: u32, // N * D*H*W
}

override RANK: u32 = 2u;
override ALIGN_CORNERS: bool = false;
override WG: u32 = 64u;
override ROUND_F16: bool = false;

@group(0) @binding(0) var<storage, read> theta: array<f32>;
@group(0) @binding(1) var<storage, read_write> grid: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

//#include "lib/f16.wgsl"

fn base_coordinate(i: u32, len: u32) -> f32 {
  if (ALIGN_CORNERS) {
    return select(-1.0 + 2.0 * f32(i) / f32(len - 1u), -1.0, len == 1u);
  }
  return -1.0 + f32(2u * i + 1u) / f32(len);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let item = gid.x + gid.y * nwg.x * WG;
  if (item >= params.work) {
    return;
  }
  let b = item / params.size.w;
  let p = item - b * params.size.w;
  let d = p / (params.size.y * params.size.z);
  let h = (p / params.size.z) % params.size.y;
  let w = p % params.size.z;
  let base = vec4<f32>(
    base_coordinate(w, params.size.z),
    base_coordinate(h, params.size.y),
    base_coordinate(d, params.size.x),
    1.0,
  );
  // In 2-D the homogeneous 1 is the third component of [x, y, 1].
  var point = base;
  if (RANK == 2u) {
    point = vec4<f32>(base.x, base.y, 1.0, 0.0);
  }
  let row_len = RANK + 1u;
  for (var r = 0u; r < RANK; r++) {
    let t = (b * RANK + r) * row_len;
    var s = 0.0;
    for (var k = 0u; k < row_len; k++) {
      s += theta[t + k] * point[k];
    }
    if (ROUND_F16) {
      s = round_f16(s);
    }
    grid[item * RANK + r] = s;
  }
}
