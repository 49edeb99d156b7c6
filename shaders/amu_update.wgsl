// AMU-Tuning: the head's weight gradient fused with its AdamW step. For W [C, D]:
//   g[c, k] = sum_{b < B} dz[b, c] * x[order[rowStart + b], k]     (x = normalised aux features)
// then PyTorch's AdamW (decoupled weight decay, bias correction), with the step's scalars from the
// step state (lr-derived values precomputed on the host in float64, rounded to float32):
//   w *= decay                                  (decay = 1 - lr * weight_decay)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g * g
//   w += -stepSize * m / (sqrt(v) / bc2Sqrt + eps)  (stepSize = lr / (1 - beta1^t),
//                                                    bc2Sqrt = sqrt(1 - beta2^t))
// Fusing the two means the gradient is never written to memory and read back. Each invocation
// owns a block of 4 x 4 (main_4x4) or 8 x 8 (main_8x8) weights, classes x dims: per batch row it
// loads one vec4 of dz per 4 classes and one vec4 of x per 4 dims (the row gathered straight from
// the permutation buffer) and accumulates their outer product in registers, then updates the
// block's weights and moments with vec4 loads and stores. Blocks are written out, not looped over
// (register arrays that are not unrolled live in memory). When D (or C) is not divisible by 4 the
// same vec4 arrays are read one value at a time (X_VEC / DZ_VEC false). Each gradient is a
// sequential sum over the batch in row order (deterministic); every weight is read and written by
// exactly one invocation. Buffers must be a multiple of 16 bytes.

//#include "lib/step_state.wgsl"

struct Params {
  classes: u32,
  dim: u32,
  classTiles: u32,
  dimTiles: u32,
  beta1: f32,
  beta2: f32,
  oneMinusBeta1: f32,
  oneMinusBeta2: f32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read> state: StepState;
@group(0) @binding(1) var<storage, read> order: array<i32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> dz: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(7) var<uniform> params: Params;

override WG: u32 = 64u;
// D % 4 == 0: rows of x, W, m, v read as vec4 along the feature dimension.
override X_VEC: bool = true;
// C % 4 == 0: rows of dz read as vec4 along classes.
override DZ_VEC: bool = true;

// x[row, k .. k + 3] (zero past D).
fn loadX(base: u32, k: u32) -> vec4<f32> {
  let D = params.dim;
  if (X_VEC) {
    return x[(base + min(k, D - 4u)) >> 2u];
  }
  let last = base + D - 1u;
  let kv = vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u);
  let i = min(vec4<u32>(base) + kv, vec4<u32>(last));
  let val = vec4<f32>(x[i.x >> 2u][i.x & 3u], x[i.y >> 2u][i.y & 3u], x[i.z >> 2u][i.z & 3u],
    x[i.w >> 2u][i.w & 3u]);
  return select(vec4<f32>(0.0), val, kv < vec4<u32>(D));
}

// dz[b, c .. c + 3] (classes clamped; the clamped ones are never stored).
fn loadDz(b: u32, c: u32) -> vec4<f32> {
  let C = params.classes;
  if (DZ_VEC) {
    return dz[(b * C + min(c, C - 4u)) >> 2u];
  }
  let i = vec4<u32>(b * C) + min(vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(C - 1u));
  return vec4<f32>(dz[i.x >> 2u][i.x & 3u], dz[i.y >> 2u][i.y & 3u], dz[i.z >> 2u][i.z & 3u],
    dz[i.w >> 2u][i.w & 3u]);
}

fn adamVec(wv: vec4<f32>, mv: vec4<f32>, vv: vec4<f32>, g: vec4<f32>) -> mat3x4<f32> {
  let mt = params.beta1 * mv + params.oneMinusBeta1 * g;
  let vt = params.beta2 * vv + params.oneMinusBeta2 * (g * g);
  let denom = sqrt(vt) / state.bc2Sqrt + params.eps;
  let wt = wv * state.decay + (-state.stepSize) * (mt / denom);
  return mat3x4<f32>(wt, mt, vt);
}

// AdamW on W[c, k .. k + 3] with gradient g.
fn update(c: u32, k: u32, g: vec4<f32>) {
  let C = params.classes;
  let D = params.dim;
  if (c >= C || k >= D) {
    return;
  }
  let base = c * D + k;
  if (X_VEC) {
    let i = base >> 2u;
    let r = adamVec(w[i], m[i], v[i], g);
    w[i] = r[0];
    m[i] = r[1];
    v[i] = r[2];
    return;
  }
  for (var e = 0u; e < 4u; e++) {
    if (k + e < D) {
      let i = base + e;
      let q = i >> 2u;
      let s = i & 3u;
      let r = adamVec(vec4<f32>(w[q][s]), vec4<f32>(m[q][s]), vec4<f32>(v[q][s]), vec4<f32>(g[e]));
      w[q][s] = r[0].x;
      m[q][s] = r[1].x;
      v[q][s] = r[2].x;
    }
  }
}

struct Block {
  c0: u32,
  k0: u32,
  ok: bool,
}

fn blockOf(gid: vec3<u32>, nwg: vec3<u32>, tc: u32, tk: u32) -> Block {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.classTiles * params.dimTiles) {
    return Block(0u, 0u, false);
  }
  return Block((t / params.dimTiles) * tc, (t % params.dimTiles) * tk, true);
}

@compute @workgroup_size(WG)
fn main_4x4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let blk = blockOf(gid, nwg, 4u, 4u);
  if (!blk.ok) {
    return;
  }
  let D = params.dim;
  // g<i>: gradient of class c0 + i at dims k0 .. k0 + 3.
  var g0 = vec4<f32>(0.0);
  var g1 = vec4<f32>(0.0);
  var g2 = vec4<f32>(0.0);
  var g3 = vec4<f32>(0.0);
  let count = state.rowCount;
  for (var b = 0u; b < count; b++) {
    let xb = loadX(u32(order[state.rowStart + b]) * D, blk.k0);
    let d = loadDz(b, blk.c0);
    g0 += d.x * xb;
    g1 += d.y * xb;
    g2 += d.z * xb;
    g3 += d.w * xb;
  }
  update(blk.c0, blk.k0, g0);
  update(blk.c0 + 1u, blk.k0, g1);
  update(blk.c0 + 2u, blk.k0, g2);
  update(blk.c0 + 3u, blk.k0, g3);
}

@compute @workgroup_size(WG)
fn main_8x8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let blk = blockOf(gid, nwg, 8u, 8u);
  if (!blk.ok) {
    return;
  }
  let D = params.dim;
  // g<i><j>: gradient of class c0 + i at dims k0 + 4j .. + 3.
  var g00 = vec4<f32>(0.0);
  var g01 = vec4<f32>(0.0);
  var g10 = vec4<f32>(0.0);
  var g11 = vec4<f32>(0.0);
  var g20 = vec4<f32>(0.0);
  var g21 = vec4<f32>(0.0);
  var g30 = vec4<f32>(0.0);
  var g31 = vec4<f32>(0.0);
  var g40 = vec4<f32>(0.0);
  var g41 = vec4<f32>(0.0);
  var g50 = vec4<f32>(0.0);
  var g51 = vec4<f32>(0.0);
  var g60 = vec4<f32>(0.0);
  var g61 = vec4<f32>(0.0);
  var g70 = vec4<f32>(0.0);
  var g71 = vec4<f32>(0.0);
  let count = state.rowCount;
  for (var b = 0u; b < count; b++) {
    let base = u32(order[state.rowStart + b]) * D;
    let x0 = loadX(base, blk.k0);
    let x1 = loadX(base, blk.k0 + 4u);
    let d0 = loadDz(b, blk.c0);
    let d1 = loadDz(b, blk.c0 + 4u);
    g00 += d0.x * x0;
    g01 += d0.x * x1;
    g10 += d0.y * x0;
    g11 += d0.y * x1;
    g20 += d0.z * x0;
    g21 += d0.z * x1;
    g30 += d0.w * x0;
    g31 += d0.w * x1;
    g40 += d1.x * x0;
    g41 += d1.x * x1;
    g50 += d1.y * x0;
    g51 += d1.y * x1;
    g60 += d1.z * x0;
    g61 += d1.z * x1;
    g70 += d1.w * x0;
    g71 += d1.w * x1;
  }
  let c = blk.c0;
  let k0 = blk.k0;
  let k1 = blk.k0 + 4u;
  update(c, k0, g00);
  update(c, k1, g01);
  update(c + 1u, k0, g10);
  update(c + 1u, k1, g11);
  update(c + 2u, k0, g20);
  update(c + 2u, k1, g21);
  update(c + 3u, k0, g30);
  update(c + 3u, k1, g31);
  update(c + 4u, k0, g40);
  update(c + 4u, k1, g41);
  update(c + 5u, k0, g50);
  update(c + 5u, k1, g51);
  update(c + 6u, k0, g60);
  update(c + 6u, k1, g61);
  update(c + 7u, k0, g70);
  update(c + 7u, k1, g71);
}
