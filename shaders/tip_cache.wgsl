// Tip-Adapter's cache model on precomputed affinities A = f @ keys^T (f and keys L2-normalised):
//   cache[c]  = sum over cache entries n of class c of exp(-(beta - beta * A[n]))
//               (= exp(-(beta - beta * A)) @ values with one-hot values, summed in entry order)
//   logits[c] = clip[c] + cache[c] * alpha       (clip = 100 * f @ clip_weights)
//
// `train_rows` (one workgroup per batch row of a Tip-Adapter-F step): the row's logits, its
// cross-entropy loss (batch mean taken by amu_step's `finish`), whether the argmax hits, and the
// gradient of the batch-mean loss with respect to the row's affinities,
//   dA[n] = (softmax(logits) - onehot(y))[class(n)] / B * alpha * beta * exp(-(beta - beta * A[n]))
// which amu_update contracts with the batch's features into the keys' gradient (the keys play the
// head's weights there: keys [N, D] like W [C, D]).
//
// `grid` (one workgroup per (row, beta) pair): the row's cache logits at beta once, then for every
// alpha of the grid whether argmax(clip + cache * alpha) hits the label, counted with an atomic
// add per (beta, alpha) (integer counts: exact and order-independent). A 1 x 1 grid is a plain
// accuracy at one (beta, alpha).
//
// Cache entries are reached through a class index (entries grouped by class, ascending within a
// class), so a class's cache logit is a short fixed-order sum (deterministic). The row's C values
// live in workgroup memory (CMAX >= C, a placeholder because array sizes cannot be overrides);
// reductions are fixed-order trees; argmax ties go to the lowest class, like torch.argmax.

//#include "lib/step_state.wgsl"

struct Params {
  classes: u32,
  entries: u32,
  // grid: rows of this chunk, their offset into `labels`, grid size, where the counts go.
  rows: u32,
  rowOffset: u32,
  betas: u32,
  alphas: u32,
  hitsOffset: u32,
  // train_rows: the fixed cache hyper-parameters.
  beta: f32,
  alpha: f32,
}

const WG: u32 = {{WG}}u;
const CMAX: u32 = {{CMAX}}u;
const NEG_INF: f32 = -3.4028234663852886e38;

var<workgroup> row: array<f32, CMAX>;
var<workgroup> redV: array<f32, WG>;
var<workgroup> redI: array<u32, WG>;

// index = [classStart (C + 1) | entries sorted by class (N) | class of each entry (N)].

// ---- train_rows ----

@group(0) @binding(0) var<storage, read> state: StepState;
@group(0) @binding(1) var<storage, read> order: array<i32>;
// [maxRows, N]: the batch's affinities (batch row b at b * N).
@group(0) @binding(2) var<storage, read> trainA: array<f32>;
// [R, C]: CLIP logits of every training row (gathered through the order).
@group(0) @binding(3) var<storage, read> trainClip: array<f32>;
@group(0) @binding(4) var<storage, read> trainLabels: array<i32>;
@group(0) @binding(5) var<storage, read> trainIndex: array<u32>;
// [maxRows, N]: written, dloss/dA.
@group(0) @binding(6) var<storage, read_write> dA: array<f32>;
// [maxRows, 4]: written, (loss, 0, hit, 0) per batch row.
@group(0) @binding(7) var<storage, read_write> rowStats: array<vec4<f32>>;
@group(0) @binding(8) var<uniform> trainParams: Params;

fn trainCache(base: u32, c: u32) -> f32 {
  let beta = trainParams.beta;
  var s = 0.0;
  for (var k = trainIndex[c]; k < trainIndex[c + 1u]; k++) {
    let n = trainIndex[trainParams.classes + 1u + k];
    s += exp(-(beta - beta * trainA[base + n]));
  }
  return s;
}

@compute @workgroup_size(WG)
fn train_rows(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let b = wid.x + wid.y * nwg.x;
  // Uniform per workgroup (workgroup id and a read-only buffer), so barriers below stay uniform.
  if (b >= state.rowCount) {
    return;
  }
  let C = trainParams.classes;
  let N = trainParams.entries;
  let alpha = trainParams.alpha;
  let beta = trainParams.beta;
  let src = u32(order[state.rowStart + b]);
  let y = u32(trainLabels[src]);
  let base = b * N;

  var best = NEG_INF;
  var bestC = 0u;
  for (var c = lid; c < C; c += WG) {
    let l = trainClip[src * C + c] + trainCache(base, c) * alpha;
    row[c] = l;
    if (l > best) {
      best = l;
      bestC = c;
    }
  }
  redV[lid] = best;
  redI[lid] = bestC;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      let ov = redV[lid + s];
      let oi = redI[lid + s];
      if (ov > redV[lid] || (ov == redV[lid] && oi < redI[lid])) {
        redV[lid] = ov;
        redI[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  let m = redV[0];
  let arg = redI[0];
  workgroupBarrier();

  var part = 0.0;
  for (var c = lid; c < C; c += WG) {
    part += exp(row[c] - m);
  }
  redV[lid] = part;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      redV[lid] += redV[lid + s];
    }
    workgroupBarrier();
  }
  let total = redV[0];
  let ly = row[y];
  workgroupBarrier();

  // dloss/dcache[c] = (softmax - onehot)[c] / B * alpha, kept in `row` for the entries' pass.
  let scale = alpha / f32(state.rowCount);
  for (var c = lid; c < C; c += WG) {
    let p = exp(row[c] - m) / total;
    row[c] = (p - select(0.0, 1.0, c == y)) * scale;
  }
  workgroupBarrier();
  for (var n = lid; n < N; n += WG) {
    let cls = trainIndex[C + 1u + N + n];
    let e = exp(-(beta - beta * trainA[base + n]));
    dA[base + n] = row[cls] * e * beta;
  }
  if (lid == 0u) {
    let loss = log(total) - (ly - m);
    rowStats[b] = vec4<f32>(loss, 0.0, select(0.0, 1.0, arg == y), 0.0);
  }
}

// ---- grid ----

// [rows, N]: this chunk's affinities.
@group(0) @binding(0) var<storage, read> gridA: array<f32>;
// [rows, C]: this chunk's CLIP logits.
@group(0) @binding(1) var<storage, read> gridClip: array<f32>;
// Labels of the whole split (row r of the chunk is rowOffset + r).
@group(0) @binding(2) var<storage, read> gridLabels: array<i32>;
@group(0) @binding(3) var<storage, read> gridIndex: array<u32>;
// [betas | alphas].
@group(0) @binding(4) var<storage, read> gridValues: array<f32>;
// Hit counts, [betas, alphas] from hitsOffset.
@group(0) @binding(5) var<storage, read_write> hits: array<atomic<u32>>;
@group(0) @binding(6) var<uniform> gridParams: Params;

@compute @workgroup_size(WG)
fn grid(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let g = wid.x + wid.y * nwg.x;
  let nb = gridParams.betas;
  if (g >= gridParams.rows * nb) {
    return;
  }
  let r = g / nb;
  let i = g % nb;
  let C = gridParams.classes;
  let N = gridParams.entries;
  let beta = gridValues[i];
  let base = r * N;
  for (var c = lid; c < C; c += WG) {
    var s = 0.0;
    for (var k = gridIndex[c]; k < gridIndex[c + 1u]; k++) {
      let n = gridIndex[C + 1u + k];
      s += exp(-(beta - beta * gridA[base + n]));
    }
    row[c] = s;
  }
  workgroupBarrier();
  let y = u32(gridLabels[gridParams.rowOffset + r]);
  for (var j = lid; j < gridParams.alphas; j += WG) {
    let alpha = gridValues[nb + j];
    var best = NEG_INF;
    var bestC = 0u;
    for (var c = 0u; c < C; c++) {
      let l = gridClip[r * C + c] + row[c] * alpha;
      if (l > best) {
        best = l;
        bestC = c;
      }
    }
    if (bestC == y) {
      atomicAdd(&hits[gridParams.hitsOffset + i * gridParams.alphas + j], 1u);
    }
  }
}
