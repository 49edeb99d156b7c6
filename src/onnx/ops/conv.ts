/** ONNX convolution-family operators: Conv, MaxPool, AveragePool, GlobalAveragePool,
 * GlobalMaxPool, BatchNormalization (inference). Each resolves its attributes (per opset, with
 * `auto_pad` turned into explicit pads) into the plain settings the kernels and their CPU
 * references share. */
import { type CpuTensor, cpuTensor } from "../../util/tensor.ts";
import { type GpuTensor } from "../../gpu/mod.ts";
import { type BatchNormParams, prepareBatchNorm } from "../../kernels/batchnorm.ts";
import { batchNormRef } from "../../kernels/batchnorm_ref.ts";
import { batchNormLayout } from "../../kernels/batchnorm_shape.ts";
import { CONV_KERNEL, convProblemKey, prepareConv } from "../../kernels/conv.ts";
import { tuneConv } from "../../kernels/conv_tune.ts";
import { convRef } from "../../kernels/conv_ref.ts";
import { type ConvAttrs, convOutputShape } from "../../kernels/conv_shape.ts";
import { globalPoolAttrs, type PoolKind, preparePool } from "../../kernels/pool.ts";
import { avgPoolRef, maxPoolRef } from "../../kernels/pool_ref.ts";
import { type PoolAttrs, poolOutputShape } from "../../kernels/pool_shape.ts";
import { UnsupportedFeatureError } from "../graph.ts";
import {
  attrFloat,
  attrInt,
  attrInts,
  attrString,
  ENGINE_DOMAIN,
  NodeError,
  type OnnxNode,
  type OpContext,
  type OpImpl,
  type TensorInfo,
} from "../types.ts";
import { checkFloat, onNode, required, type Shaped } from "./common.ts";

function checkSpatialInput(node: OnnxNode, x: Shaped): number {
  const rank = x.shape.length - 2;
  if (rank < 1) {
    throw new NodeError(node, `input X has rank ${x.shape.length}; needs N, C and spatial axes`);
  }
  if (rank > 3) {
    throw new UnsupportedFeatureError(node, `${rank} spatial axes (at most 3 are supported)`);
  }
  return rank;
}

// ---- shared window attributes ----

interface WindowAttrs {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
}

/** Reads strides / dilations / pads / auto_pad for a window of `kernel` over X's spatial axes
 * and returns explicit pads ([begin..., end...]). SAME_* pads so that out = ceil(in / stride),
 * the odd extra padding going at the end (SAME_UPPER) or at the beginning (SAME_LOWER). */
function windowAttrs(
  node: OnnxNode,
  inSpatial: readonly number[],
  kernel: readonly number[],
  withDilations: boolean,
): WindowAttrs {
  const rank = inSpatial.length;
  const ones = Array<number>(rank).fill(1);
  const strides = attrInts(node, "strides", ones);
  const dilations = withDilations ? attrInts(node, "dilations", ones) : ones;
  for (const [name, list] of [["strides", strides], ["dilations", dilations]] as const) {
    if (list.length !== rank) {
      throw new NodeError(node, `${name} has ${list.length} values for ${rank} spatial axes`);
    }
    if (list.some((v) => !(v >= 1))) throw new NodeError(node, `${name} must be >= 1`);
  }
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  let pads: number[];
  switch (autoPad) {
    case "NOTSET":
      pads = attrInts(node, "pads", Array<number>(2 * rank).fill(0));
      if (pads.length !== 2 * rank) {
        throw new NodeError(node, `pads has ${pads.length} values for ${rank} spatial axes`);
      }
      if (pads.some((p) => p < 0)) throw new NodeError(node, "negative pads are not allowed");
      break;
    case "VALID":
      pads = Array<number>(2 * rank).fill(0);
      break;
    case "SAME_UPPER":
    case "SAME_LOWER": {
      pads = Array<number>(2 * rank).fill(0);
      for (let a = 0; a < rank; a++) {
        const out = Math.ceil(inSpatial[a] / strides[a]);
        const span = (kernel[a] - 1) * dilations[a] + 1;
        const total = Math.max(0, (out - 1) * strides[a] + span - inSpatial[a]);
        const small = Math.floor(total / 2);
        pads[a] = autoPad === "SAME_UPPER" ? small : total - small;
        pads[a + rank] = total - pads[a];
      }
      break;
    }
    default:
      throw new NodeError(node, `unknown auto_pad '${autoPad}'`);
  }
  return { kernel: [...kernel], strides, dilations, pads };
}

// ---- Conv ----

function convSettings(node: OnnxNode, x: Shaped, w: Shaped): ConvAttrs {
  checkSpatialInput(node, x);
  if (w.shape.length !== x.shape.length) {
    throw new NodeError(node, `W has rank ${w.shape.length}, X has rank ${x.shape.length}`);
  }
  const kernel = w.shape.slice(2);
  const declared = node.attrs.has("kernel_shape") ? attrInts(node, "kernel_shape") : undefined;
  if (declared && declared.join() !== kernel.join()) {
    throw new NodeError(
      node,
      `kernel_shape [${declared}] does not match W's spatial shape [${kernel}]`,
    );
  }
  const win = windowAttrs(node, x.shape.slice(2), kernel, true);
  return {
    strides: win.strides,
    dilations: win.dilations,
    pads: win.pads,
    group: attrInt(node, "group", 1),
    relu: fusedRelu(node),
  };
}

/** engine.FusedConv (a Conv and the Relu after it, see src/onnx/fuse.ts): activation "relu". */
function fusedRelu(node: OnnxNode): boolean {
  if (node.domain !== ENGINE_DOMAIN) return false;
  const activation = attrString(node, "activation", "none");
  if (activation !== "relu" && activation !== "none") {
    throw new NodeError(node, `unknown activation '${activation}' (none, relu)`);
  }
  return activation === "relu";
}

const conv: OpImpl = {
  infer(ctx: OpContext, inputs: readonly (TensorInfo | undefined)[]): TensorInfo[] {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const w = required(node, inputs, 1, "W");
    checkFloat(node, x, "X");
    checkFloat(node, w, "W");
    const b = inputs[2];
    if (b && (b.shape.length !== 1 || b.shape[0] !== w.shape[0])) {
      throw new NodeError(node, `B has shape [${b.shape}], expected [${w.shape[0]}]`);
    }
    const attrs = convSettings(node, x, w);
    return [{
      dtype: x.dtype,
      shape: onNode(node, () => convOutputShape(x.shape, w.shape, attrs)),
    }];
  },
  cpu(ctx, inputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const w = required(node, inputs, 1, "W");
    const attrs = convSettings(node, x, w);
    const y = onNode(node, () => convRef(x.data, x.shape, w.data, w.shape, inputs[2]?.data, attrs));
    return [cpuTensor(x.dtype, y.shape, y.data)];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const xInfo = required(node, ctx.inputInfos, 0, "X");
    const wInfo = required(node, ctx.inputInfos, 1, "W");
    const x = required(node, inputs, 0, "X");
    // Constant weights and bias are packed / uploaded once from their host values.
    const w: GpuTensor | CpuTensor = wInfo.value ?? required(node, inputs, 1, "W");
    const b: GpuTensor | CpuTensor | undefined = ctx.inputInfos[2]?.value ?? inputs[2];
    const attrs = convSettings(node, xInfo, wInfo);
    return onNode(
      node,
      () =>
        prepareConv(ctx.gpu, ctx, x, w, b, outputs[0], attrs, {
          precision: ctx.precision,
          variantCache: ctx.variantCache,
        }),
    );
  },
  async tune(ctx) {
    const { node } = ctx;
    const xInfo = required(node, ctx.inputInfos, 0, "X");
    const wInfo = required(node, ctx.inputInfos, 1, "W");
    const attrs = convSettings(node, xInfo, wInfo);
    // Half-precision texels only for constant weights, as prepareConv stores them.
    const precision = wInfo.value ? ctx.precision : "f32";
    const r = await tuneConv(ctx.gpu, xInfo.shape, wInfo.shape, attrs, {
      ...ctx.tuning,
      precision,
    });
    const problem = convProblemKey(xInfo.shape, wInfo.shape, attrs, precision === "f16");
    return [{
      kernel: CONV_KERNEL,
      problem,
      chosen: r.chosen,
      cached: r.cached,
      defaultMs: r.defaultMs,
      chosenMs: r.chosenMs,
    }];
  },
};

// ---- MaxPool / AveragePool ----

function poolSettings(ctx: OpContext, x: Shaped, kind: PoolKind): PoolAttrs {
  const { node, opset } = ctx;
  const rank = checkSpatialInput(node, x);
  const kernel = attrInts(node, "kernel_shape");
  if (kernel.length !== rank) {
    throw new NodeError(node, `kernel_shape has ${kernel.length} values for ${rank} spatial axes`);
  }
  if (kernel.some((k) => !(k >= 1))) throw new NodeError(node, "kernel_shape must be >= 1");
  // Dilations: MaxPool since opset 10, AveragePool since opset 19.
  const withDilations = kind === "max" ? opset >= 10 : opset >= 19;
  const win = windowAttrs(node, x.shape.slice(2), kernel, withDilations);
  const ceilMode = attrInt(node, "ceil_mode", 0) === 1;
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  if (ceilMode && autoPad !== "NOTSET" && autoPad !== "VALID") {
    throw new NodeError(node, "ceil_mode cannot be combined with auto_pad SAME_*");
  }
  return {
    ...win,
    ceilMode,
    countIncludePad: kind === "avg" && attrInt(node, "count_include_pad", 0) === 1,
    storageOrder: kind === "max" ? attrInt(node, "storage_order", 0) : 0,
  };
}

function pool(kind: PoolKind): OpImpl {
  return {
    infer(ctx, inputs) {
      const { node } = ctx;
      const x = required(node, inputs, 0, "X");
      checkFloat(node, x, "X");
      const shape = onNode(node, () => poolOutputShape(x.shape, poolSettings(ctx, x, kind)));
      const outs: TensorInfo[] = [{ dtype: x.dtype, shape }];
      if (kind === "max" && node.outputs.length > 1) outs.push({ dtype: "int64", shape });
      return outs;
    },
    cpu(ctx, inputs) {
      const { node } = ctx;
      const x = required(node, inputs, 0, "X");
      const attrs = poolSettings(ctx, x, kind);
      if (kind === "avg") {
        const y = onNode(node, () => avgPoolRef(x.data, x.shape, attrs));
        return [cpuTensor(x.dtype, y.shape, y.data)];
      }
      const y = onNode(node, () => maxPoolRef(x.data, x.shape, attrs));
      const outs = [cpuTensor(x.dtype, y.shape, y.data)];
      if (node.outputs.length > 1) outs.push(cpuTensor("int64", y.shape, y.indices));
      return outs;
    },
    gpu(ctx, inputs, outputs) {
      const { node } = ctx;
      const x = required(node, inputs, 0, "X");
      const attrs = poolSettings(ctx, x, kind);
      const indices = kind === "max" && node.outputs[1] ? outputs[1] : undefined;
      return onNode(node, () => preparePool(ctx.gpu, ctx, kind, x, outputs[0], attrs, indices));
    },
  };
}

function globalPool(kind: PoolKind): OpImpl {
  return {
    infer(ctx, inputs) {
      const { node } = ctx;
      const x = required(node, inputs, 0, "X");
      checkFloat(node, x, "X");
      checkSpatialInput(node, x);
      return [{
        dtype: x.dtype,
        shape: [x.shape[0], x.shape[1], ...x.shape.slice(2).map(() => 1)],
      }];
    },
    cpu(ctx, inputs) {
      const { node } = ctx;
      const x = required(node, inputs, 0, "X");
      const attrs = globalPoolAttrs(x.shape);
      const y = onNode(
        node,
        () =>
          kind === "avg" ? avgPoolRef(x.data, x.shape, attrs) : maxPoolRef(x.data, x.shape, attrs),
      );
      return [cpuTensor(x.dtype, y.shape, y.data)];
    },
    gpu(ctx, inputs, outputs) {
      const { node } = ctx;
      const x = required(node, inputs, 0, "X");
      return onNode(
        node,
        () => preparePool(ctx.gpu, ctx, kind, x, outputs[0], globalPoolAttrs(x.shape)),
      );
    },
  };
}

// ---- BatchNormalization (inference) ----

interface BatchNormSettings {
  epsilon: number;
  /** Opset < 9 with spatial = 0: parameters per channel and spatial position. */
  perPosition: boolean;
}

function batchNormSettings(
  ctx: OpContext,
  inputs: readonly (Shaped | undefined)[],
): BatchNormSettings {
  const { node, opset } = ctx;
  if (opset >= 14 && attrInt(node, "training_mode", 0) === 1) {
    throw new UnsupportedFeatureError(
      node,
      "training_mode = 1 (batch statistics) is not supported",
    );
  }
  if (opset < 7 && attrInt(node, "is_test", 0) === 0 && node.outputs.filter((o) => o).length > 1) {
    throw new UnsupportedFeatureError(node, "training outputs (is_test = 0) are not supported");
  }
  if (node.outputs.slice(1).some((o) => o !== "")) {
    throw new UnsupportedFeatureError(
      node,
      "running mean / variance outputs (training) are not supported",
    );
  }
  const x = required(node, inputs, 0, "X");
  checkFloat(node, x, "X");
  if (x.shape.length < 2) {
    throw new NodeError(node, `input X has rank ${x.shape.length}; needs N, C, ...`);
  }
  const perPosition = opset < 9 && attrInt(node, "spatial", 1) === 0;
  const layout = batchNormLayout(x.shape, perPosition);
  const names = ["scale", "B", "mean", "var"];
  for (let i = 1; i <= 4; i++) {
    const p = required(node, inputs, i, names[i - 1]);
    let n = 1;
    for (const d of p.shape) n *= d;
    if (n !== layout.params) {
      throw new NodeError(
        node,
        `${names[i - 1]} has shape [${p.shape}], expected ${layout.params} values`,
      );
    }
  }
  return { epsilon: attrFloat(node, "epsilon", 1e-5), perPosition };
}

const batchNormalization: OpImpl = {
  infer(ctx, inputs) {
    const x = required(ctx.node, inputs, 0, "X");
    batchNormSettings(ctx, inputs);
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  cpu(ctx, inputs) {
    const { node } = ctx;
    const s = batchNormSettings(ctx, inputs);
    const [x, scale, b, mean, variance] = [0, 1, 2, 3, 4].map((i) =>
      required(node, inputs, i, "input")
    );
    const layout = batchNormLayout(x.shape, s.perPosition);
    const y = batchNormRef(x.data, layout, scale.data, b.data, mean.data, variance.data, s.epsilon);
    return [cpuTensor(x.dtype, x.shape, y)];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const s = batchNormSettings(ctx, ctx.inputInfos);
    const x = required(node, inputs, 0, "X");
    const layout = batchNormLayout(x.shape, s.perPosition);
    const known = [1, 2, 3, 4].map((i) => ctx.inputInfos[i]?.value);
    let params: BatchNormParams;
    if (known.every((v) => v !== undefined)) {
      const [scale, bias, mean, variance] = known as CpuTensor[];
      params = { scale, bias, mean, variance };
    } else {
      const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) =>
        required(node, inputs, i, "parameter")
      );
      params = { scale, bias, mean, variance };
    }
    return onNode(
      node,
      () => prepareBatchNorm(ctx.gpu, ctx, x, outputs[0], layout, params, s.epsilon),
    );
  },
};

/** ONNX operators of the conv family, keyed by op type. */
export const convOps: Record<string, OpImpl> = {
  Conv: conv,
  [`${ENGINE_DOMAIN}.FusedConv`]: conv,
  MaxPool: pool("max"),
  AveragePool: pool("avg"),
  GlobalAveragePool: globalPool("avg"),
  GlobalMaxPool: globalPool("max"),
  BatchNormalization: batchNormalization,
};
