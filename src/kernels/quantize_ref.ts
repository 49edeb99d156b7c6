/** CPU references of the quantization kernels (src/kernels/quantize.ts): the oracle of the kernel
 * tests and the ONNX ops' `cpu` (constant folding). They compute what the kernels compute, in
 * the same float32 steps (Math.fround), so GPU and CPU agree exactly. */
import { type CpuTensor, cpuTensor, type DType, roundToF16, sizeOf } from "../util/tensor.ts";
import { roundHalfEven } from "./elementwise_ref.ts";
import {
  type QuantAxis,
  quantLayout,
  quantRange,
  type RequantAxis,
  scaleIndex,
} from "./quantize_shape.ts";

const f32 = Math.fround;

function values(t: CpuTensor): ArrayLike<number> {
  return t.data as ArrayLike<number>;
}

/** Reference of `prepareQuantize`: saturate(round_half_even(f32(x / scale)) + zero). */
export function quantizeRef(
  x: CpuTensor,
  scale: CpuTensor,
  zero: CpuTensor | undefined,
  outDType: DType,
  q: QuantAxis = {},
): CpuTensor {
  const { min, max } = quantRange(outDType);
  const layout = quantLayout(x.shape, scale.shape, q);
  const half = x.dtype === "float16" && scale.dtype === "float16";
  const xs = values(x), ss = values(scale), zs = zero ? values(zero) : undefined;
  const n = sizeOf(x.shape);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const s = scaleIndex(layout, i);
    let v = f32(xs[i] / ss[s]); // float64 division rounded once: the correctly rounded f32 quotient
    if (half) v = roundToF16(v);
    if (Number.isNaN(v)) {
      out[i] = min;
      continue;
    }
    const r = Math.max(-16777216, Math.min(16777216, roundHalfEven(v)));
    out[i] = Math.max(min, Math.min(max, r + (zs ? zs[s] : 0)));
  }
  return cpuTensor(outDType, x.shape, out);
}

/** Reference of `prepareDequantize`: f32(f32(x - zero) * scale), rounded to half for float16. */
export function dequantizeRef(
  x: CpuTensor,
  scale: CpuTensor,
  zero: CpuTensor | undefined,
  outDType: DType,
  q: QuantAxis = {},
): CpuTensor {
  const layout = quantLayout(x.shape, scale.shape, q);
  const xs = values(x), ss = values(scale), zs = zero ? values(zero) : undefined;
  const n = sizeOf(x.shape);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = scaleIndex(layout, i);
    out[i] = f32(f32(xs[i] - (zs ? zs[s] : 0)) * ss[s]);
  }
  return cpuTensor(outDType, x.shape, out); // float16: rounded to half
}

/** x - zero as float32 integers (reference of `prepareCentre`). */
export function centreRef(x: CpuTensor, zero: CpuTensor | undefined, axis = 1): CpuTensor {
  const ones = zero ? cpuTensor("float32", zero.shape, new Array(sizeOf(zero.shape)).fill(1)) : {
    dtype: "float32" as const,
    shape: [],
    data: new Float32Array([1]),
  };
  return dequantizeRef(x, ones, zero, "float32", { axis });
}

/** Reference of `prepareRequantize`: the multiplier in the scales' precision, then
 * saturate(round_half_even(f32(f32(acc * m) + zero))). */
export function requantizeRef(
  acc: CpuTensor,
  aScale: CpuTensor,
  bScale: CpuTensor,
  yScale: CpuTensor,
  yZero: CpuTensor | undefined,
  outDType: DType,
  perChannel?: RequantAxis,
): CpuTensor {
  const { min, max } = quantRange(outDType);
  const half = aScale.dtype === "float16";
  const h = (v: number) => half ? roundToF16(f32(v)) : f32(v);
  const as = values(aScale)[0], bs = values(bScale), ys = values(yScale)[0];
  const zp = yZero ? values(yZero)[0] : 0;
  const inner = perChannel?.inner ?? 1, channels = perChannel?.channels ?? 1;
  const perC = bs.length !== 1;
  const a = values(acc);
  const n = a.length;
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const s = perC ? Math.floor(i / inner) % channels : 0;
    const m = h(h(as * bs[s]) / ys);
    const v = f32(f32(a[i] * m) + zp);
    out[i] = Number.isNaN(v) ? min : Math.max(min, Math.min(max, roundHalfEven(v)));
  }
  return cpuTensor(outDType, acc.shape, out);
}

/** Reference of `prepareDynamicQuantize`: [y (uint8), scale (float32 []), zero (uint8 [])]. */
export function dynamicQuantizeRef(x: CpuTensor): CpuTensor[] {
  let lo = 0, hi = 0;
  const xs = values(x);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    if (Number.isNaN(v)) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const scale = hi === lo ? 1 : f32(f32(hi - lo) / 255);
  const zero = roundHalfEven(Math.max(0, Math.min(255, f32(0 - f32(lo / scale)))));
  const s = cpuTensor("float32", [], [scale]);
  const z = cpuTensor("uint8", [], [zero]);
  return [quantizeRef(x, s, z, "uint8"), s, z];
}
