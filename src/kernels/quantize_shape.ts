/** Scale layouts of linear quantization (per tensor, per axis, blocked) and the integer ranges
 * of the quantized types, shared by the bindings (quantize.ts), the references (quantize_ref.ts)
 * and the ONNX ops. */
import { EngineError } from "../util/errors.ts";
import { type DType, intRange, shapeString, sizeOf } from "../util/tensor.ts";
import { tryNormalizeAxis } from "./shape.ts";

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
  const a = tryNormalizeAxis(axis, rank);
  if (a === undefined) {
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

/** Integer range of a quantized dtype (int8, uint8); anything else is an error. */
export function quantRange(dtype: DType): { min: number; max: number } {
  const r = dtype === "int8" || dtype === "uint8" ? intRange(dtype) : undefined;
  if (!r) throw new EngineError(`${dtype} is not a quantized type (int8, uint8)`);
  return r;
}

/** Per-channel scale of a requantization: `channels` values along the output axis whose
 * elements are `inner` apart (conv: inner = spatial size; matmul: inner 1, channels N). */
export interface RequantAxis {
  readonly channels: number;
  readonly inner: number;
}
