/** Host reference for RoiAlign (onnx/reference/ops/op_roi_align.py, which follows onnxruntime):
 * each output bin of a region averages (or takes the max of) a grid of bilinear samples. The
 * settings and output shape it shares with the GPU binding (roi_align.ts) are in
 * roi_align_shape.ts. */
import { type CpuTensor, newCpuData, roundToF16, sizeOf } from "../util/tensor.ts";
import { type RoiAlignOptions, roiAlignShape } from "./roi_align_shape.ts";

/** Bilinear sample of one plane at (y, x) with onnxruntime's edge rules; undefined when the
 * point is more than one pixel outside. Returns the four positions and weights. */
export function bilinearTaps(
  y: number,
  x: number,
  height: number,
  width: number,
): { pos: number[]; w: number[] } | undefined {
  if (y < -1 || y > height || x < -1 || x > width) return undefined;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  let yLow = Math.trunc(y), xLow = Math.trunc(x);
  let yHigh, xHigh;
  if (yLow >= height - 1) {
    yHigh = yLow = height - 1;
    y = yLow;
  } else yHigh = yLow + 1;
  if (xLow >= width - 1) {
    xHigh = xLow = width - 1;
    x = xLow;
  } else xHigh = xLow + 1;
  const ly = y - yLow, lx = x - xLow, hy = 1 - ly, hx = 1 - lx;
  return {
    pos: [yLow * width + xLow, yLow * width + xHigh, yHigh * width + xLow, yHigh * width + xHigh],
    w: [hy * hx, hy * lx, ly * hx, ly * lx],
  };
}

/** RoiAlign of X [N, C, H, W] over rois [R, 4] (x1, y1, x2, y2) of images batch_indices [R]. */
export function roiAlignRef(
  x: CpuTensor,
  rois: CpuTensor,
  batchIndices: CpuTensor,
  o: RoiAlignOptions,
): CpuTensor {
  const shape = roiAlignShape(x.shape, rois.shape, batchIndices.shape, o);
  const [n, c, height, width] = x.shape;
  const [r, , ph, pw] = shape;
  const data = newCpuData(x.dtype, sizeOf(shape));
  const offset = o.halfPixel ? 0.5 : 0;
  for (let k = 0; k < r; k++) {
    const b = Number(batchIndices.data[k]);
    if (!(b >= 0 && b < n)) throw new Error(`batch index ${b} of roi ${k} is outside [0, ${n})`);
    const roi = [0, 1, 2, 3].map((i) => Number(rois.data[k * 4 + i]) * o.spatialScale - offset);
    const [startW, startH, endW, endH] = roi;
    let roiW = endW - startW, roiH = endH - startH;
    if (!o.halfPixel) {
      roiW = Math.max(roiW, 1);
      roiH = Math.max(roiH, 1);
    }
    const binH = roiH / ph, binW = roiW / pw;
    const gridH = o.samplingRatio > 0 ? o.samplingRatio : Math.ceil(roiH / ph);
    const gridW = o.samplingRatio > 0 ? o.samplingRatio : Math.ceil(roiW / pw);
    const count = Math.max(gridH * gridW, 1);
    for (let ch = 0; ch < c; ch++) {
      const plane = (b * c + ch) * height * width;
      for (let i = 0; i < ph; i++) {
        for (let j = 0; j < pw; j++) {
          let acc = 0;
          let first = true;
          for (let iy = 0; iy < gridH; iy++) {
            const yy = startH + i * binH + (iy + 0.5) * binH / gridH;
            for (let ix = 0; ix < gridW; ix++) {
              const xx = startW + j * binW + (ix + 0.5) * binW / gridW;
              const t = bilinearTaps(yy, xx, height, width);
              const v = t ? t.w.map((w, q) => w * Number(x.data[plane + t.pos[q]])) : [0, 0, 0, 0];
              if (o.mode === "avg") acc += v[0] + v[1] + v[2] + v[3];
              else {
                const m = Math.max(v[0], v[1], v[2], v[3]);
                acc = first ? m : Math.max(acc, m);
                first = false;
              }
            }
          }
          const value = o.mode === "avg" ? acc / count : acc;
          data[((k * c + ch) * ph + i) * pw + j] = x.dtype === "float16"
            ? roundToF16(value)
            : value;
        }
      }
    }
  }
  return { dtype: x.dtype, shape, data };
}
