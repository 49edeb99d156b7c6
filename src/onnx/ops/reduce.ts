/** ONNX reduction and normalisation operators: Reduce{Sum,Mean,Max,Min,Prod,L1,L2,SumSquare,
 * LogSum,LogSumExp}, Softmax, LogSoftmax, LayerNormalization, LpNormalization, ArgMax, ArgMin.
 * Each resolves its attributes / constant inputs (per opset) into plain numbers shared by shape
 * inference, the CPU reference and the GPU kernel. */
import type { DType } from "../../util/tensor.ts";
import { prepareArgMax } from "../../kernels/argmax.ts";
import { argRef } from "../../kernels/argmax_ref.ts";
import { prepareLayerNorm } from "../../kernels/layernorm.ts";
import { layerNormRef } from "../../kernels/layernorm_ref.ts";
import { prepareLpNorm } from "../../kernels/lpnorm.ts";
import { lpNormRef } from "../../kernels/lpnorm_ref.ts";
import { prepareReduce } from "../../kernels/reduce.ts";
import { type ReduceOp, reduceShape } from "../../kernels/reduce_shape.ts";
import { reduceRef } from "../../kernels/reduce_ref.ts";
import { prepareSoftmax } from "../../kernels/softmax.ts";
import { softmaxRef } from "../../kernels/softmax_ref.ts";
import {
  attrFloat,
  attrInt,
  attrInts,
  constValues,
  ENGINE_DOMAIN,
  NodeError,
  normAxis,
  type OnnxNode,
  type OpContext,
  type OpImpl,
} from "../types.ts";
import { FLOATS, onNode, required, type Shaped } from "./common.ts";

const NUMBERS: readonly DType[] = ["float32", "float16", "int32", "int64"];

function checkDtype(node: OnnxNode, x: Shaped, allowed: readonly DType[]): void {
  if (!allowed.includes(x.dtype)) {
    throw new NodeError(node, `input dtype ${x.dtype} is not supported (${allowed.join(", ")})`);
  }
}

// ---- Reduce* ----

interface ReduceSpec {
  op: ReduceOp;
  /** First opset where `axes` is an optional input instead of an attribute. */
  axesInputSince: number;
}

const REDUCE_SPECS: Record<string, ReduceSpec> = {
  ReduceSum: { op: "sum", axesInputSince: 13 },
  ReduceMean: { op: "mean", axesInputSince: 18 },
  ReduceMax: { op: "max", axesInputSince: 18 },
  ReduceMin: { op: "min", axesInputSince: 18 },
  ReduceProd: { op: "prod", axesInputSince: 18 },
  ReduceL1: { op: "l1", axesInputSince: 18 },
  ReduceL2: { op: "l2", axesInputSince: 18 },
  ReduceSumSquare: { op: "sumSquare", axesInputSince: 18 },
  ReduceLogSum: { op: "logSum", axesInputSince: 18 },
  ReduceLogSumExp: { op: "logSumExp", axesInputSince: 18 },
};

interface ResolvedReduce {
  /** Normalised axes to reduce; empty: nothing reduced (noop_with_empty_axes). */
  axes: number[];
  keepdims: boolean;
}

/** The reduced axes: the `axes` attribute before `axesInputSince`, the optional input after
 * (`axesInput` = its values, undefined when omitted). No axes: all of them, unless
 * noop_with_empty_axes asks for no reduction at all. */
function resolveReduce(
  ctx: OpContext,
  spec: ReduceSpec,
  x: Shaped,
  axesInput: number[] | undefined,
): ResolvedReduce {
  const node = ctx.node;
  const keepdims = attrInt(node, "keepdims", 1) !== 0;
  const rank = x.shape.length;
  let axes: number[] | undefined;
  let noop = false;
  if (ctx.opset >= spec.axesInputSince) {
    axes = axesInput;
    noop = attrInt(node, "noop_with_empty_axes", 0) !== 0;
  } else {
    axes = node.attrs.has("axes") ? attrInts(node, "axes") : undefined;
  }
  if (axes === undefined || axes.length === 0) {
    return { axes: noop ? [] : x.shape.map((_, i) => i), keepdims };
  }
  const norm = axes.map((a) => normAxis(node, a, rank));
  if (new Set(norm).size !== norm.length) {
    throw new NodeError(node, `axes ${JSON.stringify(axes)} repeat an axis`);
  }
  return { axes: norm, keepdims };
}

function reduceOp(spec: ReduceSpec): OpImpl {
  const allowed = spec.op === "max" || spec.op === "min" ? [...NUMBERS, "bool" as const] : NUMBERS;
  return {
    constInputs: [1],
    infer(ctx, inputs) {
      const x = required(ctx.node, inputs, 0);
      checkDtype(ctx.node, x, allowed);
      const r = resolveReduce(ctx, spec, x, constValues(ctx.node, inputs[1], "axes"));
      return [{ dtype: x.dtype, shape: reduceShape(x.shape, r.axes, r.keepdims) }];
    },
    cpu(ctx, inputs) {
      const x = required(ctx.node, inputs, 0);
      const axesInput = inputs[1] ? Array.from(inputs[1].data as ArrayLike<number>) : undefined;
      const r = resolveReduce(ctx, spec, x, axesInput);
      return [onNode(ctx.node, () => reduceRef(spec.op, x, r.axes, r.keepdims))];
    },
    gpu(ctx, inputs, outputs) {
      const x = required(ctx.node, inputs, 0);
      const r = resolveReduce(ctx, spec, x, constValues(ctx.node, ctx.inputInfos[1], "axes"));
      return onNode(
        ctx.node,
        () => prepareReduce(ctx.gpu, ctx, spec.op, x, outputs[0], r.axes, r.keepdims),
      );
    },
  };
}

// ---- Softmax, LogSoftmax ----

/** Opset < 13: default axis 1 and the input coerced to 2-D at the axis; from 13: default -1,
 * one axis. */
function softmaxAxis(ctx: OpContext, x: Shaped): { axis: number; coerce2d: boolean } {
  const coerce2d = ctx.opset < 13;
  const axis = attrInt(ctx.node, "axis", coerce2d ? 1 : -1);
  return { axis: normAxis(ctx.node, axis, x.shape.length), coerce2d };
}

function softmaxOp(log: boolean): OpImpl {
  return {
    infer(ctx, inputs) {
      const x = required(ctx.node, inputs, 0);
      checkDtype(ctx.node, x, FLOATS);
      softmaxAxis(ctx, x);
      return [{ dtype: x.dtype, shape: x.shape }];
    },
    cpu(ctx, inputs) {
      const x = required(ctx.node, inputs, 0);
      const { axis, coerce2d } = softmaxAxis(ctx, x);
      return [onNode(ctx.node, () => softmaxRef(x, axis, { log, coerce2d }))];
    },
    gpu(ctx, inputs, outputs) {
      const x = required(ctx.node, inputs, 0);
      const { axis, coerce2d } = softmaxAxis(ctx, x);
      return onNode(
        ctx.node,
        () => prepareSoftmax(ctx.gpu, ctx, x, outputs[0], axis, { log, coerce2d }),
      );
    },
  };
}

// ---- LayerNormalization ----

function layerNormAttrs(ctx: OpContext, x: Shaped): { axis: number; epsilon: number } {
  return {
    axis: normAxis(ctx.node, attrInt(ctx.node, "axis", -1), x.shape.length),
    epsilon: attrFloat(ctx.node, "epsilon", 1e-5),
  };
}

/** Scale and bias must cover the normalised shape or a suffix of it. */
function checkLayerNormParam(node: OnnxNode, x: Shaped, axis: number, p: Shaped, what: string) {
  const normalised = x.shape.slice(axis);
  const dims = [...p.shape];
  while (dims.length > 0 && dims[0] === 1) dims.shift();
  const suffix = normalised.slice(normalised.length - dims.length);
  if (dims.length > normalised.length || dims.some((d, i) => d !== suffix[i])) {
    throw new NodeError(
      node,
      `${what} shape [${p.shape}] does not broadcast as the normalised shape [${normalised}]`,
    );
  }
}

const layerNormalization: OpImpl = {
  infer(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const scale = required(ctx.node, inputs, 1);
    checkDtype(ctx.node, x, FLOATS);
    const { axis } = layerNormAttrs(ctx, x);
    checkLayerNormParam(ctx.node, x, axis, scale, "Scale");
    if (inputs[2]) checkLayerNormParam(ctx.node, x, axis, inputs[2], "B");
    const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
    // Mean and InvStdDev are computed in float32 (stash_type 1).
    return [
      { dtype: x.dtype, shape: x.shape },
      { dtype: "float32", shape: statShape },
      { dtype: "float32", shape: statShape },
    ];
  },
  cpu(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const scale = required(ctx.node, inputs, 1);
    const { axis, epsilon } = layerNormAttrs(ctx, x);
    const r = onNode(ctx.node, () => layerNormRef(x, scale, inputs[2], axis, epsilon));
    return [r.y, r.mean, r.invStdDev];
  },
  gpu(ctx, inputs, outputs) {
    const x = required(ctx.node, inputs, 0);
    const scale = required(ctx.node, inputs, 1);
    const { axis, epsilon } = layerNormAttrs(ctx, x);
    // Statistics only where the graph names the output.
    const wanted = (k: number) => (ctx.node.outputs[k] ? outputs[k] : undefined);
    return onNode(ctx.node, () =>
      prepareLayerNorm(ctx.gpu, ctx, x, scale, inputs[2], outputs[0], {
        axis,
        epsilon,
        mean: wanted(1),
        invStdDev: wanted(2),
      }));
  },
};

// ---- LpNormalization ----

function lpAttrs(ctx: OpContext, x: Shaped): { axis: number; p: 1 | 2 } {
  const p = attrInt(ctx.node, "p", 2);
  if (p !== 1 && p !== 2) throw new NodeError(ctx.node, `p must be 1 or 2, not ${p}`);
  return { axis: normAxis(ctx.node, attrInt(ctx.node, "axis", -1), x.shape.length), p };
}

const lpNormalization: OpImpl = {
  infer(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    checkDtype(ctx.node, x, FLOATS);
    lpAttrs(ctx, x);
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  cpu(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const { axis, p } = lpAttrs(ctx, x);
    return [onNode(ctx.node, () => lpNormRef(x, axis, p))];
  },
  gpu(ctx, inputs, outputs) {
    const x = required(ctx.node, inputs, 0);
    const { axis, p } = lpAttrs(ctx, x);
    return onNode(ctx.node, () => prepareLpNorm(ctx.gpu, ctx, x, outputs[0], axis, p));
  },
};

// ---- ArgMax, ArgMin ----

interface ArgAttrs {
  axis: number;
  keepdims: boolean;
  selectLastIndex: boolean;
}

function argAttrs(ctx: OpContext, x: Shaped): ArgAttrs {
  const axis = normAxis(ctx.node, attrInt(ctx.node, "axis", 0), x.shape.length);
  if (x.shape[axis] === 0) throw new NodeError(ctx.node, `axis ${axis} has no elements`);
  return {
    axis,
    keepdims: attrInt(ctx.node, "keepdims", 1) !== 0,
    selectLastIndex: attrInt(ctx.node, "select_last_index", 0) !== 0,
  };
}

function argOp(min: boolean): OpImpl {
  return {
    infer(ctx, inputs) {
      const x = required(ctx.node, inputs, 0);
      checkDtype(ctx.node, x, [...NUMBERS, "bool"]);
      const a = argAttrs(ctx, x);
      return [{ dtype: "int64", shape: reduceShape(x.shape, [a.axis], a.keepdims) }];
    },
    cpu(ctx, inputs) {
      const x = required(ctx.node, inputs, 0);
      const a = argAttrs(ctx, x);
      return [onNode(ctx.node, () => argRef(x, a.axis, { ...a, min }))];
    },
    gpu(ctx, inputs, outputs) {
      const x = required(ctx.node, inputs, 0);
      const a = argAttrs(ctx, x);
      return onNode(
        ctx.node,
        () => prepareArgMax(ctx.gpu, ctx, x, outputs[0], a.axis, { ...a, min }),
      );
    },
  };
}

/** ONNX operators of the reduce family, keyed by op type. */
export const reduceOps: Record<string, OpImpl> = {
  ...Object.fromEntries(
    Object.entries(REDUCE_SPECS).map(([name, spec]) => [name, reduceOp(spec)]),
  ),
  Softmax: softmaxOp(false),
  LogSoftmax: softmaxOp(true),
  LayerNormalization: layerNormalization,
  // A decomposed LayerNorm recognised by the fusion pass (src/onnx/fuse.ts): ONNX's
  // LayerNormalization, whatever the model's opset (it is new in opset 17).
  [`${ENGINE_DOMAIN}.LayerNormalization`]: layerNormalization,
  LpNormalization: lpNormalization,
  ArgMax: argOp(false),
  ArgMin: argOp(true),
};
