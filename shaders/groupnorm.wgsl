// Group normalization, and instance normalization as its case of one channel per group: X
// [N, C, ...spatial] is viewed as N * G rows of (C / G) * spatial contiguous values (a group's
// channels are adjacent), each row is normalised by its own mean and variance, and then every
// channel c gets its own affine map:
//   y = (x - mean[row]) * inv_std[row] * scale[p] + bias[p],  inv_std = 1 / sqrt(var + epsilon)
// with p = c / param_div: param_div = 1 for parameters per channel (InstanceNormalization,
// GroupNormalization since opset 21), C / G for parameters per group (GroupNormalization 18).
// Computed in f32 (ONNX stash_type = 1; float16 tensors are stored as f32 anyway).
//
// Three dispatches, so that every pass has parallelism whatever the row count: the rows are
// few and long in the models that use these ops (32 groups of a feature map), or many and short
// (instance planes of 4x4).
//  - `partials`: one invocation per chunk of CHUNK values of a row: the chunk's mean and its sum
//    of squared deviations (M2), two passes over the chunk (centred, rather than E[x^2] -
//    mean^2, which cancels catastrophically when |mean| >> std; see layernorm.wgsl; and with
//    the correction of the mean by the deviations' sum);
//  - `combine`: one invocation per row merges its chunks' (count, mean, M2) into the row's mean
//    and inv_std, as deviations from the first chunk's mean (which keeps that stability);
//  - `apply`: one invocation per run of RUN values of one channel plane, which shares the
//    statistics and parameter loads of the run (storage loads are the cost on CPU adapters; see
//    batchnorm.wgsl).
// (A workgroup per row with tree sums ran 1.7x slower than one invocation per row on llvmpipe
// even for 32 rows, and one invocation per row leaves a GPU idle: chunks suit both.)

struct Params {
  rows: u32, // N * G
  row_len: u32, // (C / G) * plane
  plane: u32, // values per channel (the spatial size)
  channels: u32, // C
  channels_per_group: u32, // C / G
  param_div: u32, // channels per parameter: 1 or C / G
  epsilon: f32,
  runs: u32, // ceil(plane / RUN): runs per channel plane
  chunks: u32, // ceil(row_len / CHUNK): chunks per row
}

const RUN: u32 = 4u;
override WG: u32 = 64u;
override CHUNK: u32 = 256u; // values per invocation of `partials`
override ROUND_F16: bool = false; // float16 output: round to half precision (stored as f32)

// Bindings in the order that makes each entry point's a prefix (the host binds 0, 1, ...):
// `combine` uses 0-1, `partials` 0-2, `apply` all.
@group(0) @binding(0) var<uniform> params: Params;
// Per row: its mean at 2 * row and inv_std at 2 * row + 1 (written by `combine`); then per
// chunk, from 2 * rows on: its mean at 2 * (rows + row * chunks + chunk) and its M2 after it
// (written by `partials`).
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

//#include "lib/f16.wgsl"

@compute @workgroup_size(WG)
fn partials(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let t = gid.x + gid.y * nwg.x * WG;
  let chunks = params.chunks;
  if (t >= params.rows * chunks) {
    return;
  }
  let row = t / chunks;
  let first = (t % chunks) * CHUNK;
  let count = min(CHUNK, params.row_len - first);
  let base = row * params.row_len + first;
  var s = 0.0;
  for (var k = 0u; k < count; k++) {
    s += x[base + k];
  }
  let m0 = s / f32(count);
  // The corrected two-pass form: the deviations' own sum d1 fixes the first mean's rounding
  // (off by 1.5e-4 of the spread for 600 values of mean 100 summed in f32, which shifts
  // every output by as much), and M2 = sum d^2 - d1^2 / count is the centred sum about it.
  var d1 = 0.0;
  var d2 = 0.0;
  for (var k = 0u; k < count; k++) {
    let d = x[base + k] - m0;
    d1 += d;
    d2 += d * d;
  }
  let mean = m0 + d1 / f32(count);
  let m2 = max(d2 - d1 * d1 / f32(count), 0.0);
  let at = 2u * (params.rows + t);
  stats[at] = mean;
  stats[at + 1u] = m2;
}

@compute @workgroup_size(WG)
fn combine(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= params.rows) {
    return;
  }
  let chunks = params.chunks;
  let first = 2u * (params.rows + row * chunks); // the row's first chunk
  // Chunk means are summed as deviations from the first one, k0 (shifted data): the running
  // sums then stay at the scale of the spread, not of the mean, and rounding against a large
  // mean cannot build up over many chunks (a running-mean merge in f32 drifted by 1.6e-4 of the
  // spread over 600 chunks at mean 100).
  let k0 = stats[first];
  var n = 0.0;
  var s1 = 0.0; // sum of count * (chunk mean - k0)
  var s2 = 0.0; // sum of count * (chunk mean - k0)^2
  var m2 = 0.0; // sum of the chunks' M2
  for (var k = 0u; k < chunks; k++) {
    let nb = f32(min(CHUNK, params.row_len - k * CHUNK));
    let d = stats[first + 2u * k] - k0;
    s1 += nb * d;
    s2 += nb * d * d;
    m2 += stats[first + 2u * k + 1u];
    n += nb;
  }
  let shift = s1 / n;
  let mean = k0 + shift;
  // Total M2 = within-chunk M2 + between-chunk sum of count * (chunk mean - mean)^2.
  m2 += max(s2 - s1 * shift, 0.0);
  stats[2u * row] = mean;
  stats[2u * row + 1u] = 1.0 / sqrt(m2 / n + params.epsilon);
}

@compute @workgroup_size(WG)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  let planes = params.rows * params.channels_per_group; // N * C
  if (t >= planes * params.runs) {
    return;
  }
  let plane = t / params.runs; // n * C + c
  let first = (t % params.runs) * RUN;
  let row = plane / params.channels_per_group; // n * G + c / (C / G)
  let p = (plane % params.channels) / params.param_div;
  let mean = stats[2u * row];
  let a = stats[2u * row + 1u] * scale[p];
  let b = bias[p];
  let base = plane * params.plane;
  for (var j = 0u; j < RUN; j++) {
    if (first + j < params.plane) {
      var v = (x[base + first + j] - mean) * a + b;
      if (ROUND_F16) {
        v = round_f16(v);
      }
      y[base + first + j] = v;
    }
  }
}
