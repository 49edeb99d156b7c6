/** ONNX operators that only reshape, forward or describe tensors: Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, Dropout (inference) are views of their input's buffer (no GPU work);
 * Shape, Size, Constant, ConstantOfShape and Range produce values known at plan time, so the
 * executor folds them on the CPU. Each resolves attributes or constant inputs per opset once, and
 * the CPU reference reuses the same resolution. */
import { type CpuTensor, cpuTensor, type DType, shapeString, sizeOf } from "../../util/tensor.ts";
import {
  attrFloat,
  attrInt,
  attrInts,
  attrTensor,
  constValues,
  NodeError,
  normAxis,
  type OnnxNode,
  type OpContext,
  type OpImpl,
  type TensorInfo,
} from "../types.ts";
import { UnsupportedFeatureError } from "../graph.ts";

type Inputs = readonly (TensorInfo | undefined)[];

/** CPU inputs as infos carrying their values, so `infer` logic serves the CPU path too. */
function asInfos(inputs: readonly (CpuTensor | undefined)[]): Inputs {
  return inputs.map((t) => (t ? { dtype: t.dtype, shape: t.shape, value: t } : undefined));
}

function required(node: OnnxNode, inputs: Inputs, i: number): TensorInfo {
  const t = inputs[i];
  if (!t) throw new NodeError(node, `input ${i} is missing`);
  return t;
}

/** A tensor sharing `t`'s data under a new shape (host values are never mutated). */
function reshaped(t: CpuTensor, shape: readonly number[]): CpuTensor {
  return { dtype: t.dtype, shape: [...shape], data: t.data };
}

/** Builds a view operator from its output-shape rule. */
function viewOp(
  outShape: (ctx: OpContext, inputs: Inputs) => number[],
  constInputs?: number[],
): OpImpl {
  return {
    view: true,
    constInputs,
    infer(ctx, inputs) {
      const x = required(ctx.node, inputs, 0);
      return [{ dtype: x.dtype, shape: outShape(ctx, inputs) }];
    },
    cpu(ctx, inputs) {
      const x = inputs[0];
      if (!x) throw new NodeError(ctx.node, "input 0 is missing");
      return [reshaped(x, outShape(ctx, asInfos(inputs)))];
    },
  };
}

// ---- Reshape ----

function reshapeShape(ctx: OpContext, inputs: Inputs): number[] {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const target = ctx.opset < 5
    ? attrInts(node, "shape")
    : constValues(node, required(node, inputs, 1), "the target shape");
  if (!target) throw new NodeError(node, "missing target shape");
  const allowZero = ctx.opset >= 14 && attrInt(node, "allowzero", 0) !== 0;
  const out: number[] = [];
  let inferAt = -1;
  target.forEach((d, i) => {
    if (d === -1) {
      if (inferAt >= 0) throw new NodeError(node, `target shape [${target}] has more than one -1`);
      inferAt = i;
      out.push(1);
    } else if (d === 0 && !allowZero) {
      if (i >= x.shape.length) {
        throw new NodeError(
          node,
          `target shape [${target}] copies dim ${i} (0) but the input ${shapeString(x.shape)} ` +
            `has rank ${x.shape.length}`,
        );
      }
      out.push(x.shape[i]);
    } else if (d < 0 || !Number.isInteger(d)) {
      const shown = target.length > 8
        ? `${target.slice(0, 8)},... (${target.length} dims)`
        : target;
      throw new NodeError(node, `invalid dim ${d} in target shape [${shown}]`);
    } else out.push(d);
  });
  const total = sizeOf(x.shape);
  if (inferAt >= 0) {
    if (allowZero && target.includes(0)) {
      throw new NodeError(node, `target shape [${target}] has both -1 and 0 with allowzero=1`);
    }
    const known = sizeOf(out);
    if (known === 0 || total % known !== 0) {
      throw new NodeError(
        node,
        `cannot reshape ${shapeString(x.shape)} (${total} elements) to [${target}]`,
      );
    }
    out[inferAt] = total / known;
  }
  if (sizeOf(out) !== total) {
    throw new NodeError(
      node,
      `cannot reshape ${shapeString(x.shape)} (${total} elements) to ${shapeString(out)} ` +
        `(${sizeOf(out)} elements)`,
    );
  }
  return out;
}

// ---- Flatten ----

function flattenShape(ctx: OpContext, inputs: Inputs): number[] {
  const x = required(ctx.node, inputs, 0);
  const r = x.shape.length;
  let axis = attrInt(ctx.node, "axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) {
    throw new NodeError(
      ctx.node,
      `axis ${attrInt(ctx.node, "axis", 1)} out of range for rank ${r}`,
    );
  }
  return [sizeOf(x.shape.slice(0, axis)), sizeOf(x.shape.slice(axis))];
}

// ---- Squeeze / Unsqueeze ----

/** `axes` from the attribute (before opset 13) or from input 1 (opset 13 on). */
function axesOf(ctx: OpContext, inputs: Inputs): number[] | undefined {
  if (ctx.opset < 13) {
    return ctx.node.attrs.has("axes") ? attrInts(ctx.node, "axes") : undefined;
  }
  return constValues(ctx.node, inputs[1], "axes");
}

function uniqueAxes(node: OnnxNode, axes: readonly number[], rank: number): number[] {
  const norm = axes.map((a) => normAxis(node, a, rank));
  if (new Set(norm).size !== norm.length) {
    throw new NodeError(node, `axes [${axes}] repeat an axis`);
  }
  return norm;
}

function squeezeShape(ctx: OpContext, inputs: Inputs): number[] {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const axes = axesOf(ctx, inputs);
  if (!axes) return x.shape.filter((d) => d !== 1);
  const drop = new Set(uniqueAxes(node, axes, x.shape.length));
  for (const a of drop) {
    if (x.shape[a] !== 1) {
      throw new NodeError(
        node,
        `cannot squeeze axis ${a} of size ${x.shape[a]} in ${shapeString(x.shape)}`,
      );
    }
  }
  return x.shape.filter((_, i) => !drop.has(i));
}

function unsqueezeShape(ctx: OpContext, inputs: Inputs): number[] {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const axes = axesOf(ctx, inputs);
  if (!axes) throw new NodeError(node, "missing axes");
  const rank = x.shape.length + axes.length;
  const ones = new Set(uniqueAxes(node, axes, rank));
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(ones.has(i) ? 1 : x.shape[j++]);
  return out;
}

// ---- Dropout (inference) ----

/** The mask Dropout returns in inference: all kept (bool true; before opset 10 the input type). */
function dropoutMask(ctx: OpContext, x: TensorInfo): CpuTensor {
  const dtype: DType = ctx.opset >= 10 ? "bool" : x.dtype;
  const mask = cpuTensor(dtype, x.shape);
  mask.data.fill(1);
  return mask;
}

/** Dropout in inference is the identity. Training mode (opset 12 input 2) with a non-zero
 * ratio draws random masks, which this engine does not do. */
function checkInferenceDropout(ctx: OpContext, inputs: Inputs): void {
  const node = ctx.node;
  if (ctx.opset < 12) return; // is_test / ratio attributes: inference engines run identity
  const training = constValues(node, inputs[2], "training_mode");
  if (!training || training[0] === 0) return;
  const ratioInfo = inputs[1];
  const ratio = ratioInfo ? constValues(node, ratioInfo, "ratio")![0] : 0.5;
  if (ratio !== 0) {
    throw new UnsupportedFeatureError(
      node,
      `training-mode dropout (ratio ${ratio}) draws random masks; only inference is supported`,
    );
  }
}

const dropout: OpImpl = {
  view: true,
  constInputs: [1, 2],
  infer(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    checkInferenceDropout(ctx, inputs);
    const outs: TensorInfo[] = [{ dtype: x.dtype, shape: x.shape }];
    if (ctx.node.outputs.length > 1) {
      const mask = dropoutMask(ctx, x);
      outs.push({ dtype: mask.dtype, shape: mask.shape, value: mask });
    }
    return outs;
  },
  cpu(ctx, inputs) {
    const infos = asInfos(inputs);
    const x = required(ctx.node, infos, 0);
    checkInferenceDropout(ctx, infos);
    const outs = [reshaped(x.value!, x.shape)];
    if (ctx.node.outputs.length > 1) outs.push(dropoutMask(ctx, x));
    return outs;
  },
};

// ---- Shape / Size ----

function shapeValue(ctx: OpContext, inputs: Inputs): CpuTensor {
  const x = required(ctx.node, inputs, 0);
  const r = x.shape.length;
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = ctx.opset >= 15 ? clamp(attrInt(ctx.node, "start", 0)) : 0;
  const end = ctx.opset >= 15 ? clamp(attrInt(ctx.node, "end", r)) : r;
  const dims = x.shape.slice(start, Math.max(start, end));
  return cpuTensor("int64", [dims.length], dims);
}

function sizeValue(ctx: OpContext, inputs: Inputs): CpuTensor {
  const x = required(ctx.node, inputs, 0);
  return cpuTensor("int64", [], [sizeOf(x.shape)]);
}

/** An operator whose output is known from input shapes/attributes alone. */
function knownOp(
  value: (ctx: OpContext, inputs: Inputs) => CpuTensor,
  constInputs?: number[],
): OpImpl {
  return {
    constInputs,
    infer(ctx, inputs) {
      const v = value(ctx, inputs);
      return [{ dtype: v.dtype, shape: v.shape, value: v }];
    },
    cpu(ctx, inputs) {
      return [value(ctx, asInfos(inputs))];
    },
  };
}

// ---- Constant ----

function constantValue(ctx: OpContext): CpuTensor {
  const node = ctx.node;
  const names = [...node.attrs.keys()];
  if (names.length !== 1) {
    throw new NodeError(node, `needs exactly one value attribute, got [${names.join(", ")}]`);
  }
  const name = names[0];
  switch (name) {
    case "value":
      return attrTensor(node, "value")!;
    case "value_float":
      return cpuTensor("float32", [], [attrFloat(node, name)]);
    case "value_floats": {
      const v = attrInts(node, name);
      return cpuTensor("float32", [v.length], v);
    }
    case "value_int":
      return cpuTensor("int64", [], [attrInt(node, name)]);
    case "value_ints": {
      const v = attrInts(node, name);
      return cpuTensor("int64", [v.length], v);
    }
    case "value_string":
    case "value_strings":
      throw new NodeError(node, `string constants ('${name}') are not supported`);
    case "sparse_value":
      throw new NodeError(node, "sparse constants are not supported");
  }
  throw new NodeError(node, `unknown attribute '${name}'`);
}

// ---- ConstantOfShape ----

function constantOfShapeValue(ctx: OpContext, inputs: Inputs): CpuTensor {
  const node = ctx.node;
  const dims = constValues(node, required(node, inputs, 0), "the shape")!;
  if (dims.some((d) => d < 0 || !Number.isInteger(d))) {
    throw new NodeError(node, `invalid shape [${dims}]`);
  }
  const fill = attrTensor(node, "value");
  if (fill && fill.data.length !== 1) {
    throw new NodeError(node, `attribute 'value' must hold one element, has ${fill.data.length}`);
  }
  const out = cpuTensor(fill?.dtype ?? "float32", dims);
  if (fill) out.data.fill(fill.data[0]);
  return out;
}

// ---- Range ----

function scalarOf(node: OnnxNode, info: TensorInfo | undefined, what: string): number {
  const v = constValues(node, info, what);
  if (!v || v.length !== 1) throw new NodeError(node, `${what} must be a scalar`);
  return v[0];
}

function rangeValue(ctx: OpContext, inputs: Inputs): CpuTensor {
  const node = ctx.node;
  const start = scalarOf(node, required(node, inputs, 0), "start");
  const limit = scalarOf(node, required(node, inputs, 1), "limit");
  const delta = scalarOf(node, required(node, inputs, 2), "delta");
  const dtype = inputs[0]!.dtype;
  if (inputs[1]!.dtype !== dtype || inputs[2]!.dtype !== dtype) {
    throw new NodeError(node, "start, limit and delta must have the same dtype");
  }
  if (dtype === "bool") throw new NodeError(node, "bool ranges are not defined");
  if (delta === 0) throw new NodeError(node, "delta is 0");
  const n = Math.max(Math.ceil((limit - start) / delta), 0);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = start + i * delta;
  return cpuTensor(dtype, [n], values);
}

/** ONNX operators of the shape family, keyed by op type. */
export const shapeOps: Record<string, OpImpl> = {
  Reshape: viewOp(reshapeShape, [1]),
  Flatten: viewOp(flattenShape),
  Squeeze: viewOp(squeezeShape, [1]),
  Unsqueeze: viewOp(unsqueezeShape, [1]),
  Identity: viewOp((ctx, inputs) => [...required(ctx.node, inputs, 0).shape]),
  Dropout: dropout,
  Shape: knownOp(shapeValue),
  Size: knownOp(sizeValue),
  Constant: knownOp(constantValue),
  ConstantOfShape: knownOp(constantOfShapeValue, [0]),
  Range: knownOp(rangeValue, [0, 1, 2]),
};
