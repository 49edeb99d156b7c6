// AMU-Tuning: everything per row that follows the head's matmul, for training and evaluation.
//
// For a row with head logits z[0..C), CLIP logits l[0..C), uncertainty factor f and label y:
//   a     = (z - mean z) / std z                   (logit_normalize; std unbiased, n - 1)
//   fused = l + f * a * alpha
//   loss  = lambda * CE(fused, y) + (1 - lambda) * CE(a, y)         (batch mean taken later)
// `train` also computes the gradient of the batch-mean loss with respect to z,
//   g  = (lambda * (softmax(fused) - onehot(y)) * alpha * f + (1 - lambda) * (softmax(a) - onehot(y))) / B
//   dz = (g - mean g) / std z - a * sum(g * a) / ((C - 1) * std z)
// (the backward of the standardisation), which the weight-gradient kernel contracts with the
// batch's features. `eval` records both losses and whether the fused, auxiliary and zero-shot
// (CLIP-only) argmaxes hit the label.
//
// One workgroup per row: invocations own the classes c = lid + j * WG, fixed-order tree
// reductions in workgroup memory give the row's sums and maxima (deterministic, no atomics). Ties
// in an argmax go to the lowest class index, like torch.argmax. The training batch is gathered
// through the permutation buffer and its size read from the step state, so one prepared dispatch
// serves every step; rows past a partial batch compute on a clamped row and store nothing.

//#include "lib/step_state.wgsl"

// One uniform struct for every entry point; an entry point ignores the fields it does not name.
struct Params {
  classes: u32,
  // train: the batch's row capacity; eval, zeroshot: this chunk's rows; totals_main: all rows.
  rows: u32,
  // eval, zeroshot: the chunk's first row in the whole set.
  rowOffset: u32,
  alpha: f32,
  lambda: f32,
  // totals_main: where in `totals` the five sums go.
  outOffset: u32,
}

const WG: u32 = {{WG}}u;
const NEG_INF: f32 = -3.4028234663852886e38;

var<workgroup> redA: array<f32, WG>;
var<workgroup> redB: array<f32, WG>;
var<workgroup> redI: array<u32, WG>;
var<workgroup> redJ: array<u32, WG>;

fn sum2(lid: u32, x: f32, y: f32) -> vec2<f32> {
  redA[lid] = x;
  redB[lid] = y;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      redA[lid] += redA[lid + s];
      redB[lid] += redB[lid + s];
    }
    workgroupBarrier();
  }
  let r = vec2<f32>(redA[0], redB[0]);
  workgroupBarrier();
  return r;
}

struct ArgMax2 {
  maxA: f32,
  argA: u32,
  maxB: f32,
  argB: u32,
}

// Maxima of two per-invocation values with their class indices; lowest index wins ties.
fn argmax2(lid: u32, va: f32, ia: u32, vb: f32, ib: u32) -> ArgMax2 {
  redA[lid] = va;
  redI[lid] = ia;
  redB[lid] = vb;
  redJ[lid] = ib;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      let oa = redA[lid + s];
      let oi = redI[lid + s];
      if (oa > redA[lid] || (oa == redA[lid] && oi < redI[lid])) {
        redA[lid] = oa;
        redI[lid] = oi;
      }
      let ob = redB[lid + s];
      let oj = redJ[lid + s];
      if (ob > redB[lid] || (ob == redB[lid] && oj < redJ[lid])) {
        redB[lid] = ob;
        redJ[lid] = oj;
      }
    }
    workgroupBarrier();
  }
  let r = ArgMax2(redA[0], redI[0], redB[0], redJ[0]);
  workgroupBarrier();
  return r;
}

// ------------------------------------------------------------------------------------------
// training: forward + backward of one batch row

@group(0) @binding(0) var<storage, read> state: StepState;
@group(0) @binding(1) var<storage, read> order: array<i32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> clipLogits: array<f32>;
@group(0) @binding(4) var<storage, read> factors: array<f32>;
@group(0) @binding(5) var<storage, read> z: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;
@group(0) @binding(7) var<storage, read_write> rowStats: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn train(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= params.rows) {
    return;
  }
  let C = params.classes;
  let count = state.rowCount;
  let inBatch = b < count;
  let bb = min(b, count - 1u);
  let sample = u32(order[state.rowStart + bb]);
  let y = u32(labels[sample]);
  let f = factors[sample];
  let zBase = bb * C;
  let lBase = sample * C;
  let alpha = params.alpha;
  let lambda = params.lambda;

  var s = 0.0;
  for (var c = lid; c < C; c += WG) {
    s += z[zBase + c];
  }
  let mu = sum2(lid, s, 0.0).x / f32(C);
  var ss = 0.0;
  for (var c = lid; c < C; c += WG) {
    let d = z[zBase + c] - mu;
    ss += d * d;
  }
  let sd = sqrt(sum2(lid, ss, 0.0).x / f32(C - 1u));

  var maxF = NEG_INF;
  var argF = 0u;
  var maxA = NEG_INF;
  for (var c = lid; c < C; c += WG) {
    let a = (z[zBase + c] - mu) / sd;
    let fused = clipLogits[lBase + c] + f * a * alpha;
    if (fused > maxF) {
      maxF = fused;
      argF = c;
    }
    maxA = max(maxA, a);
  }
  let m = argmax2(lid, maxF, argF, maxA, 0u);
  maxF = m.maxA;
  argF = m.argA;
  maxA = m.maxB;

  var sf = 0.0;
  var sa = 0.0;
  for (var c = lid; c < C; c += WG) {
    let a = (z[zBase + c] - mu) / sd;
    let fused = clipLogits[lBase + c] + f * a * alpha;
    sf += exp(fused - maxF);
    sa += exp(a - maxA);
  }
  let sums = sum2(lid, sf, sa);
  let logSumF = log(sums.x);
  let logSumA = log(sums.y);

  // Gradient of the batch-mean loss with respect to the standardised logits a.
  let invB = 1.0 / f32(count);
  let wF = lambda * invB;
  let wA = (1.0 - lambda) * invB;
  var gs = 0.0;
  var gas = 0.0;
  for (var c = lid; c < C; c += WG) {
    let a = (z[zBase + c] - mu) / sd;
    let fused = clipLogits[lBase + c] + f * a * alpha;
    let hit = select(0.0, 1.0, c == y);
    let pF = exp(fused - maxF - logSumF);
    let pA = exp(a - maxA - logSumA);
    let g = wF * (pF - hit) * alpha * f + wA * (pA - hit);
    if (inBatch) {
      dz[b * C + c] = g;
    }
    gs += g;
    gas += g * a;
  }
  let gsum = sum2(lid, gs, gas);
  let gMean = gsum.x / f32(C);
  let gaTerm = gsum.y / (f32(C - 1u) * sd);
  if (inBatch) {
    for (var c = lid; c < C; c += WG) {
      let a = (z[zBase + c] - mu) / sd;
      dz[b * C + c] = (dz[b * C + c] - gMean) / sd - a * gaTerm;
    }
    if (lid == 0u) {
      let aY = (z[zBase + y] - mu) / sd;
      let fusedY = clipLogits[lBase + y] + f * aY * alpha;
      rowStats[b * 4u] = logSumF - (fusedY - maxF);
      rowStats[b * 4u + 1u] = logSumA - (aY - maxA);
      rowStats[b * 4u + 2u] = select(0.0, 1.0, argF == y);
      rowStats[b * 4u + 3u] = 0.0;
    }
  }
}

// ------------------------------------------------------------------------------------------
// evaluation: losses and hits of one test row

@group(0) @binding(0) var<storage, read> evalZ: array<f32>;
@group(0) @binding(1) var<storage, read> evalClip: array<f32>;
@group(0) @binding(2) var<storage, read> evalFactor: array<f32>;
@group(0) @binding(3) var<storage, read> evalLabels: array<i32>;
@group(0) @binding(4) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(5) var<storage, read_write> rowHits: array<u32>;
@group(0) @binding(6) var<uniform> evalParams: Params;

// Bits of rowHits: fused argmax correct, auxiliary argmax correct, CLIP (zero-shot) correct.
const HIT_FUSED: u32 = 1u;
const HIT_AUX: u32 = 2u;
const HIT_CLIP: u32 = 4u;

@compute @workgroup_size(WG)
fn eval(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= evalParams.rows) {
    return;
  }
  let C = evalParams.classes;
  let base = r * C;
  let out = evalParams.rowOffset + r;
  let y = u32(evalLabels[out]);
  let f = evalFactor[r];
  let alpha = evalParams.alpha;

  var s = 0.0;
  for (var c = lid; c < C; c += WG) {
    s += evalZ[base + c];
  }
  let mu = sum2(lid, s, 0.0).x / f32(C);
  var ss = 0.0;
  for (var c = lid; c < C; c += WG) {
    let d = evalZ[base + c] - mu;
    ss += d * d;
  }
  let sd = sqrt(sum2(lid, ss, 0.0).x / f32(C - 1u));

  var maxF = NEG_INF;
  var argF = 0u;
  var maxA = NEG_INF;
  var argA = 0u;
  var maxL = NEG_INF;
  var argL = 0u;
  for (var c = lid; c < C; c += WG) {
    let a = (evalZ[base + c] - mu) / sd;
    let l = evalClip[base + c];
    let fused = l + f * a * alpha;
    if (fused > maxF) {
      maxF = fused;
      argF = c;
    }
    if (a > maxA) {
      maxA = a;
      argA = c;
    }
    if (l > maxL) {
      maxL = l;
      argL = c;
    }
  }
  let m1 = argmax2(lid, maxF, argF, maxA, argA);
  let m2 = argmax2(lid, maxL, argL, 0.0, 0u);

  var sf = 0.0;
  var sa = 0.0;
  for (var c = lid; c < C; c += WG) {
    let a = (evalZ[base + c] - mu) / sd;
    let fused = evalClip[base + c] + f * a * alpha;
    sf += exp(fused - m1.maxA);
    sa += exp(a - m1.maxB);
  }
  let sums = sum2(lid, sf, sa);
  if (lid == 0u) {
    let aY = (evalZ[base + y] - mu) / sd;
    let fusedY = evalClip[base + y] + f * aY * alpha;
    rowLoss[out * 2u] = log(sums.x) - (fusedY - m1.maxA);
    rowLoss[out * 2u + 1u] = log(sums.y) - (aY - m1.maxB);
    rowHits[out] = select(0u, HIT_FUSED, m1.argA == y) | select(0u, HIT_AUX, m1.argB == y) |
      select(0u, HIT_CLIP, m2.argA == y);
  }
}

// ------------------------------------------------------------------------------------------
// zero-shot: whether CLIP's own argmax hits the label (HIT_CLIP bit), before any training

@group(0) @binding(0) var<storage, read> zsClip: array<f32>;
@group(0) @binding(1) var<storage, read> zsLabels: array<i32>;
@group(0) @binding(2) var<storage, read_write> zsHits: array<u32>;
@group(0) @binding(3) var<uniform> zsParams: Params;

@compute @workgroup_size(WG)
fn zeroshot(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= zsParams.rows) {
    return;
  }
  let C = zsParams.classes;
  let base = r * C;
  var maxL = NEG_INF;
  var argL = 0u;
  for (var c = lid; c < C; c += WG) {
    let l = zsClip[base + c];
    if (l > maxL) {
      maxL = l;
      argL = c;
    }
  }
  let m = argmax2(lid, maxL, argL, 0.0, 0u);
  if (lid == 0u) {
    let out = zsParams.rowOffset + r;
    zsHits[out] = select(0u, HIT_CLIP, m.argA == u32(zsLabels[out]));
  }
}

// ------------------------------------------------------------------------------------------
// evaluation totals: one workgroup sums the per-row results in a fixed order

@group(0) @binding(0) var<storage, read> totLoss: array<f32>;
@group(0) @binding(1) var<storage, read> totHits: array<u32>;
@group(0) @binding(2) var<storage, read_write> totals: array<f32>;
@group(0) @binding(3) var<uniform> totParams: Params;

var<workgroup> redH: array<vec3<u32>, WG>;

// totals[outOffset ..] = (sum loss_merge, sum loss_aux, fused hits, aux hits, clip hits): on the
// host EVAL_TOTALS_WORDS and unpackEvalTotals (amu_rows_shape.ts).
@compute @workgroup_size(WG)
fn totals_main(@builtin(local_invocation_index) lid: u32) {
  var lm = 0.0;
  var la = 0.0;
  var hits = vec3<u32>(0u);
  for (var r = lid; r < totParams.rows; r += WG) {
    lm += totLoss[r * 2u];
    la += totLoss[r * 2u + 1u];
    let h = totHits[r];
    hits += vec3<u32>(h & HIT_FUSED, (h & HIT_AUX) >> 1u, (h & HIT_CLIP) >> 2u);
  }
  redH[lid] = hits;
  let sums = sum2(lid, lm, la);
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      redH[lid] += redH[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let o = totParams.outOffset;
    totals[o] = sums.x;
    totals[o + 1u] = sums.y;
    totals[o + 2u] = f32(redH[0].x);
    totals[o + 3u] = f32(redH[0].y);
    totals[o + 4u] = f32(redH[0].z);
  }
}
