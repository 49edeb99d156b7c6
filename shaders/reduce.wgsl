// Reduction of a tensor over any set of axes: Sum, Mean, Max, Min, Prod, L1, L2, SumSquare,
// LogSum and LogSumExp, selected by the `OP` override.
//
// The host coalesces the input shape into "kept" dims (the output, row-major) and "reduced"
// dims, each with its stride in the input, so one pipeline serves every shape and axis set:
//   x offset = kept_offset(output index) + red_offset(reduced index).
// Two ways to share out the work, chosen on the host by size:
//  - `per_output`: one invocation per output element loops over its reduced elements (the
//    innermost reduced dim without index arithmetic). Right when there are many outputs; for a
//    reduction over a leading axis neighbouring invocations read neighbouring elements.
//  - `per_row`: one workgroup per output element; its invocations stride over the reduced
//    elements and the partial results meet in a tree in workgroup memory. Right when few
//    outputs each reduce many elements (and more accurate for long sums: pairwise, not serial).
// An empty reduced set (red_count = 0) yields the identity: 0 for sums, 1 for Prod, -inf for
// Max/LogSum/LogSumExp, +inf for Min.
//
// Placeholders: {{T}} is the element type (f32, i32 or u32 for bool); {{A}} the accumulator
// type, which the host makes f32 whenever the op needs a log, exp or square root.

const OP_SUM: u32 = 0u;
const OP_MEAN: u32 = 1u;
const OP_MAX: u32 = 2u;
const OP_MIN: u32 = 3u;
const OP_PROD: u32 = 4u;
const OP_L1: u32 = 5u;
const OP_L2: u32 = 6u;
const OP_SUM_SQUARE: u32 = 7u;
const OP_LOG_SUM: u32 = 8u;
const OP_LOG_SUM_EXP: u32 = 9u;

override OP: u32 = OP_SUM;
override WG: u32 = 64u;
// Round float results to half precision (float16 tensors are stored as f32).
override ROUND_F16: bool = false;
override FLOAT_ACC: bool = true; // {{A}} is f32: max/min propagate NaN

struct Params {
  out_count: u32,
  red_count: u32,
  kept_rank: u32,
  red_rank: u32,
  // Bits of the accumulator's identity for OP (0, 1, -inf, +inf, INT_MIN, ...).
  identity: u32,
  // Bits of the identity of Max (LogSumExp's first pass looks for the maximum).
  max_identity: u32,
  kept_shape: array<vec4<u32>, 2>,
  kept_strides: array<vec4<u32>, 2>,
  red_shape: array<vec4<u32>, 2>,
  red_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{T}}>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> partial: array<{{A}}, WG>;

fn dim(v: array<vec4<u32>, 2>, i: u32) -> u32 {
  return v[i / 4u][i % 4u];
}

/// Input offset of the first element reduced into output `o`.
fn kept_offset(o: u32) -> u32 {
  var rem = o;
  var off = 0u;
  for (var d = i32(params.kept_rank) - 1; d >= 0; d--) {
    let size = dim(params.kept_shape, u32(d));
    off += (rem % size) * dim(params.kept_strides, u32(d));
    rem /= size;
  }
  return off;
}

/// Offset of reduced element `r`, row-major over the reduced dims 0..last-1, relative to the
/// output's first element (`last` = red_rank - 1 leaves the innermost dim to the caller's loop).
fn red_offset(r: u32, last: u32) -> u32 {
  if (last == 1u) { return r * params.red_strides[0].x; } // the usual case: no division
  var rem = r;
  var off = 0u;
  for (var d = i32(last) - 1; d >= 0; d--) {
    let size = dim(params.red_shape, u32(d));
    off += (rem % size) * dim(params.red_strides, u32(d));
    rem /= size;
  }
  return off;
}

/// What one element contributes (LogSumExp's second pass: exp relative to the maximum `m`).
fn contribution(v: {{T}}, m: f32) -> {{A}} {
  let a = {{A}}(v);
  switch OP {
    case OP_L1: { return abs(a); }
    case OP_L2, OP_SUM_SQUARE: { return a * a; }
    case OP_LOG_SUM_EXP: { return {{A}}(exp(f32(v) - m)); }
    default: { return a; }
  }
}

// WGSL leaves min/max of a NaN to the implementation; ONNX (numpy) and PyTorch propagate it.
//#include "lib/nan.wgsl"

/// max/min that return a NaN operand (float accumulators only: integer bits are never NaN).
fn pick(is_max: bool, a: {{A}}, b: {{A}}) -> {{A}} {
  if (FLOAT_ACC) {
    if (is_nan(bitcast<f32>(a))) { return a; }
    if (is_nan(bitcast<f32>(b))) { return b; }
  }
  return select(min(a, b), max(a, b), is_max);
}

fn combine(op: u32, a: {{A}}, b: {{A}}) -> {{A}} {
  switch op {
    case OP_MAX: { return pick(true, a, b); }
    case OP_MIN: { return pick(false, a, b); }
    case OP_PROD: { return a * b; }
    default: { return a + b; }
  }
}

//#include "lib/f16.wgsl"

/// The output value from the accumulated `acc` (and LogSumExp's maximum `m`).
fn finish(acc: {{A}}, m: f32) -> {{T}} {
  var r = f32(acc);
  switch OP {
    case OP_MEAN: { r = f32(acc) / f32(params.red_count); }
    case OP_L2: { r = sqrt(f32(acc)); }
    case OP_LOG_SUM: { r = log(f32(acc)); }
    case OP_LOG_SUM_EXP: {
      // All elements -inf (or one +inf): the maximum is the answer (avoids inf - inf).
      if (abs(m) > 3.4028234e38) { r = m; } else { r = log(f32(acc)) + m; }
    }
    default: {
      // Integer and bool results keep the exact accumulator.
      if (!ROUND_F16) { return {{T}}(acc); }
    }
  }
  if (ROUND_F16) { r = round_f16(r); }
  return {{T}}(r);
}

/// Serial reduction of the elements of output `o` with `op`, in `contribution` form.
fn reduce_serial(op: u32, base: u32, init: {{A}}, m: f32) -> {{A}} {
  var acc = init;
  let last = params.red_rank - 1u;
  let inner = dim(params.red_shape, last);
  let inner_stride = dim(params.red_strides, last);
  if (inner == 0u) { return acc; }
  let outer = params.red_count / inner;
  for (var ro = 0u; ro < outer; ro++) {
    let start = base + red_offset(ro, last);
    for (var i = 0u; i < inner; i++) {
      let v = x[start + i * inner_stride];
      if (op == OP_MAX) {
        acc = pick(true, acc, {{A}}(v));
      } else {
        acc = combine(op, acc, contribution(v, m));
      }
    }
  }
  return acc;
}

@compute @workgroup_size(WG)
fn per_output(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= params.out_count) { return; }
  let base = kept_offset(o);
  var m = 0.0;
  if (OP == OP_LOG_SUM_EXP) {
    m = f32(reduce_serial(OP_MAX, base, bitcast<{{A}}>(params.max_identity), 0.0));
  }
  let acc = reduce_serial(OP, base, bitcast<{{A}}>(params.identity), m);
  y[o] = finish(acc, m);
}

/// Tree reduction of `partial` (WG values, WG a power of two); the result lands in partial[0].
fn tree(op: u32, lid: u32) {
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] = combine(op, partial[lid], partial[lid + s]); }
    workgroupBarrier();
  }
}

/// This invocation's share (elements lid, lid + WG, ...) of the reduction of one output.
fn reduce_strided(op: u32, base: u32, lid: u32, init: {{A}}, m: f32) -> {{A}} {
  var acc = init;
  for (var r = lid; r < params.red_count; r += WG) {
    let v = x[base + red_offset(r, params.red_rank)];
    if (op == OP_MAX) {
      acc = pick(true, acc, {{A}}(v));
    } else {
      acc = combine(op, acc, contribution(v, m));
    }
  }
  return acc;
}

@compute @workgroup_size(WG)
fn per_row(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let o = wid.x + wid.y * nwg.x;
  if (o >= params.out_count) { return; }
  let base = kept_offset(o);
  var m = 0.0;
  if (OP == OP_LOG_SUM_EXP) {
    partial[lid] = reduce_strided(OP_MAX, base, lid, bitcast<{{A}}>(params.max_identity), 0.0);
    workgroupBarrier();
    tree(OP_MAX, lid);
    m = f32(partial[0]);
    workgroupBarrier();
  }
  partial[lid] = reduce_strided(OP, base, lid, bitcast<{{A}}>(params.identity), m);
  workgroupBarrier();
  tree(OP, lid);
  if (lid == 0u) { y[o] = finish(partial[0], m); }
}
