/** Host implementation of ONNX NonMaxSuppression (the only implementation: its output size
 * depends on the scores, which a GPU plan cannot allow, see src/onnx/ops/indexing.ts).
 * Follows the ONNX reference / onnxruntime: per batch and class, boxes scoring strictly above
 * score_threshold are visited by descending score (ties: lower box index first); a box is kept
 * unless its IoU with an already kept box is strictly above iou_threshold; at most
 * max_output_boxes_per_class are kept. Arithmetic is rounded to float32 as onnxruntime's is, so
 * boundary cases (IoU exactly at the threshold) decide the same way. */
import { type CpuTensor, cpuTensor } from "../util/tensor.ts";

/** Coordinates per box. */
export const NMS_BOX_COORDS = 4;

export interface NmsOptions {
  readonly maxOutputBoxesPerClass: number;
  readonly iouThreshold: number;
  readonly scoreThreshold: number;
  /** true: boxes are [x_center, y_center, width, height]; false: [y1, x1, y2, x2], either
   * diagonal pair of corners. */
  readonly centerPointBox: boolean;
}

const f = Math.fround;

/** [ymin, xmin, ymax, xmax] of box `i` of `boxes` (flat, 4 per box, from `base`). */
function corners(data: ArrayLike<number>, at: number, center: boolean): number[] {
  const a = data[at], b = data[at + 1], c = data[at + 2], d = data[at + 3];
  if (center) {
    // a, b = x, y centre; c, d = width, height.
    const hw = f(c / 2), hh = f(d / 2);
    return [f(b - hh), f(a - hw), f(b + hh), f(a + hw)];
  }
  return [Math.min(a, c), Math.min(b, d), Math.max(a, c), Math.max(b, d)];
}

function suppresses(p: number[], q: number[], threshold: number): boolean {
  const h = f(Math.min(p[2], q[2]) - Math.max(p[0], q[0]));
  const w = f(Math.min(p[3], q[3]) - Math.max(p[1], q[1]));
  if (h <= 0 || w <= 0) return false;
  const inter = f(h * w);
  const areaP = f(f(p[2] - p[0]) * f(p[3] - p[1]));
  const areaQ = f(f(q[2] - q[0]) * f(q[3] - q[1]));
  const union = f(f(areaP + areaQ) - inter);
  if (areaP <= 0 || areaQ <= 0 || union <= 0) return false;
  return f(inter / union) > f(threshold);
}

/** Selected boxes as int64 [n, 3] rows (batch, class, box), by batch, class, then selection. */
export function nmsRef(boxes: CpuTensor, scores: CpuTensor, opts: NmsOptions): CpuTensor {
  const [batches, nBoxes] = boxes.shape;
  const classes = scores.shape[1];
  const limit = Math.max(0, Math.floor(opts.maxOutputBoxesPerClass));
  const rows: number[] = [];
  for (let b = 0; b < batches; b++) {
    const box = Array.from(
      { length: nBoxes },
      (_, i) => corners(boxes.data, (b * nBoxes + i) * NMS_BOX_COORDS, opts.centerPointBox),
    );
    for (let c = 0; c < classes; c++) {
      if (limit === 0) continue;
      const score = (i: number) => scores.data[(b * classes + c) * nBoxes + i];
      const order: number[] = [];
      for (let i = 0; i < nBoxes; i++) if (score(i) > opts.scoreThreshold) order.push(i);
      order.sort((i, j) => score(j) - score(i) || i - j);
      const kept: number[] = [];
      for (const i of order) {
        if (kept.length >= limit) break;
        if (kept.some((k) => suppresses(box[k], box[i], opts.iouThreshold))) continue;
        kept.push(i);
        rows.push(b, c, i);
      }
    }
  }
  return cpuTensor("int64", [rows.length / 3, 3], rows);
}
