/** Host bindings of the linear-quantization kernels: quantize and dequantize with per-tensor,
 * per-axis or blocked scales (shaders/quantize.wgsl), requantization of integer accumulators
 * (shaders/quantize_requant.wgsl) and the range of DynamicQuantizeLinear
 * (shaders/quantize_range.wgsl). Independent of ONNX; src/kernels/quantize_ref.ts holds the CPU
 * references and quantize_shape.ts the scale layouts both share.
 *
 * The quantized matrix products and convolutions (ONNX QLinearMatMul, QLinearConv, MatMulInteger,
 * ConvInteger) centre their operands with `prepareCentre` (x - zero point, as exact f32
 * integers), run the float32 matmul / conv kernels and requantize (or convert to int32). That is
 * exact while every partial sum is an integer below 2^24 in magnitude: guaranteed when
 * K * max|a - a_zero| * max|b - b_zero| < 2^24, i.e. K <= 258 for full-range 8-bit operands, and
 * in practice far beyond (centred products have mixed signs); `exactReduction` states the bound.
 * QLinearConv's int32 bias is added in f32 too (exact while |sum + bias| < 2^24). Past the bound
 * a sum is rounded to f32 (relative error 2^-24: a few units in sums over 2^24), which the
 * requantized QLinear outputs practically never show but MatMulInteger/ConvInteger's int32 can. */
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { type DType, shapeString, sizeOf } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import {
  type QuantAxis,
  type QuantLayout,
  quantLayout,
  quantRange,
  type RequantAxis,
} from "./quantize_shape.ts";
import { checkSameSize } from "./shape.ts";

const WG = 256;
const MODE_QUANTIZE = 0;
const MODE_DEQUANTIZE = 1;

/** Whether a reduction of `k` centred products of `a` and `b` values (int8/uint8, or float
 * tensors holding such integers) is exact in float32 whatever the values: k * max|a'| * max|b'|
 * < 2^24 with |a'| <= 255 for a zero point of the same type. */
export function exactReduction(k: number, aMax = 255, bMax = 255): boolean {
  return k * aMax * bMax < 2 ** 24;
}

function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float16";
}

/** A one-element constant (a zero point of 0, a scale of 1) owned by `owner`. */
function constantTensor(gpu: Gpu, owner: ResourceOwner, dtype: DType, value: number): GpuTensor {
  const data = isFloat(dtype) ? new Float32Array([value]) : new Int32Array([value]);
  const buffer = owner.own(createStorageBuffer(gpu, data, `quantize ${dtype} ${value}`));
  return { buffer, shape: [], dtype };
}

/** shaders/quantize.wgsl's uniform for `count` elements under `layout`. */
function layoutUniform(
  gpu: Gpu,
  owner: ResourceOwner,
  count: number,
  layout: QuantLayout,
  label: string,
): GPUBuffer {
  return owner.own(createUniform(gpu, "quantize", {
    count,
    inner: layout.inner,
    axis_len: layout.axisLen,
    block: layout.block,
    outer_stride: layout.outerStride,
    axis_stride: layout.axisStride,
    inner_stride: layout.innerStride,
  }, label));
}

function checkScales(
  what: string,
  x: GpuTensor,
  scale: GpuTensor,
  zero: GpuTensor | undefined,
  q: QuantAxis,
): QuantLayout {
  if (!isFloat(scale.dtype)) throw new EngineError(`${what}: scale is ${scale.dtype}`);
  if (zero && shapeString(zero.shape) !== shapeString(scale.shape)) {
    throw new EngineError(
      `${what}: zero point ${shapeString(zero.shape)} and scale ${shapeString(scale.shape)} ` +
        `differ in shape`,
    );
  }
  return quantLayout(x.shape, scale.shape, q);
}

/** out = saturate(round_half_even(x / scale) + zero) with per-tensor, per-axis or blocked scales
 * (ONNX QuantizeLinear). x and scale float32 or float16 (both float16: the quotient is rounded
 * to half first, as numpy's float16 division); zero (optional: 0) and out int8 or uint8, the same
 * dtype. NaN quantizes to the type's minimum. */
export function prepareQuantize(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  scale: GpuTensor,
  zero: GpuTensor | undefined,
  out: GpuTensor,
  q: QuantAxis = {},
): Dispatch[] {
  if (!isFloat(x.dtype)) throw new EngineError(`quantize: input is ${x.dtype}, expected a float`);
  const range = quantRange(out.dtype);
  if (zero && zero.dtype !== out.dtype) {
    throw new EngineError(`quantize: zero point is ${zero.dtype}, output ${out.dtype}`);
  }
  checkSameSize("quantize", x.shape, out.shape);
  const layout = checkScales("quantize", x, scale, zero, q);
  const count = sizeOf(x.shape);
  if (count === 0) return [];
  const uniform = layoutUniform(gpu, owner, count, layout, "quantize");
  const zp = zero ?? constantTensor(gpu, owner, out.dtype, 0);
  return [prepareDispatch(
    gpu,
    {
      shader: "quantize",
      constants: {
        WG,
        MODE: MODE_QUANTIZE,
        QMIN: range.min,
        QMAX: range.max,
        ROUND_F16: x.dtype === "float16" && scale.dtype === "float16" ? 1 : 0,
      },
    },
    [x, scale, zp, out, uniform],
    Math.ceil(count / WG),
  )];
}

/** out = (x - zero) * scale with per-tensor, per-axis or blocked scales (ONNX
 * DequantizeLinear). x int8, uint8 or int32 (zero, optional, of x's dtype); scale float32 or
 * float16; out float32 or float16 (rounded to half). */
export function prepareDequantize(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  scale: GpuTensor,
  zero: GpuTensor | undefined,
  out: GpuTensor,
  q: QuantAxis = {},
): Dispatch[] {
  if (x.dtype !== "int8" && x.dtype !== "uint8" && x.dtype !== "int32") {
    throw new EngineError(`dequantize: input is ${x.dtype}, expected int8, uint8 or int32`);
  }
  if (zero && zero.dtype !== x.dtype) {
    throw new EngineError(`dequantize: zero point is ${zero.dtype}, input ${x.dtype}`);
  }
  if (!isFloat(out.dtype)) throw new EngineError(`dequantize: output is ${out.dtype}`);
  checkSameSize("dequantize", x.shape, out.shape);
  const layout = checkScales("dequantize", x, scale, zero, q);
  const count = sizeOf(x.shape);
  if (count === 0) return [];
  const uniform = layoutUniform(gpu, owner, count, layout, "dequantize");
  const zp = zero ?? constantTensor(gpu, owner, x.dtype, 0);
  return [prepareDispatch(
    gpu,
    {
      shader: "quantize",
      constants: { WG, MODE: MODE_DEQUANTIZE, ROUND_F16: out.dtype === "float16" ? 1 : 0 },
    },
    [x, scale, zp, out, uniform],
    Math.ceil(count / WG),
  )];
}

/** out (float32) = x - zero as exact integers: the operands of the quantized matmul / conv.
 * `zero` (optional: 0) is per-tensor or per-axis along `axis` (e.g. per output channel). */
export function prepareCentre(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  zero: GpuTensor | undefined,
  out: GpuTensor,
  axis = 1,
): Dispatch[] {
  if (out.dtype !== "float32") throw new EngineError(`centre: output is ${out.dtype}`);
  const one = constantTensor(gpu, owner, "float32", 1);
  if (!zero) return prepareDequantize(gpu, owner, x, one, undefined, out);
  // The scale tensor must have the zero point's shape: one value of 1 per zero point.
  const n = sizeOf(zero.shape);
  const ones = n === 1 ? { ...one, shape: zero.shape } : {
    buffer: owner.own(createStorageBuffer(gpu, new Float32Array(n).fill(1), "centre ones")),
    shape: zero.shape,
    dtype: "float32" as const,
  };
  return prepareDequantize(gpu, owner, x, ones, zero, out, { axis });
}

/** out = saturate(round_half_even(acc * (aScale * bScale / yScale) + yZero)) (ONNX QLinearMatMul
 * and QLinearConv after the integer product). acc float32 holding integers; aScale, yScale and
 * yZero (optional: 0) one element each; bScale one element, or one per channel of `perChannel`;
 * scales all float32 or all float16 (the multiplier is then formed in half precision); out int8
 * or uint8 (yZero's dtype). */
export function prepareRequantize(
  gpu: Gpu,
  owner: ResourceOwner,
  acc: GpuTensor,
  aScale: GpuTensor,
  bScale: GpuTensor,
  yScale: GpuTensor,
  yZero: GpuTensor | undefined,
  out: GpuTensor,
  perChannel?: RequantAxis,
): Dispatch[] {
  if (acc.dtype !== "float32") throw new EngineError(`requantize: accumulator is ${acc.dtype}`);
  const range = quantRange(out.dtype);
  if (yZero && (yZero.dtype !== out.dtype || sizeOf(yZero.shape) !== 1)) {
    throw new EngineError(
      `requantize: zero point ${yZero.dtype}${shapeString(yZero.shape)} for ${out.dtype} output`,
    );
  }
  const scales = [aScale, bScale, yScale];
  if (!scales.every((s) => isFloat(s.dtype) && s.dtype === aScale.dtype)) {
    throw new EngineError(`requantize: scales ${scales.map((s) => s.dtype).join(", ")}`);
  }
  if (sizeOf(aScale.shape) !== 1 || sizeOf(yScale.shape) !== 1) {
    throw new EngineError("requantize: the input and output scales must be single values");
  }
  const bCount = sizeOf(bScale.shape);
  if (bCount !== 1 && bCount !== perChannel?.channels) {
    throw new EngineError(
      `requantize: ${bCount} scales for ${perChannel?.channels ?? 1} output channels`,
    );
  }
  checkSameSize("requantize", acc.shape, out.shape);
  const count = sizeOf(acc.shape);
  if (count === 0) return [];
  const uniform = owner.own(createUniform(gpu, "quantize_requant", {
    count,
    inner: perChannel?.inner ?? 1,
    channels: perChannel?.channels ?? 1,
    b_stride: bCount === 1 ? 0 : 1,
  }, "requantize"));
  const zp = yZero ?? constantTensor(gpu, owner, out.dtype, 0);
  return [prepareDispatch(
    gpu,
    {
      shader: "quantize_requant",
      constants: {
        WG,
        QMIN: range.min,
        QMAX: range.max,
        ROUND_F16: aScale.dtype === "float16" ? 1 : 0,
      },
    },
    [acc, aScale, bScale, yScale, zp, out, uniform],
    Math.ceil(count / WG),
  )];
}

/** ONNX DynamicQuantizeLinear: scale (float32, one element) and zero point (uint8, one element)
 * from the range of x (float32) widened to include 0, then y = quantize(x) with them. */
export function prepareDynamicQuantize(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  y: GpuTensor,
  scale: GpuTensor,
  zero: GpuTensor,
): Dispatch[] {
  if (x.dtype !== "float32") throw new EngineError(`dynamic quantize: input is ${x.dtype}`);
  if (y.dtype !== "uint8" || zero.dtype !== "uint8" || scale.dtype !== "float32") {
    throw new EngineError(
      `dynamic quantize: outputs ${y.dtype}, ${scale.dtype}, ${zero.dtype} ` +
        `(expected uint8, float32, uint8)`,
    );
  }
  if (sizeOf(scale.shape) !== 1 || sizeOf(zero.shape) !== 1) {
    throw new EngineError("dynamic quantize: scale and zero point must be single values");
  }
  const uniform = owner.own(
    createUniform(gpu, "quantize_range", { count: sizeOf(x.shape) }, "dynamic quantize"),
  );
  return [
    prepareDispatch(gpu, { shader: "quantize_range" }, [x, scale, zero, uniform], 1),
    ...prepareQuantize(gpu, owner, x, scale, zero, y),
  ];
}
