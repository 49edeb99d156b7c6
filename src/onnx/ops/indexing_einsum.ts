/** ONNX Einsum: the equation is planned on the host (labels, sizes, strides) and run by a generic
 * contraction kernel. Registered through `indexingOps` (indexing.ts). */
import { EINSUM_MAX_LABELS, EINSUM_MAX_OPERANDS, prepareEinsum } from "../../kernels/einsum.ts";
import { einsumRef } from "../../kernels/einsum_ref.ts";
import { planEinsum } from "../../kernels/einsum_shape.ts";
import { UnsupportedFeatureError } from "../graph.ts";
import { attrString, NodeError, type OnnxNode, type OpImpl } from "../types.ts";
import { onNode, required, type Shaped } from "./common.ts";

/** The operands (all present, one numeric dtype). */
function operandsOf<T extends Shaped>(node: OnnxNode, inputs: readonly (T | undefined)[]): T[] {
  const ops = inputs.map((_, i) => required(node, inputs, i));
  if (ops.length === 0) throw new NodeError(node, "needs at least one input");
  const dtype = ops[0].dtype;
  if (dtype === "bool") throw new NodeError(node, "bool operands are not supported");
  const other = ops.find((o) => o.dtype !== dtype);
  if (other) throw new NodeError(node, `inputs mix ${dtype} and ${other.dtype}`);
  return ops;
}

const Einsum: OpImpl = {
  infer({ node }, inputs) {
    const ops = operandsOf(node, inputs);
    const equation = attrString(node, "equation");
    const plan = onNode(node, () => planEinsum(equation, ops.map((o) => o.shape)));
    // Limits of the GPU kernel (the CPU reference has none): a scope limit, not a bad model.
    const labels = plan.outShape.length + plan.sumSizes.length;
    if (ops.length > EINSUM_MAX_OPERANDS || labels > EINSUM_MAX_LABELS) {
      throw new UnsupportedFeatureError(
        node,
        `${ops.length} operands and ${labels} labels; the GPU ` +
          `kernel takes up to ${EINSUM_MAX_OPERANDS} and ${EINSUM_MAX_LABELS}`,
      );
    }
    return [{ dtype: ops[0].dtype, shape: [...plan.outShape] }];
  },
  cpu({ node }, inputs) {
    const ops = operandsOf(node, inputs);
    return [onNode(node, () => einsumRef(attrString(node, "equation"), ops))];
  },
  gpu(ctx, inputs, [out]) {
    const ops = operandsOf(ctx.node, inputs);
    const equation = attrString(ctx.node, "equation");
    return onNode(ctx.node, () => prepareEinsum(ctx.gpu, ctx, equation, ops, out));
  },
};

export const einsumOps: Record<string, OpImpl> = { Einsum };
