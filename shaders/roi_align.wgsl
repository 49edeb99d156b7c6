// RoiAlign: Y[r, c, i, j] = average (or max) of a grid of bilinear samples of
// X[batch_indices[r], c] inside bin (i, j) of region r, with onnxruntime's edge rules (a sample
// more than one pixel outside reads 0; others clamp to the last row/column).
//
// One invocation per output value. The sampling grid depends on the region (sampling_ratio 0
// makes it ceil(extent / bins)), so it is computed per invocation from the roi values.

struct Params {
  size: vec4<u32>, // N, C, H, W
  pooled: vec2<u32>, // output height, width
  count: u32, // R * C * output height * output width
  sampling_ratio: u32,
  spatial_scale: f32,
  status_slot: u32, // this dispatch's slot in `status` (src/gpu/status.ts)
}

override MAX: bool = false; // mode max; avg otherwise
override HALF_PIXEL: bool = true; // half_pixel; output_half_pixel otherwise
override WG: u32 = 64u;
override ROUND_F16: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rois: array<f32>;
@group(0) @binding(2) var<storage, read> batch_indices: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read_write> status: array<atomic<u32>>;

//#include "lib/f16.wgsl"

// The four bilinear terms w * x of the sample at (yy, xx) of plane `base`.
fn sample(base: u32, yy: f32, xx: f32) -> vec4<f32> {
  let height = f32(params.size.z);
  let width = f32(params.size.w);
  if (yy < -1.0 || yy > height || xx < -1.0 || xx > width) {
    return vec4<f32>(0.0);
  }
  var sy = max(yy, 0.0);
  var sx = max(xx, 0.0);
  var y_low = u32(sy);
  var x_low = u32(sx);
  var y_high = y_low + 1u;
  var x_high = x_low + 1u;
  if (y_low >= params.size.z - 1u) {
    y_low = params.size.z - 1u;
    y_high = y_low;
    sy = f32(y_low);
  }
  if (x_low >= params.size.w - 1u) {
    x_low = params.size.w - 1u;
    x_high = x_low;
    sx = f32(x_low);
  }
  let ly = sy - f32(y_low);
  let lx = sx - f32(x_low);
  let hy = 1.0 - ly;
  let hx = 1.0 - lx;
  let w = params.size.w;
  return vec4<f32>(
    hy * hx * x[base + y_low * w + x_low],
    hy * lx * x[base + y_low * w + x_high],
    ly * hx * x[base + y_high * w + x_low],
    ly * lx * x[base + y_high * w + x_high],
  );
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let item = gid.x + gid.y * nwg.x * WG;
  if (item >= params.count) {
    return;
  }
  let pw = params.pooled.y;
  let ph = params.pooled.x;
  let j = item % pw;
  let i = (item / pw) % ph;
  let ch = (item / (pw * ph)) % params.size.y;
  let r = item / (pw * ph * params.size.y);
  // An index outside the batch is reported in the status slot (the host raises it naming the
  // node) and clamped meanwhile so the reads stay inside X.
  let raw = batch_indices[r];
  if (raw < 0 || raw >= i32(params.size.x)) {
    atomicOr(&status[params.status_slot * 2u], 1u);
    atomicStore(&status[params.status_slot * 2u + 1u], bitcast<u32>(raw));
  }
  let b = u32(clamp(raw, 0, i32(params.size.x) - 1));
  let offset = select(0.0, 0.5, HALF_PIXEL);
  let start_w = rois[r * 4u] * params.spatial_scale - offset;
  let start_h = rois[r * 4u + 1u] * params.spatial_scale - offset;
  var roi_w = rois[r * 4u + 2u] * params.spatial_scale - offset - start_w;
  var roi_h = rois[r * 4u + 3u] * params.spatial_scale - offset - start_h;
  if (!HALF_PIXEL) {
    roi_w = max(roi_w, 1.0);
    roi_h = max(roi_h, 1.0);
  }
  let bin_h = roi_h / f32(ph);
  let bin_w = roi_w / f32(pw);
  var grid_h = params.sampling_ratio;
  var grid_w = params.sampling_ratio;
  if (params.sampling_ratio == 0u) {
    grid_h = u32(max(ceil(roi_h / f32(ph)), 0.0));
    grid_w = u32(max(ceil(roi_w / f32(pw)), 0.0));
  }
  let base = (b * params.size.y + ch) * params.size.z * params.size.w;
  var acc = 0.0;
  var first = true;
  for (var iy = 0u; iy < grid_h; iy++) {
    let yy = start_h + f32(i) * bin_h + (f32(iy) + 0.5) * bin_h / f32(grid_h);
    for (var ix = 0u; ix < grid_w; ix++) {
      let xx = start_w + f32(j) * bin_w + (f32(ix) + 0.5) * bin_w / f32(grid_w);
      let v = sample(base, yy, xx);
      if (MAX) {
        let m = max(max(v.x, v.y), max(v.z, v.w));
        acc = select(max(acc, m), m, first);
        first = false;
      } else {
        acc += v.x + v.y + v.z + v.w;
      }
    }
  }
  if (!MAX) {
    acc /= f32(max(grid_h * grid_w, 1u));
  }
  if (ROUND_F16) {
    acc = round_f16(acc);
  }
  y[item] = acc;
}
