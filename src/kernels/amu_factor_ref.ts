/** Host reference of `shaders/amu_factor.wgsl`: AMU-Tuning's uncertainty factor per row of CLIP
 * logits (the reference's `uncertainty(logits, type, power)`), in float64. */
import type { UncertaintyKind } from "./amu_factor_shape.ts";

/** factor[r] for each row of `logits` [rows, classes]. With p = softmax(row):
 * entropy exp(power * H) (H = -sum p log2 p / log2 C, p log p = 0 at p = 0); energy 1 / E^power
 * (E = 2 (log sum exp((p - max p) / 2) + max p)); max 1 / (max p)^power; max-min
 * 1 / (max p - min p)^power; var std(p) (unbiased, power unused); top5 1 / (p_(1) - p_(5))^power;
 * moment 1 / (k / 250)^power (k = mean of ((p - mean p) / std p)^4); none 1. */
export function uncertaintyFactorRef(
  logits: ArrayLike<number>,
  rows: number,
  classes: number,
  kind: UncertaintyKind,
  power: number,
): Float64Array {
  const out = new Float64Array(rows);
  const p = new Float64Array(classes);
  for (let r = 0; r < rows; r++) {
    if (kind === "none") {
      out[r] = 1;
      continue;
    }
    let lmax = -Infinity;
    for (let c = 0; c < classes; c++) lmax = Math.max(lmax, logits[r * classes + c]);
    let s = 0;
    for (let c = 0; c < classes; c++) {
      p[c] = Math.exp(logits[r * classes + c] - lmax);
      s += p[c];
    }
    for (let c = 0; c < classes; c++) p[c] /= s;
    let pmax = -Infinity, pmin = Infinity, psum = 0;
    for (let c = 0; c < classes; c++) {
      pmax = Math.max(pmax, p[c]);
      pmin = Math.min(pmin, p[c]);
      psum += p[c];
    }
    const mean = psum / classes;
    let ss = 0;
    for (let c = 0; c < classes; c++) ss += (p[c] - mean) ** 2;
    const std = Math.sqrt(ss / (classes - 1));
    switch (kind) {
      case "entropy": {
        let plogp = 0;
        for (let c = 0; c < classes; c++) if (p[c] > 0) plogp += p[c] * Math.log2(p[c]);
        out[r] = Math.exp(power * (-plogp / Math.log2(classes)));
        break;
      }
      case "energy": {
        let e = 0;
        for (let c = 0; c < classes; c++) e += Math.exp((p[c] - pmax) / 2);
        out[r] = 1 / (2 * (Math.log(e) + pmax)) ** power;
        break;
      }
      case "max":
        out[r] = 1 / pmax ** power;
        break;
      case "max-min":
        out[r] = 1 / (pmax - pmin) ** power;
        break;
      case "var":
        out[r] = std;
        break;
      case "top5": {
        const sorted = Array.from(p).sort((x, y) => y - x);
        out[r] = 1 / (sorted[0] - sorted[4]) ** power;
        break;
      }
      case "moment": {
        let m4 = 0;
        for (let c = 0; c < classes; c++) m4 += ((p[c] - mean) / std) ** 4;
        out[r] = 1 / (m4 / classes / 250) ** power;
        break;
      }
    }
  }
  return out;
}
