/** Host bindings of the linear-quantization kernels: quantize and dequantize with per-tensor,
 * per-axis or blocked scales (shaders/quantize.wgsl), requantization of integer accumulators
 * (shaders/quantize_requant.wgsl) and the range of DynamicQuantizeLinear
 * (shaders/quantize_range.wgsl). Independent of ONNX; src/kernels/quantize_ref.ts holds the CPU
 * references.
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
  Params,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { type DType, intRange, shapeString, sizeOf } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";

const WG = 256;
const MODE_QUANTIZE = 0;
const MODE_DEQUANTIZE = 1;

/** Which scale (and zero point) each element of a tensor uses: `axis` (default 1) and
 * `blockSize` (default 0: not blocked) as the ONNX attributes give them. */
export interface QuantAxis {
  readonly axis?: number;
  readonly blockSize?: number;
}

/** Index arithmetic of shaders/quantize.wgsl: element i = (outer * axisLen + a) * inner + j uses
 * scale outer * outerStride + floor(a / block) * axisStride + j * innerStride. */
export interface QuantLayout {
  readonly kind: "tensor" | "axis" | "blocked";
  readonly inner: number;
  readonly axisLen: number;
  readonly block: number;
  readonly outerStride: number;
  readonly axisStride: number;
  readonly innerStride: number;
}

/** How a scale of `scaleShape` applies to a tensor of `shape` (ONNX rules): one value (rank 0 or
 * one element) per tensor; a 1-D scale of shape[axis] values per axis; with blockSize > 0 a scale
 * of the tensor's rank whose axis is ceil(shape[axis] / blockSize) long. Throws EngineError
 * naming the shapes when the scale fits none of them. */
export function quantLayout(
  shape: readonly number[],
  scaleShape: readonly number[],
  { axis = 1, blockSize = 0 }: QuantAxis = {},
): QuantLayout {
  const perTensor = { inner: 1, axisLen: 1, block: 1, outerStride: 0, axisStride: 0 };
  if (blockSize === 0 && sizeOf(scaleShape) === 1 && scaleShape.length <= 1) {
    return { kind: "tensor", ...perTensor, innerStride: 0 };
  }
  const rank = shape.length;
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw new EngineError(`quantization axis ${axis} is out of range for rank ${rank}`);
  }
  const axisLen = shape[a];
  const inner = sizeOf(shape.slice(a + 1));
  if (blockSize === 0) {
    if (scaleShape.length !== 1 || scaleShape[0] !== axisLen) {
      throw new EngineError(
        `scale ${shapeString(scaleShape)} is neither per-tensor nor per-axis for axis ${a} of ` +
          shapeString(shape),
      );
    }
    return {
      kind: "axis",
      inner,
      axisLen,
      block: 1,
      outerStride: 0,
      axisStride: 1,
      innerStride: 0,
    };
  }
  if (blockSize < 0 || !Number.isInteger(blockSize)) {
    throw new EngineError(`block_size ${blockSize} must be a positive integer`);
  }
  const blocks = Math.ceil(axisLen / blockSize);
  const expected = shape.map((d, i) => (i === a ? blocks : d));
  if (shapeString(expected) !== shapeString(scaleShape)) {
    throw new EngineError(
      `blocked scale ${shapeString(scaleShape)} does not match ${shapeString(shape)} with ` +
        `block_size ${blockSize} on axis ${a} (expected ${shapeString(expected)})`,
    );
  }
  return {
    kind: "blocked",
    inner,
    axisLen,
    block: blockSize,
    outerStride: blocks * inner,
    axisStride: inner,
    innerStride: 1,
  };
}

/** The scale index of flat element `i` under `layout` (what the shader computes). */
export function scaleIndex(layout: QuantLayout, i: number): number {
  const j = i % layout.inner;
  const t = Math.floor(i / layout.inner);
  const a = t % layout.axisLen;
  const outer = Math.floor(t / layout.axisLen);
  return outer * layout.outerStride + Math.floor(a / layout.block) * layout.axisStride +
    j * layout.innerStride;
}

/** Whether a reduction of `k` centred products of `a` and `b` values (int8/uint8, or float
 * tensors holding such integers) is exact in float32 whatever the values: k * max|a'| * max|b'|
 * < 2^24 with |a'| <= 255 for a zero point of the same type. */
export function exactReduction(k: number, aMax = 255, bMax = 255): boolean {
  return k * aMax * bMax < 2 ** 24;
}

/** Integer range of a quantized dtype (int8, uint8); anything else is an error. */
export function quantRange(dtype: DType): { min: number; max: number } {
  const r = dtype === "int8" || dtype === "uint8" ? intRange(dtype) : undefined;
  if (!r) throw new EngineError(`${dtype} is not a quantized type (int8, uint8)`);
  return r;
}

function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float16";
}

function checkSameSize(what: string, x: GpuTensor, out: GpuTensor): void {
  if (sizeOf(x.shape) !== sizeOf(out.shape)) {
    throw new EngineError(
      `${what}: output ${shapeString(out.shape)} does not match input ${shapeString(x.shape)}`,
    );
  }
}

/** A one-element constant (a zero point of 0, a scale of 1) owned by `owner`. */
function constantTensor(gpu: Gpu, owner: ResourceOwner, dtype: DType, value: number): GpuTensor {
  const data = isFloat(dtype) ? new Float32Array([value]) : new Int32Array([value]);
  const buffer = owner.own(createStorageBuffer(gpu, data, `quantize ${dtype} ${value}`));
  return { buffer, shape: [], dtype };
}

function layoutParams(count: number, layout: QuantLayout): Params {
  return new Params().u32(
    count,
    layout.inner,
    layout.axisLen,
    layout.block,
    layout.outerStride,
    layout.axisStride,
    layout.innerStride,
  );
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
  checkSameSize("quantize", x, out);
  const layout = checkScales("quantize", x, scale, zero, q);
  const count = sizeOf(x.shape);
  if (count === 0) return [];
  const uniform = owner.own(createUniform(gpu, layoutParams(count, layout), "quantize"));
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
  checkSameSize("dequantize", x, out);
  const layout = checkScales("dequantize", x, scale, zero, q);
  const count = sizeOf(x.shape);
  if (count === 0) return [];
  const uniform = owner.own(createUniform(gpu, layoutParams(count, layout), "dequantize"));
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

/** Per-channel scale of a requantization: `channels` values along the output axis whose
 * elements are `inner` apart (conv: inner = spatial size; matmul: inner 1, channels N). */
export interface RequantAxis {
  readonly channels: number;
  readonly inner: number;
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
  checkSameSize("requantize", acc, out);
  const count = sizeOf(acc.shape);
  if (count === 0) return [];
  const params = new Params().u32(
    count,
    perChannel?.inner ?? 1,
    perChannel?.channels ?? 1,
    bCount === 1 ? 0 : 1,
  );
  const uniform = owner.own(createUniform(gpu, params, "requantize"));
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
    createUniform(gpu, new Params().u32(sizeOf(x.shape)), "dynamic quantize"),
  );
  return [
    prepareDispatch(gpu, { shader: "quantize_range" }, [x, scale, zero, uniform], 1),
    ...prepareQuantize(gpu, owner, x, scale, zero, y),
  ];
}
