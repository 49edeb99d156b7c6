/** Host reference for DeformConv (2-D), as onnx/reference/ops/op_deform_conv.py: a grouped
 * convolution whose every kernel tap reads X at its regular position plus a learned offset, by
 * bilinear interpolation with zeros outside X, scaled by an optional mask. Its settings and
 * shape rules, shared with the GPU binding, are in deform_conv_shape.ts. */
import { type CpuTensor, newCpuData, roundToF16 } from "../util/tensor.ts";
import { type DeformConvAttrs, deformConvShape } from "./deform_conv_shape.ts";

/** Bilinear sample of plane `base` of X at (y, x), zeros outside. */
function sample(x: CpuTensor, base: number, h: number, w: number, py: number, px: number) {
  const y0 = Math.floor(py), x0 = Math.floor(px);
  const fy = py - y0, fx = px - x0;
  let s = 0;
  for (const [yy, wy] of [[y0, 1 - fy], [y0 + 1, fy]]) {
    if (yy < 0 || yy >= h) continue;
    for (const [xx, wx] of [[x0, 1 - fx], [x0 + 1, fx]]) {
      if (xx < 0 || xx >= w) continue;
      s += wy * wx * Number(x.data[base + yy * w + xx]);
    }
  }
  return s;
}

export function deformConvRef(
  x: CpuTensor,
  weight: CpuTensor,
  offset: CpuTensor,
  a: DeformConvAttrs,
  bias?: CpuTensor,
  mask?: CpuTensor,
): CpuTensor {
  const shape = deformConvShape(x.shape, weight.shape, offset.shape, a, bias?.shape, mask?.shape);
  const [n, c, h, w] = x.shape;
  const [oc, icg, kh, kw] = weight.shape;
  const [, , oh, ow] = shape;
  const ocg = oc / a.group;
  const icPerOffsetGroup = c / a.offsetGroup;
  const taps = kh * kw;
  const data = newCpuData(x.dtype, n * oc * oh * ow);
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < oc; o++) {
      const g = Math.floor(o / ocg);
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          let sum = bias ? Number(bias.data[o]) : 0;
          for (let ci = 0; ci < icg; ci++) {
            const ch = g * icg + ci;
            const og = Math.floor(ch / icPerOffsetGroup);
            for (let t = 0; t < taps; t++) {
              const ki = Math.floor(t / kw), kj = t % kw;
              // offset is [N, offset groups, kH, kW, (dy, dx), oH, oW]; mask drops the pair axis.
              const tap = (b * a.offsetGroup + og) * taps + t;
              const dy = Number(offset.data[(tap * 2 * oh + i) * ow + j]);
              const dx = Number(offset.data[((tap * 2 + 1) * oh + i) * ow + j]);
              const py = i * a.strides[0] - a.pads[0] + ki * a.dilations[0] + dy;
              const px = j * a.strides[1] - a.pads[1] + kj * a.dilations[1] + dx;
              const m = mask ? Number(mask.data[(tap * oh + i) * ow + j]) : 1;
              const v = sample(x, (b * c + ch) * h * w, h, w, py, px);
              sum += Number(weight.data[(o * icg + ci) * taps + t]) * v * m;
            }
          }
          data[((b * oc + o) * oh + i) * ow + j] = x.dtype === "float16" ? roundToF16(sum) : sum;
        }
      }
    }
  }
  return { dtype: x.dtype, shape, data };
}
