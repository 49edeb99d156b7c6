/** ONNX operators that write masks, one-hots and running sums: Trilu, EyeLike (band kernels),
 * CumSum, Hardmax (line kernels), OneHot. Registered through `indexingOps` (indexing.ts). */
import type { DType } from "../../util/tensor.ts";
import { prepareEye, prepareTrilu } from "../../kernels/band.ts";
import { eyeRef, triluRef } from "../../kernels/band_ref.ts";
import { prepareOneHot } from "../../kernels/onehot.ts";
import { oneHotRef } from "../../kernels/onehot_ref.ts";
import { oneHotShape } from "../../kernels/onehot_shape.ts";
import { prepareCumSum, prepareHardmax } from "../../kernels/scan.ts";
import { cumsumRef, hardmaxRef } from "../../kernels/scan_ref.ts";
import { loadDType, onnxTypeName } from "../tensor_proto.ts";
import {
  attrInt,
  NodeError,
  normAxis,
  type OnnxNode,
  type OpContext,
  type OpImpl,
} from "../types.ts";
import {
  type ConstInput,
  FLOATS,
  fromInfos,
  fromTensors,
  info,
  onNode,
  required,
  type Shaped,
} from "./common.ts";

/** A one-value constant input (a scalar or 1-element tensor), or `fallback` when omitted. */
function scalarInput(
  node: OnnxNode,
  consts: ConstInput,
  i: number,
  what: string,
  fallback?: number,
): number {
  const v = consts(i, what);
  if (v === undefined) {
    if (fallback === undefined) throw new NodeError(node, `input ${i} (${what}) is missing`);
    return fallback;
  }
  if (v.length !== 1) throw new NodeError(node, `input ${i} (${what}) must hold one value`);
  return Number(v[0]);
}

function flag(node: OnnxNode, name: string, fallback: number): boolean {
  const v = attrInt(node, name, fallback);
  if (v !== 0 && v !== 1) throw new NodeError(node, `attribute '${name}' is ${v}, not 0 or 1`);
  return v === 1;
}

// ---- Trilu ----

function triluOf(node: OnnxNode, x: Shaped, consts: ConstInput): { k: number; upper: boolean } {
  if (x.shape.length < 2) throw new NodeError(node, "input needs rank >= 2");
  return { k: scalarInput(node, consts, 1, "k", 0), upper: flag(node, "upper", 1) };
}

const Trilu: OpImpl = {
  constInputs: [1],
  infer({ node }, inputs) {
    const x = required(node, inputs, 0);
    triluOf(node, x, fromInfos(node, inputs));
    return [info(x.dtype, x.shape)];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0);
    const { k, upper } = triluOf(node, x, fromTensors(inputs));
    return [triluRef(x, k, upper)];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    const { k, upper } = triluOf(ctx.node, x, fromInfos(ctx.node, ctx.inputInfos));
    return prepareTrilu(ctx.gpu, ctx, x, out, k, upper);
  },
};

// ---- EyeLike ----

function eyeOf(node: OnnxNode, x: Shaped): { dtype: DType; k: number } {
  if (x.shape.length !== 2) {
    throw new NodeError(node, `input must be 2-D, got rank ${x.shape.length}`);
  }
  let dtype = x.dtype;
  if (node.attrs.has("dtype")) {
    const code = attrInt(node, "dtype");
    const d = loadDType(code);
    if (!d) throw new NodeError(node, `dtype ${onnxTypeName(code)} is not supported`);
    dtype = d;
  }
  return { dtype, k: attrInt(node, "k", 0) };
}

const EyeLike: OpImpl = {
  infer({ node }, inputs) {
    const x = required(node, inputs, 0);
    return [info(eyeOf(node, x).dtype, x.shape)];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0);
    const { dtype, k } = eyeOf(node, x);
    return [eyeRef(dtype, x.shape[0], x.shape[1], k)];
  },
  gpu(ctx, _inputs, [out]) {
    const x = required(ctx.node, ctx.inputInfos, 0);
    return prepareEye(ctx.gpu, ctx, out, eyeOf(ctx.node, x).k);
  },
};

// ---- CumSum ----

interface CumSumSpec {
  axis: number;
  exclusive: boolean;
  reverse: boolean;
}

function cumsumOf(node: OnnxNode, x: Shaped, consts: ConstInput): CumSumSpec {
  if (x.dtype === "bool") throw new NodeError(node, "bool input is not supported");
  if (x.shape.length === 0) throw new NodeError(node, "input is a scalar");
  const axis = normAxis(node, scalarInput(node, consts, 1, "axis"), x.shape.length);
  return { axis, exclusive: flag(node, "exclusive", 0), reverse: flag(node, "reverse", 0) };
}

const CumSum: OpImpl = {
  constInputs: [1],
  infer({ node }, inputs) {
    const x = required(node, inputs, 0);
    cumsumOf(node, x, fromInfos(node, inputs));
    return [info(x.dtype, x.shape)];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0);
    const { axis, exclusive, reverse } = cumsumOf(node, x, fromTensors(inputs));
    return [cumsumRef(x, axis, exclusive, reverse)];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    const { axis, exclusive, reverse } = cumsumOf(
      ctx.node,
      x,
      fromInfos(ctx.node, ctx.inputInfos),
    );
    return prepareCumSum(ctx.gpu, ctx, x, out, axis, exclusive, reverse);
  },
};

// ---- Hardmax ----

/** The line shape Hardmax works on: opset 13 uses `axis` itself; before that the input is
 * coerced to 2-D [prod(shape[:axis]), prod(shape[axis:])] and each row is one line. */
function hardmaxLines({ node, opset }: OpContext, x: Shaped): { shape: number[]; axis: number } {
  if (!FLOATS.includes(x.dtype)) throw new NodeError(node, `input must be a float, got ${x.dtype}`);
  const rank = x.shape.length;
  if (opset >= 13) {
    return { shape: [...x.shape], axis: normAxis(node, attrInt(node, "axis", -1), rank) };
  }
  const axis = attrInt(node, "axis", 1);
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a > rank) throw new NodeError(node, `axis ${axis} out of range for rank ${rank}`);
  const rows = x.shape.slice(0, a).reduce((p, n) => p * n, 1);
  const cols = x.shape.slice(a).reduce((p, n) => p * n, 1);
  return { shape: [rows, cols], axis: 1 };
}

const Hardmax: OpImpl = {
  infer(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    hardmaxLines(ctx, x);
    return [info(x.dtype, x.shape)];
  },
  cpu(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const { shape, axis } = hardmaxLines(ctx, x);
    const y = hardmaxRef({ ...x, shape }, axis);
    return [{ ...y, shape: [...x.shape] }];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    const { shape, axis } = hardmaxLines(ctx, x);
    // The line kernel only needs the flat layout: view both tensors with the line shape.
    return prepareHardmax(ctx.gpu, ctx, { ...x, shape }, { ...out, shape }, axis);
  },
};

// ---- OneHot ----

interface OneHotSpec {
  depth: number;
  axis: number;
}

function oneHotOf(
  node: OnnxNode,
  indices: Shaped,
  values: Shaped,
  consts: ConstInput,
): OneHotSpec {
  if (indices.dtype === "bool") throw new NodeError(node, "indices must be numeric, got bool");
  const rawDepth = scalarInput(node, consts, 1, "depth");
  const depth = Math.trunc(rawDepth);
  if (!(depth >= 1)) throw new NodeError(node, `depth ${rawDepth} must be at least 1`);
  if (values.shape.reduce((p, n) => p * n, 1) !== 2) {
    throw new NodeError(
      node,
      `values must hold [off_value, on_value], got shape [${values.shape}]`,
    );
  }
  const rank = indices.shape.length + 1;
  const axis = normAxis(node, attrInt(node, "axis", -1), rank);
  return { depth, axis };
}

const OneHot: OpImpl = {
  constInputs: [1],
  infer({ node }, inputs) {
    const indices = required(node, inputs, 0, "indices");
    const values = required(node, inputs, 2, "values");
    const { depth, axis } = oneHotOf(node, indices, values, fromInfos(node, inputs));
    return [info(values.dtype, oneHotShape(indices.shape, depth, axis))];
  },
  cpu({ node }, inputs) {
    const indices = required(node, inputs, 0, "indices");
    const values = required(node, inputs, 2, "values");
    const { depth, axis } = oneHotOf(node, indices, values, fromTensors(inputs));
    return [oneHotRef(indices, depth, values, axis)];
  },
  gpu(ctx, inputs, [out]) {
    const indices = required(ctx.node, inputs, 0, "indices");
    const values = required(ctx.node, inputs, 2, "values");
    const consts = fromInfos(ctx.node, ctx.inputInfos);
    const { depth, axis } = oneHotOf(ctx.node, indices, values, consts);
    return onNode(
      ctx.node,
      () => prepareOneHot(ctx.gpu, ctx, indices, values, out, depth, axis),
    );
  },
};

export const fillOps: Record<string, OpImpl> = { Trilu, EyeLike, CumSum, Hardmax, OneHot };
