/** Host reference for DeformConv (2-D), as onnx/reference/ops/op_deform_conv.py: a grouped
 * convolution whose every kernel tap reads X at its regular position plus a learned offset, by
 * bilinear interpolation with zeros outside X, scaled by an optional mask. Shared settings with
 * the GPU binding (deform_conv.ts). */
import { type CpuTensor, newCpuData, roundToF16, shapeString } from "../util/tensor.ts";

export interface DeformConvAttrs {
  readonly strides: readonly [number, number];
  readonly dilations: readonly [number, number];
  /** top, left, bottom, right */
  readonly pads: readonly [number, number, number, number];
  readonly group: number;
  readonly offsetGroup: number;
}

/** Y's shape [N, oC, oH, oW]; checks every input's shape against it (plain Errors). */
export function deformConvShape(
  xShape: readonly number[],
  wShape: readonly number[],
  offsetShape: readonly number[],
  a: DeformConvAttrs,
  bShape?: readonly number[],
  maskShape?: readonly number[],
): number[] {
  if (xShape.length !== 4) throw new Error(`X ${shapeString(xShape)} must be 4-D`);
  if (wShape.length !== 4) throw new Error(`W ${shapeString(wShape)} must be 4-D`);
  const [n, c, h, w] = xShape;
  const [oc, icg, kh, kw] = wShape;
  if (!(a.group >= 1) || icg * a.group !== c || oc % a.group !== 0) {
    throw new Error(
      `W ${shapeString(wShape)} does not fit X's ${c} channels in ${a.group} groups`,
    );
  }
  if (!(a.offsetGroup >= 1) || c % a.offsetGroup !== 0) {
    throw new Error(`${c} channels do not split into ${a.offsetGroup} offset groups`);
  }
  const oh = Math.floor(
    (h + a.pads[0] + a.pads[2] - (a.dilations[0] * (kh - 1) + 1)) / a.strides[0],
  ) + 1;
  const ow = Math.floor(
    (w + a.pads[1] + a.pads[3] - (a.dilations[1] * (kw - 1) + 1)) / a.strides[1],
  ) + 1;
  if (oh < 1 || ow < 1) throw new Error(`the kernel does not fit X ${shapeString(xShape)}`);
  const offsetExpected = [n, a.offsetGroup * kh * kw * 2, oh, ow];
  if (shapeString(offsetShape) !== shapeString(offsetExpected)) {
    throw new Error(
      `offset is ${shapeString(offsetShape)}, expected ${shapeString(offsetExpected)}`,
    );
  }
  if (bShape && shapeString(bShape) !== shapeString([oc])) {
    throw new Error(`B is ${shapeString(bShape)}, expected [${oc}]`);
  }
  const maskExpected = [n, a.offsetGroup * kh * kw, oh, ow];
  if (maskShape && shapeString(maskShape) !== shapeString(maskExpected)) {
    throw new Error(`mask is ${shapeString(maskShape)}, expected ${shapeString(maskExpected)}`);
  }
  return [n, oc, oh, ow];
}

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
