// Multinomial logistic regression (the linear-probe baseline): per-row loss and logit gradient,
// and the weight gradient, for rows x [N, depth] (features with a trailing 1 for the bias),
// weights W [K, depth] and labels y. The logits z = x @ W^T come from amu_logits.
//
// `rows` (one invocation per row; K is at most a few thousand): the row's cross-entropy
//   loss = log(sum exp(z - max z)) - (z[y] - max z)
// and, in place of z, its gradient softmax(z) - onehot(y). One invocation per row keeps every sum
// in a fixed order (deterministic), and a row's K values are read twice at most.
//
// `weight_grad` (one invocation per weight): g[c, k] = sum over rows i of G[i, c] * x[i, k], a fixed-order
// sum over the rows. The host scales it by the inverse regularisation C and adds the penalty's
// gradient (float64), so the kernel does no arithmetic beyond the contraction.

struct Params {
  rows: u32,
  classes: u32,
  depth: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read_write> z: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(3) var<uniform> rowParams: Params;

@compute @workgroup_size(WG)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= rowParams.rows) {
    return;
  }
  let K = rowParams.classes;
  let base = i * K;
  var m = z[base];
  for (var c = 1u; c < K; c++) {
    m = max(m, z[base + c]);
  }
  var s = 0.0;
  for (var c = 0u; c < K; c++) {
    s += exp(z[base + c] - m);
  }
  let y = u32(labels[i]);
  rowLoss[i] = log(s) - (z[base + y] - m);
  for (var c = 0u; c < K; c++) {
    z[base + c] = exp(z[base + c] - m) / s - select(0.0, 1.0, c == y);
  }
}

@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<uniform> gradParams: Params;

@compute @workgroup_size(WG)
fn weight_grad(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let t = gid.x + gid.y * nwg.x * WG;
  let K = gradParams.classes;
  let D = gradParams.depth;
  if (t >= K * D) {
    return;
  }
  let c = t / D;
  let k = t % D;
  var acc = 0.0;
  for (var i = 0u; i < gradParams.rows; i++) {
    acc += g[i * K + c] * x[i * D + k];
  }
  grad[t] = acc;
}
