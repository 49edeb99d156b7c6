/** ONNX operators: InstanceNormalization, GroupNormalization. Both run as group normalization
 * (src/kernels/groupnorm.ts): InstanceNormalization is one channel per group, parameters per
 * channel; GroupNormalization has its parameters per group in opset 18 and per channel from
 * opset 21. */
import { type CpuTensor, cpuTensor } from "../../util/tensor.ts";
import { type GpuTensor } from "../../gpu/mod.ts";
import { prepareGroupNorm } from "../../kernels/groupnorm.ts";
import { groupNormRef } from "../../kernels/groupnorm_ref.ts";
import {
  type GroupNormLayout,
  groupNormLayout,
  groupNormParamCount,
} from "../../kernels/groupnorm_shape.ts";
import { UnsupportedFeatureError } from "../graph.ts";
import {
  attrFloat,
  attrInt,
  NodeError,
  type OpContext,
  type OpImpl,
  type TensorInfo,
} from "../types.ts";
import { FLOATS, onNode, required, type Shaped } from "./common.ts";

/** ONNX TensorProto data types GroupNormalization's stash_type may name: FLOAT, FLOAT16, DOUBLE,
 * BFLOAT16. The statistics are computed in float32 whichever it names (float16 tensors are
 * stored as float32 here, so there is no cheaper half-precision path to honour). */
const STASH_TYPES = [1, 10, 11, 16];

interface NormSettings {
  layout: GroupNormLayout;
  epsilon: number;
}

function settings(
  ctx: OpContext,
  inputs: readonly (Shaped | undefined)[],
  kind: "instance" | "group",
): NormSettings {
  const { node, opset } = ctx;
  const x = required(node, inputs, 0, "X");
  const scale = required(node, inputs, 1, "scale");
  const bias = required(node, inputs, 2, "B");
  for (const [t, what] of [[x, "X"], [scale, "scale"], [bias, "B"]] as const) {
    if (!FLOATS.includes(t.dtype)) {
      throw new UnsupportedFeatureError(
        node,
        `${what} dtype ${t.dtype} is not supported (float32, float16)`,
      );
    }
  }
  if (x.shape.length < 2) {
    throw new NodeError(node, `input X has rank ${x.shape.length}; needs N, C, ...`);
  }
  const c = x.shape[1];
  let groups = c;
  let perChannel = true;
  if (kind === "group") {
    groups = attrInt(node, "num_groups");
    if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
      throw new NodeError(node, `num_groups ${groups} must divide the ${c} channels`);
    }
    perChannel = opset >= 21;
    if (opset >= 21) {
      const stash = attrInt(node, "stash_type", 1);
      if (!STASH_TYPES.includes(stash)) {
        throw new NodeError(node, `stash_type ${stash} is not a floating-point type`);
      }
    }
  }
  const layout = onNode(node, () => groupNormLayout(x.shape, groups, perChannel));
  const count = groupNormParamCount(layout);
  for (const [t, what] of [[scale, "scale"], [bias, "B"]] as const) {
    if (t.shape.length !== 1 || t.shape[0] !== count) {
      throw new NodeError(
        node,
        `${what} has shape [${t.shape}], expected [${count}] (one per ${
          perChannel ? "channel" : "group"
        }${kind === "group" ? ` in opset ${opset}` : ""})`,
      );
    }
  }
  const epsilon = attrFloat(node, "epsilon", 1e-5);
  if (!(epsilon >= 0)) throw new NodeError(node, `epsilon ${epsilon} must be >= 0`);
  return { layout, epsilon };
}

function normOp(kind: "instance" | "group"): OpImpl {
  return {
    infer(ctx, inputs): TensorInfo[] {
      const x = required(ctx.node, inputs, 0, "X");
      settings(ctx, inputs, kind);
      return [{ dtype: x.dtype, shape: x.shape }];
    },
    cpu(ctx, inputs) {
      const { node } = ctx;
      const s = settings(ctx, inputs, kind);
      const [x, scale, bias] = [0, 1, 2].map((i) => required(node, inputs, i, "input"));
      const y = groupNormRef(x.data, s.layout, scale.data, bias.data, s.epsilon);
      return [cpuTensor(x.dtype, x.shape, y)];
    },
    gpu(ctx, inputs, outputs) {
      const { node } = ctx;
      const s = settings(ctx, ctx.inputInfos, kind);
      const x = required(node, inputs, 0, "X");
      // Constant parameters are uploaded once from their host values.
      const param = (i: number, what: string): GpuTensor | CpuTensor =>
        ctx.inputInfos[i]?.value ?? required(node, inputs, i, what);
      return onNode(
        node,
        () =>
          prepareGroupNorm(
            ctx.gpu,
            ctx,
            x,
            param(1, "scale"),
            param(2, "B"),
            outputs[0],
            s.layout,
            s.epsilon,
          ),
      );
    },
  };
}

/** Operators of this family, keyed by op type. */
export const normalizationOps: Record<string, OpImpl> = {
  InstanceNormalization: normOp("instance"),
  GroupNormalization: normOp("group"),
};
