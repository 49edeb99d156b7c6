// AMU-Tuning: the uncertainty factor of each row of CLIP logits (`uncertainty()` of the
// reference). With p = softmax(logits[r, :]) over C classes and `power` from the params:
//   KIND 0 none    : 1
//   KIND 1 entropy : exp(power * H),  H = -sum p log2 p / log2 C   (p log p = 0 where p = 0)
//   KIND 2 energy  : m = max p;  E = 2 * (log sum exp((p - m) / 2) + m);  1 / E^power
//   KIND 3 max     : 1 / (max p)^power
//   KIND 4 max-min : 1 / (max p - min p)^power
//   KIND 5 var     : std(p), unbiased (power unused, as in the reference)
//   KIND 6 top5    : 1 / (p_(1) - p_(5))^power     (largest minus 5th largest; needs C >= 5)
//   KIND 7 moment  : z = (p - mean p) / std(p);  k = mean z^4;  1 / (k / 250)^power
// The factor depends only on CLIP's frozen logits, so the trainer computes it once per row
// before training rather than every step.
//
// One workgroup per row; every reduction is a fixed-order tree in workgroup memory
// (deterministic). For top5 each invocation keeps its own five largest values and invocation 0
// merges the WG * 5 candidates.

struct Params {
  rows: u32,
  classes: u32,
  power: f32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> factor: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

const WG: u32 = {{WG}}u;
override KIND: u32 = 0u;

var<workgroup> red: array<f32, WG>;
var<workgroup> top: array<f32, WG * 5u>;

fn reduceSum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      red[lid] += red[lid + s];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

fn reduceMax(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      red[lid] = max(red[lid], red[lid + s]);
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

fn reduceMin(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      red[lid] = min(red[lid], red[lid + s]);
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

const NEG_INF: f32 = -3.4028234663852886e38;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) {
    return;
  }
  if (KIND == 0u) {
    if (lid == 0u) {
      factor[row] = 1.0;
    }
    return;
  }
  let C = params.classes;
  let base = row * C;
  let power = params.power;

  // softmax: p_c = exp(l_c - max l) / sum_j exp(l_j - max l)
  var lmax = NEG_INF;
  for (var c = lid; c < C; c += WG) {
    lmax = max(lmax, logits[base + c]);
  }
  lmax = reduceMax(lid, lmax);
  var esum = 0.0;
  for (var c = lid; c < C; c += WG) {
    esum += exp(logits[base + c] - lmax);
  }
  esum = reduceSum(lid, esum);
  // The largest probability is exp(0) / esum.
  let pmax = 1.0 / esum;

  var result = 1.0;
  if (KIND == 1u) {
    var plogp = 0.0;
    for (var c = lid; c < C; c += WG) {
      let p = exp(logits[base + c] - lmax) / esum;
      if (p > 0.0) {
        plogp += p * log2(p);
      }
    }
    plogp = reduceSum(lid, plogp);
    let h = -plogp / log2(f32(C));
    result = exp(power * h);
  } else if (KIND == 2u) {
    var s = 0.0;
    for (var c = lid; c < C; c += WG) {
      let p = exp(logits[base + c] - lmax) / esum;
      s += exp((p - pmax) / 2.0);
    }
    s = reduceSum(lid, s);
    let energy = 2.0 * (log(s) + pmax);
    result = 1.0 / pow(energy, power);
  } else if (KIND == 3u) {
    result = 1.0 / pow(pmax, power);
  } else if (KIND == 4u) {
    var pmin = 3.4028234663852886e38;
    for (var c = lid; c < C; c += WG) {
      pmin = min(pmin, exp(logits[base + c] - lmax) / esum);
    }
    pmin = reduceMin(lid, pmin);
    result = 1.0 / pow(pmax - pmin, power);
  } else if (KIND == 5u || KIND == 7u) {
    var psum = 0.0;
    for (var c = lid; c < C; c += WG) {
      psum += exp(logits[base + c] - lmax) / esum;
    }
    let mean = reduceSum(lid, psum) / f32(C);
    var ss = 0.0;
    for (var c = lid; c < C; c += WG) {
      let d = exp(logits[base + c] - lmax) / esum - mean;
      ss += d * d;
    }
    let sdev = sqrt(reduceSum(lid, ss) / f32(C - 1u));
    if (KIND == 5u) {
      result = sdev;
    } else {
      var m4 = 0.0;
      for (var c = lid; c < C; c += WG) {
        let z = (exp(logits[base + c] - lmax) / esum - mean) / sdev;
        let z2 = z * z;
        m4 += z2 * z2;
      }
      let kurt = reduceSum(lid, m4) / f32(C);
      result = 1.0 / pow(kurt / 250.0, power);
    }
  } else if (KIND == 6u) {
    // Each invocation's five largest probabilities, descending.
    var best: array<f32, 5>;
    for (var i = 0u; i < 5u; i++) {
      best[i] = NEG_INF;
    }
    for (var c = lid; c < C; c += WG) {
      var v = exp(logits[base + c] - lmax) / esum;
      for (var i = 0u; i < 5u; i++) {
        if (v > best[i]) {
          let t = best[i];
          best[i] = v;
          v = t;
        }
      }
    }
    for (var i = 0u; i < 5u; i++) {
      top[lid * 5u + i] = best[i];
    }
    workgroupBarrier();
    if (lid == 0u) {
      for (var i = 0u; i < 5u; i++) {
        best[i] = NEG_INF;
      }
      for (var j = 0u; j < WG * 5u; j++) {
        var v = top[j];
        for (var i = 0u; i < 5u; i++) {
          if (v > best[i]) {
            let t = best[i];
            best[i] = v;
            v = t;
          }
        }
      }
      result = 1.0 / pow(best[0] - best[4], power);
    }
  }
  if (lid == 0u) {
    factor[row] = result;
  }
}
