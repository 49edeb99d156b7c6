/** ONNX operators: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and the quantized
 * products QLinearMatMul, QLinearConv, MatMulInteger and ConvInteger, for int8 and uint8
 * quantized tensors (16-bit, 4-bit and float8 types have no engine dtype: models using them are
 * refused when loaded).
 *
 * The products centre their operands (x - zero point, exact float32 integers), run the float32
 * MatMul / Conv operators of this engine on them and requantize (QLinear*) or convert the exact
 * integer sums to int32 (*Integer). See src/kernels/quantize.ts for when the float32 sums are
 * exact (every partial sum an integer below 2^24: always for K <= 258 full-range terms). */
import { type CpuTensor, type DType, shapeString, sizeOf } from "../../util/tensor.ts";
import {
  createStorageBuffer,
  type Dispatch,
  GPU_ELEMENT_BYTES,
  type GpuTensor,
  STORAGE_USAGE,
  toGpuArray,
} from "../../gpu/mod.ts";
import { prepareCast } from "../../kernels/elementwise.ts";
import { castRef } from "../../kernels/elementwise_ref.ts";
import {
  prepareCentre,
  prepareDequantize,
  prepareDynamicQuantize,
  prepareQuantize,
  prepareRequantize,
} from "../../kernels/quantize.ts";
import { type QuantAxis, quantLayout, type RequantAxis } from "../../kernels/quantize_shape.ts";
import {
  centreRef,
  dequantizeRef,
  dynamicQuantizeRef,
  quantizeRef,
  requantizeRef,
} from "../../kernels/quantize_ref.ts";
import { UnsupportedFeatureError } from "../graph.ts";
import { engineDType, ONNX_TYPE, onnxTypeName } from "../tensor_proto.ts";
import {
  attrInt,
  type GpuOpContext,
  NodeError,
  type OnnxNode,
  type OpContext,
  type OpImpl,
  type TensorInfo,
} from "../types.ts";
import { onNode, required, type Shaped } from "./common.ts";
import { convOps } from "./conv.ts";
import { matmulOps } from "./matmul.ts";

const QUANTIZED: readonly DType[] = ["int8", "uint8"];
const FLOAT: readonly DType[] = ["float32", "float16"];

function isQuantized(dtype: DType): boolean {
  return QUANTIZED.includes(dtype);
}

/** Refuses a tensor whose dtype is not one of `allowed`, naming the node and the input. */
function expectDType(node: OnnxNode, t: Shaped, what: string, allowed: readonly DType[]): void {
  if (!allowed.includes(t.dtype)) {
    throw new NodeError(node, `${what} is ${t.dtype}, expected ${allowed.join(" or ")}`);
  }
}

/** A zero point must have the dtype of the tensor it belongs to. */
function expectZero(node: OnnxNode, zero: Shaped | undefined, of: Shaped, what: string): void {
  if (zero && zero.dtype !== of.dtype) {
    throw new NodeError(node, `${what} zero point is ${zero.dtype} but ${what} is ${of.dtype}`);
  }
}

function expectSingle(node: OnnxNode, t: Shaped | undefined, what: string): void {
  if (t && sizeOf(t.shape) !== 1) {
    throw new UnsupportedFeatureError(
      node,
      `${what} ${shapeString(t.shape)}: only a single (per-tensor) value is supported`,
    );
  }
}

/** axis / block_size attributes (ONNX defaults: 1 and 0). */
function quantAxis(node: OnnxNode): QuantAxis {
  return { axis: attrInt(node, "axis", 1), blockSize: attrInt(node, "block_size", 0) };
}

/** Checks that scale and zero point fit x (per tensor, per axis or blocked). */
function checkLayout(
  node: OnnxNode,
  x: Shaped,
  scale: Shaped,
  zero: Shaped | undefined,
  q: QuantAxis,
): void {
  if (zero && shapeString(zero.shape) !== shapeString(scale.shape)) {
    throw new NodeError(
      node,
      `zero point ${shapeString(zero.shape)} and scale ${shapeString(scale.shape)} differ in shape`,
    );
  }
  onNode(node, () => quantLayout(x.shape, scale.shape, q));
}

/** The engine dtype an `output_dtype` attribute names (0 or absent: undefined). */
function outputDTypeAttr(node: OnnxNode, allowed: readonly DType[]): DType | undefined {
  const code = attrInt(node, "output_dtype", 0);
  if (code === 0) return undefined;
  const dtype = engineDType(code);
  if (!dtype || !allowed.includes(dtype)) {
    throw new UnsupportedFeatureError(
      node,
      `output_dtype ${onnxTypeName(code)} is not supported (${allowed.join(", ")})`,
    );
  }
  return dtype;
}

// ---- QuantizeLinear ----

function quantizePlan(node: OnnxNode, inputs: readonly (Shaped | undefined)[]) {
  const x = required(node, inputs, 0, "x");
  const scale = required(node, inputs, 1, "y_scale");
  const zero = inputs[2];
  expectDType(node, x, "x", FLOAT);
  expectDType(node, scale, "y_scale", FLOAT);
  const precision = attrInt(node, "precision", 0);
  if (precision !== 0 && precision !== ONNX_TYPE.FLOAT) {
    throw new UnsupportedFeatureError(
      node,
      `precision ${onnxTypeName(precision)} is not supported (float32)`,
    );
  }
  const declared = outputDTypeAttr(node, QUANTIZED);
  if (zero) {
    if (!isQuantized(zero.dtype)) {
      throw new UnsupportedFeatureError(
        node,
        `zero point is ${zero.dtype}: only int8 and uint8 quantization is supported`,
      );
    }
    if (declared && declared !== zero.dtype) {
      throw new NodeError(node, `output_dtype ${declared} but the zero point is ${zero.dtype}`);
    }
  }
  const dtype: DType = zero?.dtype ?? declared ?? "uint8";
  const q = quantAxis(node);
  checkLayout(node, x, scale, zero, q);
  return { x, scale, zero, dtype, q };
}

const QuantizeLinear: OpImpl = {
  infer({ node }, inputs) {
    const p = quantizePlan(node, inputs);
    return [{ dtype: p.dtype, shape: p.x.shape }];
  },
  cpu({ node }, inputs) {
    const p = quantizePlan(node, inputs);
    return [onNode(node, () => quantizeRef(inputs[0]!, inputs[1]!, inputs[2], p.dtype, p.q))];
  },
  gpu(ctx, inputs, [out]) {
    const p = quantizePlan(ctx.node, inputs);
    return onNode(
      ctx.node,
      () => prepareQuantize(ctx.gpu, ctx, inputs[0]!, inputs[1]!, inputs[2], out, p.q),
    );
  },
};

// ---- DequantizeLinear ----

function dequantizePlan(node: OnnxNode, inputs: readonly (Shaped | undefined)[]) {
  const x = required(node, inputs, 0, "x");
  const scale = required(node, inputs, 1, "x_scale");
  const zero = inputs[2];
  expectDType(node, x, "x", [...QUANTIZED, "int32"]);
  expectDType(node, scale, "x_scale", FLOAT);
  expectZero(node, zero, x, "x");
  const dtype = outputDTypeAttr(node, FLOAT) ?? scale.dtype;
  const q = quantAxis(node);
  checkLayout(node, x, scale, zero, q);
  return { x, scale, zero, dtype, q };
}

const DequantizeLinear: OpImpl = {
  infer({ node }, inputs) {
    const p = dequantizePlan(node, inputs);
    return [{ dtype: p.dtype, shape: p.x.shape }];
  },
  cpu({ node }, inputs) {
    const p = dequantizePlan(node, inputs);
    return [onNode(node, () => dequantizeRef(inputs[0]!, inputs[1]!, inputs[2], p.dtype, p.q))];
  },
  gpu(ctx, inputs, [out]) {
    const p = dequantizePlan(ctx.node, inputs);
    return onNode(
      ctx.node,
      () => prepareDequantize(ctx.gpu, ctx, inputs[0]!, inputs[1]!, inputs[2], out, p.q),
    );
  },
};

// ---- DynamicQuantizeLinear ----

const DynamicQuantizeLinear: OpImpl = {
  infer({ node }, inputs) {
    const x = required(node, inputs, 0, "x");
    expectDType(node, x, "x", ["float32"]);
    return [
      { dtype: "uint8", shape: x.shape },
      { dtype: "float32", shape: [] },
      { dtype: "uint8", shape: [] },
    ];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0, "x");
    expectDType(node, x, "x", ["float32"]);
    return dynamicQuantizeRef(x);
  },
  gpu(ctx, inputs, [y, scale, zero]) {
    const x = required(ctx.node, inputs, 0, "x");
    return onNode(ctx.node, () => prepareDynamicQuantize(ctx.gpu, ctx, x, y, scale, zero));
  },
};

// ---- quantized products: shared plumbing ----

/** A float32 scratch tensor owned by the plan. */
function scratch(ctx: GpuOpContext, shape: readonly number[], label: string): GpuTensor {
  const size = Math.max(16, Math.ceil(sizeOf(shape) * GPU_ELEMENT_BYTES / 16) * 16);
  const buffer = ctx.own(ctx.gpu.device.createBuffer({ size, usage: STORAGE_USAGE, label }));
  return { buffer, shape: [...shape], dtype: "float32" };
}

/** The float32 operand x - zero of a quantized product, with its host value when x (and the zero
 * point) are constants: then centred once here and uploaded, else centred on the GPU per run. */
function centred(
  ctx: GpuOpContext,
  index: number,
  zeroIndex: number,
  axis: number,
  label: string,
): { tensor: GpuTensor; info: TensorInfo } {
  const xInfo = ctx.inputInfos[index]!;
  const zInfo = ctx.inputInfos[zeroIndex];
  if (xInfo.value && (!zInfo || zInfo.value)) {
    const value = centreRef(xInfo.value, zInfo?.value, axis);
    const buffer = ctx.own(createStorageBuffer(ctx.gpu, toGpuArray(value), label));
    const tensor: GpuTensor = { buffer, shape: value.shape, dtype: "float32" };
    return { tensor, info: { dtype: "float32", shape: value.shape, value } };
  }
  return {
    tensor: scratch(ctx, xInfo.shape, label),
    info: { dtype: "float32", shape: xInfo.shape },
  };
}

/** Context to run a float operator (MatMul, Conv) of this engine for a quantized node: the same
 * node (errors name it), float32 infos, exact float32 operands. */
function floatContext(
  ctx: GpuOpContext,
  inputInfos: readonly (TensorInfo | undefined)[],
  outputInfos: readonly TensorInfo[],
): GpuOpContext {
  return {
    node: ctx.node,
    opset: ctx.opset,
    gpu: ctx.gpu,
    inputInfos,
    outputInfos,
    precision: "f32",
    variantCache: ctx.variantCache,
    own: (r) => ctx.own(r),
  };
}

const floatInfo = (t: Shaped): TensorInfo => ({ dtype: "float32", shape: t.shape });

/** Which inputs a quantized product reads: its two operands, their zero points, the axis each
 * zero point may run along (per-row / per-output-channel), and the float operator. */
interface ProductSpec {
  readonly a: number;
  readonly aZero: number;
  readonly b: number;
  readonly bZero: number;
  readonly bias?: number;
  readonly op: OpImpl;
  /** Axis of a's and b's zero points (and b's scales) when they are per channel. */
  readonly aAxis: (a: Shaped) => number;
  readonly bAxis: (b: Shaped) => number;
}

const MATMUL_SPEC = (indices: { a: number; aZero: number; b: number; bZero: number }) => ({
  ...indices,
  op: matmulOps.MatMul,
  aAxis: (a: Shaped) => a.shape.length - 2,
  bAxis: (b: Shaped) => b.shape.length - 1,
});

const CONV_SPEC = (indices: { a: number; aZero: number; b: number; bZero: number }) => ({
  ...indices,
  op: convOps.Conv,
  aAxis: () => 1,
  bAxis: () => 0,
});

/** Checks the operands and zero points and returns the float product's output shape. */
function productShape(
  ctx: OpContext,
  spec: ProductSpec,
  inputs: readonly (Shaped | undefined)[],
): number[] {
  const { node } = ctx;
  const a = required(node, inputs, spec.a, "A");
  const b = required(node, inputs, spec.b, "B");
  expectDType(node, a, "A", QUANTIZED);
  expectDType(node, b, "B", QUANTIZED);
  const aZero = inputs[spec.aZero];
  const bZero = inputs[spec.bZero];
  expectZero(node, aZero, a, "A");
  expectZero(node, bZero, b, "B");
  const floatIns: (TensorInfo | undefined)[] = [floatInfo(a), floatInfo(b)];
  if (spec.bias !== undefined && inputs[spec.bias]) {
    const bias = inputs[spec.bias]!;
    expectDType(node, bias, "B (bias)", ["int32"]);
    floatIns.push(floatInfo(bias));
  }
  const [out] = spec.op.infer(ctx, floatIns);
  // Zero points: one value, or one per row of A / per column of B (per output channel of W).
  for (
    const [z, t, axis, what] of [
      [aZero, a, spec.aAxis(a), "A"],
      [bZero, b, spec.bAxis(b), "B"],
    ] as const
  ) {
    if (!z || sizeOf(z.shape) === 1) continue;
    if (z.shape.length !== 1 || z.shape[0] !== t.shape[axis]) {
      throw new NodeError(
        node,
        `${what} zero point ${shapeString(z.shape)} is neither a single value nor one per ` +
          `index of axis ${axis} of ${shapeString(t.shape)}`,
      );
    }
  }
  return [...out.shape];
}

/** CPU: the float32 product of the centred operands (and float bias). */
function productRef(
  ctx: OpContext,
  spec: ProductSpec,
  inputs: readonly (CpuTensor | undefined)[],
): CpuTensor {
  const a = inputs[spec.a]!, b = inputs[spec.b]!;
  const ins: (CpuTensor | undefined)[] = [
    centreRef(a, inputs[spec.aZero], spec.aAxis(a)),
    centreRef(b, inputs[spec.bZero], spec.bAxis(b)),
  ];
  const bias = spec.bias !== undefined ? inputs[spec.bias] : undefined;
  if (bias) ins.push(castRef(bias, "float32"));
  return spec.op.cpu(ctx, ins)[0];
}

/** GPU: centres the operands and records the float product into a new float32 scratch. */
function productGpu(
  ctx: GpuOpContext,
  spec: ProductSpec,
  inputs: readonly (GpuTensor | undefined)[],
  outShape: readonly number[],
): { acc: GpuTensor; dispatches: Dispatch[] } {
  const dispatches: Dispatch[] = [];
  const operand = (index: number, zeroIndex: number, axis: number, label: string) => {
    const c = centred(ctx, index, zeroIndex, axis, label);
    if (!c.info.value) {
      dispatches.push(
        ...prepareCentre(ctx.gpu, ctx, inputs[index]!, inputs[zeroIndex], c.tensor, axis),
      );
    }
    return c;
  };
  const aInfo = ctx.inputInfos[spec.a]!, bInfo = ctx.inputInfos[spec.b]!;
  const a = operand(spec.a, spec.aZero, spec.aAxis(aInfo), "centred A");
  const b = operand(spec.b, spec.bZero, spec.bAxis(bInfo), "centred B");
  const ins: GpuTensor[] = [a.tensor, b.tensor];
  const infos: TensorInfo[] = [a.info, b.info];
  const biasInfo = spec.bias !== undefined ? ctx.inputInfos[spec.bias] : undefined;
  if (biasInfo) {
    if (biasInfo.value) {
      const value = castRef(biasInfo.value, "float32");
      const buffer = ctx.own(createStorageBuffer(ctx.gpu, toGpuArray(value), "float bias"));
      ins.push({ buffer, shape: value.shape, dtype: "float32" });
      infos.push({ dtype: "float32", shape: value.shape, value });
    } else {
      const t = scratch(ctx, biasInfo.shape, "float bias");
      dispatches.push(...prepareCast(ctx.gpu, ctx, inputs[spec.bias!]!, t));
      ins.push(t);
      infos.push(floatInfo(biasInfo));
    }
  }
  const acc = scratch(ctx, outShape, "integer sums");
  const sub = floatContext(ctx, infos, [{ dtype: "float32", shape: outShape }]);
  dispatches.push(...spec.op.gpu!(sub, ins, [acc]));
  return { acc, dispatches };
}

// ---- MatMulInteger / ConvInteger: exact int32 sums ----

function integerProduct(spec: ProductSpec): OpImpl {
  return {
    infer(ctx, inputs) {
      return [{ dtype: "int32", shape: productShape(ctx, spec, inputs) }];
    },
    cpu(ctx, inputs) {
      productShape(ctx, spec, inputs);
      return [onNode(ctx.node, () => castRef(productRef(ctx, spec, inputs), "int32"))];
    },
    gpu(ctx, inputs, [out]) {
      const shape = productShape(ctx, spec, ctx.inputInfos);
      return onNode(ctx.node, () => {
        const { acc, dispatches } = productGpu(ctx, spec, inputs, shape);
        // The sums are exact integers in f32: the conversion truncates nothing.
        return [...dispatches, ...prepareCast(ctx.gpu, ctx, acc, out)];
      });
    },
  };
}

// ---- QLinearMatMul / QLinearConv: requantized ----

interface QLinearSpec extends ProductSpec {
  readonly aScale: number;
  readonly bScale: number;
  readonly yScale: number;
  readonly yZero: number;
}

function qlinearPlan(ctx: OpContext, spec: QLinearSpec, inputs: readonly (Shaped | undefined)[]) {
  const { node } = ctx;
  const shape = productShape(ctx, spec, inputs);
  const a = inputs[spec.a]!, b = inputs[spec.b]!;
  const aScale = required(node, inputs, spec.aScale, "A scale");
  const bScale = required(node, inputs, spec.bScale, "B scale");
  const yScale = required(node, inputs, spec.yScale, "y scale");
  const yZero = inputs[spec.yZero];
  for (
    const [s, what] of [[aScale, "A scale"], [bScale, "B scale"], [yScale, "y scale"]] as const
  ) {
    expectDType(node, s, what, FLOAT);
    if (s.dtype !== aScale.dtype) {
      throw new NodeError(node, `scales differ in dtype (${aScale.dtype}, ${s.dtype})`);
    }
  }
  expectSingle(node, aScale, "A scale");
  expectSingle(node, yScale, "y scale");
  expectSingle(node, yZero, "y zero point");
  if (yZero) expectDType(node, yZero, "y zero point", QUANTIZED);
  // B's scale: one value, or one per output channel (the axis of b's zero points).
  const bAxis = spec.bAxis(b);
  const channels = b.shape[bAxis];
  const bCount = sizeOf(bScale.shape);
  const columns = spec.op === convOps.Conv || b.shape.length >= 2; // a 1-D B has no columns
  if (bCount !== 1 && (!columns || bScale.shape.length !== 1 || bCount !== channels)) {
    throw new NodeError(
      node,
      `B scale ${shapeString(bScale.shape)} is neither a single value nor one per output ` +
        `channel (${channels})`,
    );
  }
  // Output channels run along the last axis (matmul) or axis 1 (conv).
  const channelAxis = spec.op === convOps.Conv ? 1 : shape.length - 1;
  const perChannel: RequantAxis = { channels, inner: sizeOf(shape.slice(channelAxis + 1)) };
  return { shape, dtype: yZero?.dtype ?? a.dtype, perChannel };
}

function qlinearProduct(spec: QLinearSpec): OpImpl {
  return {
    infer(ctx, inputs) {
      const p = qlinearPlan(ctx, spec, inputs);
      return [{ dtype: p.dtype, shape: p.shape }];
    },
    cpu(ctx, inputs) {
      const p = qlinearPlan(ctx, spec, inputs);
      return [onNode(ctx.node, () =>
        requantizeRef(
          productRef(ctx, spec, inputs),
          inputs[spec.aScale]!,
          inputs[spec.bScale]!,
          inputs[spec.yScale]!,
          inputs[spec.yZero],
          p.dtype,
          p.perChannel,
        ))];
    },
    gpu(ctx, inputs, [out]) {
      const p = qlinearPlan(ctx, spec, ctx.inputInfos);
      return onNode(ctx.node, () => {
        const { acc, dispatches } = productGpu(ctx, spec, inputs, p.shape);
        return [
          ...dispatches,
          ...prepareRequantize(
            ctx.gpu,
            ctx,
            acc,
            inputs[spec.aScale]!,
            inputs[spec.bScale]!,
            inputs[spec.yScale]!,
            inputs[spec.yZero],
            out,
            p.perChannel,
          ),
        ];
      });
    },
  };
}

/** ONNX quantization operators, keyed by op type. */
export const quantizeOps: Record<string, OpImpl> = {
  QuantizeLinear,
  DequantizeLinear,
  DynamicQuantizeLinear,
  MatMulInteger: integerProduct(MATMUL_SPEC({ a: 0, b: 1, aZero: 2, bZero: 3 })),
  ConvInteger: integerProduct(CONV_SPEC({ a: 0, b: 1, aZero: 2, bZero: 3 })),
  QLinearMatMul: qlinearProduct({
    ...MATMUL_SPEC({ a: 0, aZero: 2, b: 3, bZero: 5 }),
    aScale: 1,
    bScale: 4,
    yScale: 6,
    yZero: 7,
  }),
  QLinearConv: qlinearProduct({
    ...CONV_SPEC({ a: 0, aZero: 2, b: 3, bZero: 5 }),
    bias: 8,
    aScale: 1,
    bScale: 4,
    yScale: 6,
    yZero: 7,
  }),
};
