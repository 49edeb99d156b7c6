/** CPU reference for N-d transposed convolution (1-D, 2-D, 3-D; groups, strides, pads,
 * dilations, output padding, bias). Pure TS.
 *
 * ConvTranspose scatters: input position i of an axis, through kernel tap k, lands on the "full"
 * output position i * stride + k * dilation; the output is that full line with `pads[begin]`
 * cut from the start and `pads[end] - outputPadding` from the end. Pads may be negative (the
 * output then extends past the full line with zeros plus bias): ONNX's `output_shape` and
 * SAME_* auto-padding produce them when the requested output is larger. The geometry, shared
 * with the GPU binding, is in conv_shape.ts. */
import { type ConvTransposeAttrs, convTransposeOutputShape } from "./conv_shape.ts";
import { to3d } from "./shape.ts";

/** Y = ConvTranspose(X, W) + B, float64 accumulation, returned as float32. X [N, C, ...],
 * W [C, M/group, ...kernel], B [M] or undefined.
 *
 * Written as a gather, like the GPU kernel: output position o of an axis receives input i
 * through tap k where i * stride + k * dilation = o + padBegin. */
export function convTransposeRef(
  x: ArrayLike<number>,
  xShape: readonly number[],
  w: ArrayLike<number>,
  wShape: readonly number[],
  bias: ArrayLike<number> | undefined,
  attrs: ConvTransposeAttrs,
): { data: Float32Array; shape: number[] } {
  const yShape = convTransposeOutputShape(xShape, wShape, attrs);
  const rank = xShape.length - 2;
  const [n, c] = xShape;
  const g = attrs.group;
  const cg = c / g, mg = wShape[1], m = mg * g;
  const inSize = to3d(xShape.slice(2), 1);
  const kernel = to3d(wShape.slice(2), 1);
  const outSize = to3d(yShape.slice(2), 1);
  const strides = to3d(attrs.strides, 1);
  const dilations = to3d(attrs.dilations, 1);
  const pads = to3d(attrs.pads.slice(0, rank), 0);
  const inPlane = inSize[0] * inSize[1] * inSize[2];
  const outPlane = outSize[0] * outSize[1] * outSize[2];
  const taps = kernel[0] * kernel[1] * kernel[2];
  // Per axis and output position: the (input index, tap) pairs that meet there.
  const contributions = [0, 1, 2].map((a) =>
    Array.from({ length: outSize[a] }, (_, o) => {
      const pairs: [number, number][] = [];
      for (let k = 0; k < kernel[a]; k++) {
        const t = o + pads[a] - k * dilations[a];
        if (t < 0 || t % strides[a] !== 0) continue;
        const i = t / strides[a];
        if (i < inSize[a]) pairs.push([i, k]);
      }
      return pairs;
    })
  );
  const y = new Float32Array(n * m * outPlane);
  for (let b = 0; b < n; b++) {
    for (let gi = 0; gi < g; gi++) {
      for (let mi = 0; mi < mg; mi++) {
        const oc = gi * mg + mi;
        const yBase = (b * m + oc) * outPlane;
        for (let od = 0; od < outSize[0]; od++) {
          for (let oh = 0; oh < outSize[1]; oh++) {
            for (let ow = 0; ow < outSize[2]; ow++) {
              let acc = bias ? bias[oc] : 0;
              for (const [id, kd] of contributions[0][od]) {
                for (const [ih, kh] of contributions[1][oh]) {
                  for (const [iw, kw] of contributions[2][ow]) {
                    const xAt = (id * inSize[1] + ih) * inSize[2] + iw;
                    const tap = (kd * kernel[1] + kh) * kernel[2] + kw;
                    for (let ci = 0; ci < cg; ci++) {
                      const ch = gi * cg + ci;
                      acc += x[(b * c + ch) * inPlane + xAt] * w[(ch * mg + mi) * taps + tap];
                    }
                  }
                }
              }
              y[yBase + (od * outSize[1] + oh) * outSize[2] + ow] = acc;
            }
          }
        }
      }
    }
  }
  return { data: y, shape: yShape };
}
