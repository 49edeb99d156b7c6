/** CPU reference for N-d convolution (1-D, 2-D, 3-D; groups, strides, pads, dilations, bias,
 * optional fused ReLU), and the geometry helpers the GPU binding shares with it. Pure TS. */

/** Convolution settings with explicit pads (ONNX `auto_pad` is resolved by the caller). All
 * per-axis lists have one entry per spatial axis; `pads` is [begin..., end...]. */
export interface ConvAttrs {
  readonly strides: readonly number[];
  readonly pads: readonly number[];
  readonly dilations: readonly number[];
  readonly group: number;
  /** Apply max(0, y) after the bias (a fused Relu). */
  readonly relu?: boolean;
}

/** Output extent of one sliding-window axis (floor mode). */
export function windowOutputSize(
  inSize: number,
  kernel: number,
  stride: number,
  dilation: number,
  padBegin: number,
  padEnd: number,
): number {
  const span = (kernel - 1) * dilation + 1;
  return Math.floor((inSize + padBegin + padEnd - span) / stride) + 1;
}

/** Y's shape for X [N, C, ...spatial] and W [M, C/group, ...kernel]; throws a plain Error
 * explaining what does not fit (callers add the node name). */
export function convOutputShape(
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
): number[] {
  const rank = xShape.length - 2;
  if (rank < 1 || rank > 3) {
    throw new Error(`input rank ${xShape.length}: need 3 to 5 (N, C, 1-3 spatial axes)`);
  }
  if (wShape.length !== xShape.length) {
    throw new Error(`weight rank ${wShape.length} differs from input rank ${xShape.length}`);
  }
  const [n, c] = xShape;
  const m = wShape[0];
  const g = attrs.group;
  if (g < 1 || c % g !== 0 || m % g !== 0) {
    throw new Error(`group ${g} must divide input channels ${c} and output channels ${m}`);
  }
  if (wShape[1] * g !== c) {
    throw new Error(`weight has ${wShape[1]} input channels per group, input has ${c}/${g}`);
  }
  checkAxisList("strides", attrs.strides, rank);
  checkAxisList("dilations", attrs.dilations, rank);
  if (attrs.pads.length !== 2 * rank) {
    throw new Error(`pads needs ${2 * rank} values, got ${attrs.pads.length}`);
  }
  const out = [n, m];
  for (let a = 0; a < rank; a++) {
    const o = windowOutputSize(
      xShape[a + 2],
      wShape[a + 2],
      attrs.strides[a],
      attrs.dilations[a],
      attrs.pads[a],
      attrs.pads[a + rank],
    );
    if (o < 1) {
      throw new Error(
        `axis ${a + 2}: kernel ${wShape[a + 2]} (dilation ${attrs.dilations[a]}) does not fit ` +
          `input ${xShape[a + 2]} with pads ${attrs.pads[a]}+${attrs.pads[a + rank]}`,
      );
    }
    out.push(o);
  }
  return out;
}

function checkAxisList(name: string, values: readonly number[], rank: number): void {
  if (values.length !== rank) throw new Error(`${name} needs ${rank} values, got ${values.length}`);
  for (const v of values) if (!(v >= 1)) throw new Error(`${name} must be >= 1, got ${v}`);
}

/** Left-pads a per-axis list to 3 axes (D, H, W) with `fill`, so 1-D and 2-D problems run as
 * 3-D ones with unit leading axes. */
export function to3d(values: readonly number[], fill: number): [number, number, number] {
  const out = [fill, fill, fill];
  const off = 3 - values.length;
  for (let i = 0; i < values.length; i++) out[off + i] = values[i];
  return out as [number, number, number];
}

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
