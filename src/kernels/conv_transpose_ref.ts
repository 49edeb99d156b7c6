/** CPU reference for N-d transposed convolution (1-D, 2-D, 3-D; groups, strides, pads,
 * dilations, output padding, bias), and the geometry the GPU binding shares with it. Pure TS.
 *
 * ConvTranspose scatters: input position i of an axis, through kernel tap k, lands on the "full"
 * output position i * stride + k * dilation; the output is that full line with `pads[begin]`
 * cut from the start and `pads[end] - outputPadding` from the end. Pads may be negative (the
 * output then extends past the full line with zeros plus bias): ONNX's `output_shape` and
 * SAME_* auto-padding produce them when the requested output is larger. */
import { to3d } from "./conv_ref.ts";

/** Transposed-convolution settings with explicit pads (ONNX `auto_pad` and `output_shape` are
 * resolved by the caller). Per-axis lists have one entry per spatial axis; `pads` is
 * [begin..., end...]. */
export interface ConvTransposeAttrs {
  readonly strides: readonly number[];
  readonly pads: readonly number[];
  readonly dilations: readonly number[];
  /** Extra output positions at the end of each axis (ONNX `output_padding`); default 0s. */
  readonly outputPadding?: readonly number[];
  readonly group: number;
}

/** Length of one output axis: the full scatter extent, minus the pads, plus output padding. */
export function convTransposeAxisSize(
  inSize: number,
  kernel: number,
  stride: number,
  dilation: number,
  padBegin: number,
  padEnd: number,
  outputPadding: number,
): number {
  return stride * (inSize - 1) + outputPadding + (kernel - 1) * dilation + 1 - padBegin - padEnd;
}

/** Y's shape [N, M, ...] for X [N, C, ...spatial] and W [C, M/group, ...kernel]; throws a plain
 * Error explaining what does not fit (callers add the node name). */
export function convTransposeOutputShape(
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvTransposeAttrs,
): number[] {
  const rank = xShape.length - 2;
  if (rank < 1 || rank > 3) {
    throw new Error(`input rank ${xShape.length}: need 3 to 5 (N, C, 1-3 spatial axes)`);
  }
  if (wShape.length !== xShape.length) {
    throw new Error(`weight rank ${wShape.length} differs from input rank ${xShape.length}`);
  }
  const [n, c] = xShape;
  const g = attrs.group;
  if (!Number.isInteger(g) || g < 1 || c % g !== 0) {
    throw new Error(`group ${g} must divide input channels ${c}`);
  }
  if (wShape[0] !== c) {
    throw new Error(`weight has ${wShape[0]} input channels, input has ${c}`);
  }
  checkAxisList("strides", attrs.strides, rank, 1);
  checkAxisList("dilations", attrs.dilations, rank, 1);
  const outPad = attrs.outputPadding ?? Array<number>(rank).fill(0);
  checkAxisList("output padding", outPad, rank, 0);
  if (attrs.pads.length !== 2 * rank) {
    throw new Error(`pads needs ${2 * rank} values, got ${attrs.pads.length}`);
  }
  if (!attrs.pads.every(Number.isInteger)) throw new Error(`pads must be integers`);
  const out = [n, wShape[1] * g];
  for (let a = 0; a < rank; a++) {
    const o = convTransposeAxisSize(
      xShape[a + 2],
      wShape[a + 2],
      attrs.strides[a],
      attrs.dilations[a],
      attrs.pads[a],
      attrs.pads[a + rank],
      outPad[a],
    );
    if (o < 1) {
      throw new Error(
        `axis ${a + 2}: pads ${attrs.pads[a]}+${attrs.pads[a + rank]} remove the whole output ` +
          `(input ${xShape[a + 2]}, kernel ${wShape[a + 2]}, stride ${attrs.strides[a]})`,
      );
    }
    out.push(o);
  }
  return out;
}

function checkAxisList(name: string, values: readonly number[], rank: number, min: number): void {
  if (values.length !== rank) throw new Error(`${name} needs ${rank} values, got ${values.length}`);
  for (const v of values) {
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be >= ${min}, got ${v}`);
  }
}

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
