// GridSample: Y[n, c, p] = interpolation of X[n, c] at the input coordinate that grid[n, p]
// gives in normalised [-1, 1] units (x, y(, z) order: the last spatial axis first).
//
// 1-3 spatial axes, run as 3-D with unit leading axes (a unit axis has one tap of weight 1).
// Each axis resolves its own taps (nearest 1, linear 2, cubic 4 positions and weights, with the
// padding mode applied to the coordinate and then to every tap, as the ONNX reference does); the
// N-d value is the sum over the product of the axes' taps. One invocation per (n, output point):
// the grid is read and the taps are resolved once, then reused for every channel.

struct Params {
  in_size: vec4<u32>, // D, H, W, D*H*W
  batch: u32,
  channels: u32,
  out_plane: u32, // output points per (n, c)
  work: u32, // batch * out_plane
}

// 0 nearest, 1 linear, 2 cubic.
override MODE: u32 = 1u;
// 0 zeros, 1 border, 2 reflection.
override PADDING: u32 = 0u;
override ALIGN_CORNERS: bool = false;
// Spatial axes (1-3); the grid's last axis has RANK components.
override RANK: u32 = 2u;
override WG: u32 = 64u;
// Round results to half precision (float16 tensors are stored as f32).
override ROUND_F16: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> grid: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

struct Taps {
  index: vec4<i32>, // -1: outside the input (zeros padding), contributes nothing
  weight: vec4<f32>,
  count: u32,
}

//#include "lib/f16.wgsl"

fn reflect(v: f32, lo: f32, hi: f32) -> f32 {
  let range = hi - lo;
  if (range <= 0.0) {
    return lo;
  }
  if (v < lo) {
    let dx = lo - v;
    let n = trunc(dx / range);
    let r = dx - n * range;
    return select(hi - r, lo + r, (u32(n) & 1u) == 0u);
  }
  if (v > hi) {
    let dx = v - hi;
    let n = trunc(dx / range);
    let r = dx - n * range;
    return select(lo + r, hi - r, (u32(n) & 1u) == 0u);
  }
  return v;
}

// Input position of tap i under the padding mode.
fn tap_at(i: i32, len: u32, lo: f32, hi: f32) -> i32 {
  let last = i32(len) - 1;
  if (PADDING == 0u) {
    return select(-1, i, i >= 0 && i <= last);
  }
  if (PADDING == 1u) {
    return clamp(i, 0, last);
  }
  return i32(trunc(reflect(f32(i), lo, hi)));
}

fn cubic(t: f32) -> vec4<f32> {
  let a = -0.75;
  let s = abs(t);
  return vec4<f32>(
    ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a,
    ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
    ((a + 2.0) * (1.0 - s) - (a + 3.0)) * (1.0 - s) * (1.0 - s) + 1.0,
    ((a * (2.0 - s) - 5.0 * a) * (2.0 - s) + 8.0 * a) * (2.0 - s) - 4.0 * a,
  );
}

fn axis_taps(g: f32, len: u32) -> Taps {
  let n = f32(len);
  var lo = -0.5;
  var hi = n - 0.5;
  var v = ((g + 1.0) * n - 1.0) * 0.5;
  if (ALIGN_CORNERS) {
    lo = 0.0;
    hi = n - 1.0;
    v = (g + 1.0) * 0.5 * (n - 1.0);
  }
  if (MODE == 0u) {
    v = round(v); // WGSL rounds half to even, as numpy's rint
  }
  if (v < lo || v > hi) {
    if (PADDING == 1u) {
      v = clamp(v, 0.0, n - 1.0);
    } else if (PADDING == 2u) {
      v = reflect(v, lo, hi);
    }
  }
  var t: Taps;
  if (MODE == 0u) {
    t.index = vec4<i32>(tap_at(i32(trunc(v)), len, lo, hi), -1, -1, -1);
    t.weight = vec4<f32>(1.0, 0.0, 0.0, 0.0);
    t.count = 1u;
    return t;
  }
  let f = floor(v);
  let x0 = i32(f);
  let frac = v - f;
  if (MODE == 1u) {
    t.index = vec4<i32>(tap_at(x0, len, lo, hi), tap_at(x0 + 1, len, lo, hi), -1, -1);
    t.weight = vec4<f32>(1.0 - frac, frac, 0.0, 0.0);
    t.count = 2u;
    return t;
  }
  t.index = vec4<i32>(
    tap_at(x0 - 1, len, lo, hi),
    tap_at(x0, len, lo, hi),
    tap_at(x0 + 1, len, lo, hi),
    tap_at(x0 + 2, len, lo, hi),
  );
  t.weight = cubic(frac);
  t.count = 4u;
  return t;
}

fn unit_taps() -> Taps {
  var t: Taps;
  t.index = vec4<i32>(0, -1, -1, -1);
  t.weight = vec4<f32>(1.0, 0.0, 0.0, 0.0);
  t.count = 1u;
  return t;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let item = gid.x + gid.y * nwg.x * WG;
  if (item >= params.work) {
    return;
  }
  let b = item / params.out_plane;
  let p = item - b * params.out_plane;
  let g = item * RANK;
  // Padded axis a (0 = D) is real when a >= 3 - RANK and reads grid component 2 - a.
  var taps: array<Taps, 3>;
  for (var a = 0u; a < 3u; a++) {
    if (a + RANK >= 3u) {
      taps[a] = axis_taps(grid[g + 2u - a], params.in_size[a]);
    } else {
      taps[a] = unit_taps();
    }
  }
  let hw = params.in_size.y * params.in_size.z;
  for (var ch = 0u; ch < params.channels; ch++) {
    let base = (b * params.channels + ch) * params.in_size.w;
    var sum = 0.0;
    for (var i = 0u; i < taps[0].count; i++) {
      let d = taps[0].index[i];
      if (d < 0) {
        continue;
      }
      for (var j = 0u; j < taps[1].count; j++) {
        let h = taps[1].index[j];
        if (h < 0) {
          continue;
        }
        let wdh = taps[0].weight[i] * taps[1].weight[j];
        let row = base + u32(d) * hw + u32(h) * params.in_size.z;
        for (var k = 0u; k < taps[2].count; k++) {
          let w = taps[2].index[k];
          if (w < 0) {
            continue;
          }
          sum += wdh * taps[2].weight[k] * x[row + u32(w)];
        }
      }
    }
    if (ROUND_F16) {
      sum = round_f16(sum);
    }
    y[(b * params.channels + ch) * params.out_plane + p] = sum;
  }
}
