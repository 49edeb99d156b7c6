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

// Nearest float16 value (ties to even) of v, as f32, by integer arithmetic on the bits (same as
// shaders/binary.wgsl).
fn round_f16(v: f32) -> f32 {
  let bits = bitcast<u32>(v);
  let sign = bits & 0x80000000u;
  let mag = bits & 0x7fffffffu;
  if (mag >= 0x7f800000u) {
    return v;
  }
  if (mag >= 0x477ff000u) {
    return bitcast<f32>(sign | 0x7f800000u);
  }
  if (mag < 0x38800000u) {
    let q = round(abs(v) * 16777216.0) / 16777216.0;
    return bitcast<f32>(sign | bitcast<u32>(q));
  }
  let lsb = (mag >> 13u) & 1u;
  return bitcast<f32>(sign | ((mag + 0xfffu + lsb) & 0xffffe000u));
}

// v in the output's precision: float16 outputs are stored rounded to half (see DType).
fn finish(v: {{T}}) -> {{T}} {
  if (ROUND_F16) {
    return {{T}}(round_f16(f32(v)));
  }
  return v;
}

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
