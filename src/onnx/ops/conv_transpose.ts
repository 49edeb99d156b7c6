/** ONNX operators: ConvTranspose. Attributes (per the operator's definition, opsets 1, 11, 22:
 * the forms did not change) are resolved into explicit, possibly negative pads and an output
 * padding, the plain settings the kernel and its CPU reference share. */
import { type CpuTensor, cpuTensor } from "../../util/tensor.ts";
import { type GpuTensor } from "../../gpu/mod.ts";
import { prepareConvTranspose } from "../../kernels/conv_transpose.ts";
import { convTransposeRef } from "../../kernels/conv_transpose_ref.ts";
import {
  type ConvTransposeAttrs,
  convTransposeAxisSize,
  convTransposeOutputShape,
} from "../../kernels/conv_shape.ts";
import { UnsupportedFeatureError } from "../graph.ts";
import { attrInt, attrInts, attrString, NodeError, type OnnxNode, type OpImpl } from "../types.ts";
import { checkFloat, onNode, required, type Shaped } from "./common.ts";

function checkList(
  node: OnnxNode,
  name: string,
  values: readonly number[],
  length: number,
  min: number,
): void {
  if (values.length !== length) {
    throw new NodeError(node, `${name} has ${values.length} values, expected ${length}`);
  }
  if (values.some((v) => !Number.isInteger(v) || v < min)) {
    throw new NodeError(node, `${name} [${values}] must be integers >= ${min}`);
  }
}

/** Splits a total padding between the two ends as the operator defines it: SAME_UPPER puts the
 * odd one at the end, anything else at the start. Floor division, as the ONNX reference does:
 * a negative total (the requested output is longer than the full scatter) extends the end
 * first for NOTSET (test_convtranspose_output_shape: total -1 gives pads 0, -1). */
function splitPadding(total: number, autoPad: string): [number, number] {
  const half = Math.floor(total / 2);
  return autoPad === "SAME_UPPER" ? [half, total - half] : [total - half, half];
}

/** The node's settings for X and W: strides, dilations, group, output padding and explicit pads
 * (from `pads`, `auto_pad` or `output_shape`, which takes precedence as the definition says:
 * "pads values are auto generated"). */
function convTransposeSettings(node: OnnxNode, x: Shaped, w: Shaped): ConvTransposeAttrs {
  const rank = x.shape.length - 2;
  if (rank < 1) {
    throw new NodeError(node, `input X has rank ${x.shape.length}; needs N, C and spatial axes`);
  }
  if (rank > 3) {
    throw new UnsupportedFeatureError(node, `${rank} spatial axes (at most 3 are supported)`);
  }
  if (w.shape.length !== x.shape.length) {
    throw new NodeError(node, `W has rank ${w.shape.length}, X has rank ${x.shape.length}`);
  }
  const inSpatial = x.shape.slice(2);
  const kernel = w.shape.slice(2);
  if (node.attrs.has("kernel_shape")) {
    const declared = attrInts(node, "kernel_shape");
    if (declared.join() !== kernel.join()) {
      throw new NodeError(
        node,
        `kernel_shape [${declared}] does not match W's spatial shape [${kernel}]`,
      );
    }
  }
  const group = attrInt(node, "group", 1);
  if (!Number.isInteger(group) || group < 1) {
    throw new NodeError(node, `group must be a positive integer, got ${group}`);
  }
  const c = x.shape[1];
  if (c % group !== 0) {
    throw new NodeError(node, `group ${group} does not divide the ${c} input channels`);
  }
  if (w.shape[0] !== c) {
    throw new NodeError(node, `W has ${w.shape[0]} input channels (dim 0), X has ${c}`);
  }
  const ones = Array<number>(rank).fill(1);
  const strides = attrInts(node, "strides", ones);
  const dilations = attrInts(node, "dilations", ones);
  const outputPadding = attrInts(node, "output_padding", Array<number>(rank).fill(0));
  checkList(node, "strides", strides, rank, 1);
  checkList(node, "dilations", dilations, rank, 1);
  checkList(node, "output_padding", outputPadding, rank, 0);
  const full = inSpatial.map((d, a) =>
    convTransposeAxisSize(d, kernel[a], strides[a], dilations[a], 0, 0, outputPadding[a])
  );
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  if (!["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"].includes(autoPad)) {
    throw new NodeError(node, `unknown auto_pad '${autoPad}'`);
  }
  // The output length per axis that fixes the pads, if the attributes ask for one.
  let target: number[] | undefined;
  if (node.attrs.has("output_shape")) {
    const shape = attrInts(node, "output_shape");
    // Spatial sizes, or (as some exporters write it) the whole [N, M, ...spatial] shape.
    if (shape.length !== rank && shape.length !== rank + 2) {
      throw new NodeError(
        node,
        `output_shape has ${shape.length} values for ${rank} spatial axes`,
      );
    }
    target = shape.slice(shape.length - rank);
    checkList(node, "output_shape", target, rank, 1);
  } else if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    target = inSpatial.map((d, a) => d * strides[a]);
  }
  let pads: number[];
  if (target) {
    const split = full.map((f, a) => splitPadding(f - target[a], autoPad));
    pads = [...split.map((s) => s[0]), ...split.map((s) => s[1])];
  } else if (autoPad === "VALID") {
    pads = Array<number>(2 * rank).fill(0);
  } else {
    pads = attrInts(node, "pads", Array<number>(2 * rank).fill(0));
    if (pads.length !== 2 * rank) {
      throw new NodeError(node, `pads has ${pads.length} values for ${rank} spatial axes`);
    }
    if (pads.some((p) => !Number.isInteger(p))) {
      throw new NodeError(node, `pads [${pads}] must be integers`);
    }
  }
  return { strides, dilations, pads, outputPadding, group };
}

const convTranspose: OpImpl = {
  infer(ctx, inputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const w = required(node, inputs, 1, "W");
    checkFloat(node, x, "X");
    checkFloat(node, w, "W");
    const attrs = convTransposeSettings(node, x, w);
    const m = w.shape[1] * attrs.group;
    const b = inputs[2];
    if (b) {
      checkFloat(node, b, "B");
      if (b.shape.length !== 1 || b.shape[0] !== m) {
        throw new NodeError(node, `B has shape [${b.shape}], expected [${m}]`);
      }
    }
    return [{
      dtype: x.dtype,
      shape: onNode(node, () => convTransposeOutputShape(x.shape, w.shape, attrs)),
    }];
  },
  cpu(ctx, inputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const w = required(node, inputs, 1, "W");
    const attrs = convTransposeSettings(node, x, w);
    const y = onNode(
      node,
      () => convTransposeRef(x.data, x.shape, w.data, w.shape, inputs[2]?.data, attrs),
    );
    // The reference returns float32 values; a float16 output holds half values.
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
    const attrs = convTransposeSettings(node, xInfo, wInfo);
    return onNode(
      node,
      () => prepareConvTranspose(ctx.gpu, ctx, x, w, b, outputs[0], attrs),
    );
  },
};

/** ONNX operators of this family, keyed by op type. */
export const convTransposeOps: Record<string, OpImpl> = {
  ConvTranspose: convTranspose,
};
