/** CPU reference for N-d convolution (1-D, 2-D, 3-D; groups, strides, pads, dilations, bias,
 * optional fused ReLU). Its geometry, shared with the GPU binding, is in conv_shape.ts. */
import { type ConvAttrs, convOutputShape } from "./conv_shape.ts";
import { to3d } from "./shape.ts";

/** Y = conv(X, W) + B (then ReLU if asked), float64 accumulation, returned as float32.
 * X [N, C, ...], W [M, C/group, ...kernel], B [M] or undefined. */
export function convRef(
  x: ArrayLike<number>,
  xShape: readonly number[],
  w: ArrayLike<number>,
  wShape: readonly number[],
  bias: ArrayLike<number> | undefined,
  attrs: ConvAttrs,
): { data: Float32Array; shape: number[] } {
  const yShape = convOutputShape(xShape, wShape, attrs);
  const rank = xShape.length - 2;
  const [n, c] = xShape;
  const m = wShape[0];
  const g = attrs.group;
  const cg = c / g, mg = m / g;
  const [id, ih, iw] = to3d(xShape.slice(2), 1);
  const [kd, kh, kw] = to3d(wShape.slice(2), 1);
  const [od, oh, ow] = to3d(yShape.slice(2), 1);
  const [sd, sh, sw] = to3d(attrs.strides, 1);
  const [dd, dh, dw] = to3d(attrs.dilations, 1);
  const [pd, ph, pw] = to3d(attrs.pads.slice(0, rank), 0);
  const inPlane = id * ih * iw, outPlane = od * oh * ow, taps = kd * kh * kw;
  const y = new Float32Array(n * m * outPlane);
  const acc = new Float64Array(outPlane);
  for (let b = 0; b < n; b++) {
    for (let gi = 0; gi < g; gi++) {
      for (let mi = 0; mi < mg; mi++) {
        const oc = gi * mg + mi;
        acc.fill(bias ? bias[oc] : 0);
        for (let ci = 0; ci < cg; ci++) {
          const xBase = (b * c + gi * cg + ci) * inPlane;
          const wBase = (oc * cg + ci) * taps;
          for (let a = 0; a < kd; a++) {
            for (let bh = 0; bh < kh; bh++) {
              for (let bw = 0; bw < kw; bw++) {
                const wv = w[wBase + (a * kh + bh) * kw + bw];
                for (let zd = 0; zd < od; zd++) {
                  const xd = zd * sd - pd + a * dd;
                  if (xd < 0 || xd >= id) continue;
                  for (let zh = 0; zh < oh; zh++) {
                    const xh = zh * sh - ph + bh * dh;
                    if (xh < 0 || xh >= ih) continue;
                    const rowIn = xBase + (xd * ih + xh) * iw;
                    const rowOut = (zd * oh + zh) * ow;
                    for (let zw = 0; zw < ow; zw++) {
                      const xw = zw * sw - pw + bw * dw;
                      if (xw < 0 || xw >= iw) continue;
                      acc[rowOut + zw] += wv * x[rowIn + xw];
                    }
                  }
                }
              }
            }
          }
        }
        const yBase = (b * m + oc) * outPlane;
        for (let i = 0; i < outPlane; i++) {
          const v = acc[i];
          y[yBase + i] = attrs.relu && v < 0 ? 0 : v;
        }
      }
    }
  }
  return { data: y, shape: yShape };
}
