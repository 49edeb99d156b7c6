/** Resize's options and per-axis sampling tables (ONNX Resize / Upsample, torchvision-style
 * antialiased resampling), shared by the GPU kernel (`resize.ts`, which uploads the tables), the
 * host reference (`resize_ref.ts`, which applies them in float64) and the ONNX op.
 *
 * Every mode ONNX defines is separable: the N-d result is the 1-D resampling applied along each
 * axis in turn (ONNX's reference interpolates the inner axes for every row of the outer axis and
 * then combines those rows with the outer axis' 1-D coefficients). So a resize is described by
 * one table per axis: for output position `o`, `value = bias[o] + sum_t weight[o,t] * in[index[o,t]]`.
 * The tables are computed here in float64 following onnx/reference/ops/op_resize.py step by step
 * (coordinate transform, `ratio` in (0, 1], coefficient window, edge padding, exclude_outside),
 * so both the host path and the GPU path are exact up to the final rounding. */
import { type DType, shapeString } from "../util/tensor.ts";

export type ResizeMode = "nearest" | "linear" | "cubic";

/** How an output coordinate maps to an input coordinate (ONNX `coordinate_transformation_mode`;
 * `tf_half_pixel_for_nn` exists only in opset 11). */
export type CoordMode =
  | "half_pixel"
  | "half_pixel_symmetric"
  | "pytorch_half_pixel"
  | "align_corners"
  | "asymmetric"
  | "tf_crop_and_resize"
  | "tf_half_pixel_for_nn";

/** Nearest-mode rounding (ONNX `nearest_mode`). `simple` is what Resize-10 and Upsample do in
 * practice (onnxruntime): floor when upsampling an axis, ceil when downsampling it. */
export type NearestMode = "round_prefer_floor" | "round_prefer_ceil" | "floor" | "ceil" | "simple";

export const COORD_MODES: readonly CoordMode[] = [
  "half_pixel",
  "half_pixel_symmetric",
  "pytorch_half_pixel",
  "align_corners",
  "asymmetric",
  "tf_crop_and_resize",
  "tf_half_pixel_for_nn",
];
export const NEAREST_MODES: readonly NearestMode[] = [
  "round_prefer_floor",
  "round_prefer_ceil",
  "floor",
  "ceil",
  "simple",
];

export interface ResizeOptions {
  mode: ResizeMode;
  /** Default `half_pixel`. */
  coordMode?: CoordMode;
  /** Default `round_prefer_floor`. */
  nearestMode?: NearestMode;
  /** Cubic coefficient `a` (ONNX `cubic_coeff_a`): default -0.75 (PyTorch/PIL use -0.5). */
  cubicA?: number;
  /** Drop taps outside the input and renormalise the rest (ONNX `exclude_outside`). */
  excludeOutside?: boolean;
  /** Widen the linear/cubic filter by 1/scale when downsampling (ONNX `antialias`). */
  antialias?: boolean;
  /** Value for output points outside the input in `tf_crop_and_resize` (default 0). */
  extrapolationValue?: number;
  /** Scale factor per axis (rank entries). Default: output length / input length. */
  scales?: readonly number[];
  /** The real-valued output length per axis, `input length * scale` before flooring, which ONNX
   * uses in `align_corners`, `half_pixel_symmetric`, `pytorch_half_pixel` and
   * `tf_crop_and_resize`. Default: `input length * scale`, computed in float64. */
  scaledLengths?: readonly number[];
  /** `tf_crop_and_resize` region, normalised: rank starts then rank ends (default 0s and 1s). */
  roi?: readonly number[];
}

/** How one axis is resampled: output `o` reads `count[o]` taps; tap `t` of `o` reads input
 * position `index[o * taps + t]` (already clamped into [0, inLen)) with `weight[o * taps + t]`.
 * `fill[o]` = 1 marks an extrapolated point whose value is `extrapolationValue`. Taps that land
 * on the same input position are merged and zero weights are dropped. */
export interface AxisTable {
  readonly inLen: number;
  readonly outLen: number;
  /** Maximum tap count over all outputs (row stride of `index` and `weight`). */
  readonly taps: number;
  readonly count: Uint32Array;
  readonly fill: Uint8Array;
  readonly index: Int32Array;
  readonly weight: Float64Array;
}

/** The per-axis facts a table depends on. */
export interface AxisSpec {
  readonly inLen: number;
  readonly outLen: number;
  readonly scale: number;
  readonly scaledLength: number;
  readonly roiStart: number;
  readonly roiEnd: number;
}

/** Per-axis specs for resizing `inShape` to `outShape` under `opts` (validated). */
export function axisSpecs(
  inShape: readonly number[],
  outShape: readonly number[],
  opts: ResizeOptions,
): AxisSpec[] {
  const rank = inShape.length;
  if (outShape.length !== rank) {
    throw new RangeError(
      `resize: output ${shapeString(outShape)} has a different rank than input ${
        shapeString(inShape)
      }`,
    );
  }
  if (opts.scales && opts.scales.length !== rank) {
    throw new RangeError(`resize: ${opts.scales.length} scales for rank ${rank}`);
  }
  if (opts.scaledLengths && opts.scaledLengths.length !== rank) {
    throw new RangeError(`resize: ${opts.scaledLengths.length} scaled lengths for rank ${rank}`);
  }
  if (opts.roi && opts.roi.length !== 2 * rank) {
    throw new RangeError(`resize: roi has ${opts.roi.length} values, expected ${2 * rank}`);
  }
  return inShape.map((inLen, d) => {
    const outLen = outShape[d];
    const scale = opts.scales?.[d] ?? outLen / inLen;
    return {
      inLen,
      outLen,
      scale,
      scaledLength: opts.scaledLengths?.[d] ?? scale * inLen,
      roiStart: opts.roi?.[d] ?? 0,
      roiEnd: opts.roi?.[rank + d] ?? 1,
    };
  });
}

/** Input coordinate of output position `x`, or undefined where tf_crop_and_resize extrapolates.
 * Mirrors the reference's float64 arithmetic (with float32 steps where numpy computes them in
 * float32: roi differences and products of float32 roi values). */
function sourceCoordinate(x: number, a: AxisSpec, mode: CoordMode): number | undefined {
  const { inLen, scale, scaledLength: outWidth } = a;
  switch (mode) {
    case "align_corners":
      return outWidth === 1 ? 0 : (x * (inLen - 1)) / (outWidth - 1);
    case "asymmetric":
      return x / scale;
    case "tf_crop_and_resize": {
      const extent = Math.fround(a.roiEnd - a.roiStart);
      let xOri = outWidth === 1
        ? (extent * (inLen - 1)) / 2
        : (x * extent * (inLen - 1)) / (outWidth - 1);
      xOri += Math.fround(a.roiStart * (inLen - 1));
      return xOri < 0 || xOri > inLen - 1 ? undefined : xOri;
    }
    case "pytorch_half_pixel":
      return outWidth === 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    case "half_pixel":
      return (x + 0.5) / scale - 0.5;
    case "half_pixel_symmetric": {
      const adjustment = a.outLen / outWidth;
      const center = inLen / 2;
      const offset = center * (1 - adjustment);
      return offset + (x + 0.5) / scale - 0.5;
    }
    case "tf_half_pixel_for_nn":
      return (x + 0.5) / scale;
  }
}

/** Keys cubic: the piecewise cubic with parameter `a` at distance `x`. */
function cubicKernel(x: number, a: number): number {
  const t = Math.abs(x);
  const t2 = t * t;
  const t3 = t * t2;
  if (t <= 1) return (a + 2) * t3 - (a + 3) * t2 + 1;
  if (t < 2) return a * t3 - 5 * a * t2 + 8 * a * t - 4 * a;
  return 0;
}

/** Coefficients for input positions `base + first + j` (j = 0..n-1), where `base + ratio` is the
 * source coordinate and ratio is in (0, 1]. Returns [first, coefficients]. */
function coefficients(
  ratio: number,
  scale: number,
  opts: ResizeOptions,
  nearestMode: NearestMode,
): [number, number[]] {
  switch (opts.mode) {
    case "nearest": {
      if (ratio === 1) return [0, [0, 1]];
      let right: boolean;
      switch (nearestMode) {
        case "round_prefer_floor":
          right = ratio > 0.5;
          break;
        case "round_prefer_ceil":
          right = ratio >= 0.5;
          break;
        case "floor":
          right = false;
          break;
        case "ceil":
          right = true;
          break;
        case "simple":
          right = scale < 1;
          break;
      }
      return [0, right ? [0, 1] : [1, 0]];
    }
    case "linear": {
      if (!opts.antialias) return [0, [1 - ratio, ratio]];
      // The triangle filter widened to 1/scale input pixels when downsampling.
      const s = Math.min(scale, 1);
      const start = Math.floor(Math.fround(-1 / s)) + 1;
      const footprint = 2 - 2 * start;
      const c: number[] = [];
      for (let j = 0; j < footprint; j++) {
        c.push(Math.min(Math.max(1 - Math.abs((start + j - ratio) * s), 0), 1));
      }
      return [start, normalise(c)];
    }
    case "cubic": {
      const a = opts.cubicA ?? -0.75;
      if (!opts.antialias) {
        const r1 = ratio + 1;
        const q = 1 - ratio;
        const q1 = q + 1;
        return [-1, [
          ((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a,
          ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1,
          ((a + 2) * q - (a + 3)) * q * q + 1,
          ((a * q1 - 5 * a) * q1 + 8 * a) * q1 - 4 * a,
        ]];
      }
      const s = Math.min(scale, 1);
      const start = Math.floor(Math.fround(-2 / s)) + 1;
      const c: number[] = [];
      for (let i = start; i < 2 - start; i++) c.push(cubicKernel(s * (i - ratio), a));
      return [start, normalise(c)];
    }
  }
}

function normalise(c: number[]): number[] {
  let sum = 0;
  for (const v of c) sum += v;
  return c.map((v) => v / sum);
}

/** The sampling table of one axis (see AxisTable). */
export function axisTable(a: AxisSpec, opts: ResizeOptions): AxisTable {
  const { inLen, outLen } = a;
  const coordMode = opts.coordMode ?? "half_pixel";
  const nearestMode = opts.nearestMode ?? "round_prefer_floor";
  if (opts.mode === "nearest" && opts.antialias) {
    throw new RangeError("resize: antialias is not defined for mode 'nearest'");
  }
  if (inLen === 0 && outLen > 0) throw new RangeError("resize: cannot resize an empty axis");
  const rows: { index: number[]; weight: number[]; fill: boolean }[] = [];
  let taps = 0;
  for (let o = 0; o < outLen; o++) {
    const xOri = sourceCoordinate(o, a, coordMode);
    if (xOri === undefined) {
      rows.push({ index: [], weight: [], fill: true });
      continue;
    }
    const floorX = Math.floor(xOri);
    const ratio = Number.isInteger(xOri) ? 1 : xOri - floorX;
    const base = xOri - ratio; // the input position left of xOri (an integer)
    const [first, coeffs] = coefficients(ratio, a.scale, opts, nearestMode);
    const n = coeffs.length;
    // The reference edge-pads the input by ceil(n/2) and takes the n positions nearest xOri
    // inside the padded range: the window [base + first, base + first + n) slid into it.
    const pad = Math.ceil(n / 2);
    const lo = Math.min(Math.max(base + first, -pad), inLen + pad - n);
    if (opts.excludeOutside) {
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const p = lo + j;
        if (p < 0 || p >= inLen) coeffs[j] = 0;
        sum += coeffs[j];
      }
      for (let j = 0; j < n; j++) coeffs[j] /= sum;
    }
    // Merge taps that read the same (edge-clamped) position; drop zero weights.
    const index: number[] = [];
    const weight: number[] = [];
    for (let j = 0; j < n; j++) {
      if (coeffs[j] === 0) continue;
      const p = Math.min(Math.max(lo + j, 0), inLen - 1);
      const k = index.indexOf(p);
      if (k >= 0) weight[k] += coeffs[j];
      else {
        index.push(p);
        weight.push(coeffs[j]);
      }
    }
    taps = Math.max(taps, index.length);
    rows.push({ index, weight, fill: false });
  }
  const count = new Uint32Array(outLen);
  const fill = new Uint8Array(outLen);
  const index = new Int32Array(outLen * taps);
  const weight = new Float64Array(outLen * taps);
  rows.forEach((r, o) => {
    count[o] = r.index.length;
    fill[o] = r.fill ? 1 : 0;
    index.set(r.index, o * taps);
    weight.set(r.weight, o * taps);
  });
  return { inLen, outLen, taps, count, fill, index, weight };
}

/** True when the table maps every position to itself (the axis needs no pass). */
export function isIdentityTable(t: AxisTable): boolean {
  if (t.inLen !== t.outLen) return false;
  for (let o = 0; o < t.outLen; o++) {
    if (t.fill[o] || t.count[o] !== 1 || t.index[o * t.taps] !== o || t.weight[o * t.taps] !== 1) {
      return false;
    }
  }
  return true;
}

/** True when every output copies one input element or is a fill (no arithmetic needed). */
export function isGatherTable(t: AxisTable): boolean {
  for (let o = 0; o < t.outLen; o++) {
    if (t.fill[o]) continue;
    if (t.count[o] !== 1 || t.weight[o * t.taps] !== 1) return false;
  }
  return true;
}

/** Checks that a dtype can be resized (ONNX Resize takes numeric tensors only). */
export function checkResizeDtype(dtype: DType): void {
  if (dtype === "bool") throw new RangeError("resize: bool tensors cannot be resized");
}
