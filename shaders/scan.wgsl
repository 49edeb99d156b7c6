// Kernels that walk whole lines along one axis: x viewed as [outer, n, inner], one invocation
// per line (outer * inner of them), its n elements `inner` apart. Lines are short in the models
// that use these ops (sequence positions, class scores), so a serial walk is simplest and exact.
//
// `cumsum` (CumSum): running sum along the line; EXCLUSIVE leaves the current element out,
// REVERSE runs from the end. {{T}} is f32 or i32; ROUND_F16 rounds every partial sum of a
// float16 tensor to half.
// `hardmax` (Hardmax): 1 at the line's first maximum, 0 elsewhere.

struct Params {
  lines: u32,
  n: u32,
  inner: u32,
}

@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> out: array<{{T}}>;
@group(0) @binding(2) var<uniform> params: Params;

override WG: u32 = 64u;
override EXCLUSIVE: bool = false;
override REVERSE: bool = false;
override ROUND_F16: bool = false;

//#include "lib/f16_finish.wgsl"

// Offset of the line's first element.
fn line_base(t: u32) -> u32 {
  return (t / params.inner) * params.n * params.inner + t % params.inner;
}

@compute @workgroup_size(WG)
fn cumsum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.lines) {
    return;
  }
  let base = line_base(t);
  var acc = {{T}}(0);
  for (var m = 0u; m < params.n; m++) {
    var i = m;
    if (REVERSE) {
      i = params.n - 1u - m;
    }
    let at = base + i * params.inner;
    let v = x[at];
    // Each partial sum is rounded as float16 arithmetic would round it.
    if (EXCLUSIVE) {
      out[at] = acc;
      acc = finish(acc + v);
    } else {
      acc = finish(acc + v);
      out[at] = acc;
    }
  }
}

@compute @workgroup_size(WG)
fn hardmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.lines) {
    return;
  }
  let base = line_base(t);
  var best = 0u;
  var best_v = x[base];
  for (var m = 1u; m < params.n; m++) {
    let v = x[base + m * params.inner];
    if (v > best_v) {
      best = m;
      best_v = v;
    }
  }
  for (var m = 0u; m < params.n; m++) {
    out[base + m * params.inner] = select({{T}}(0), {{T}}(1), m == best);
  }
}
