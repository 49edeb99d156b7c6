/** Einsum (shaders/einsum.wgsl): a generic contraction over up to 3 operands, planned on the host
 * by planEinsum (einsum_shape.ts). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  storageType,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { planEinsum } from "./einsum_shape.ts";

const WG = 64;
export const EINSUM_MAX_OPERANDS = 3;
export const EINSUM_MAX_LABELS = 16;

/** out = einsum(equation, ...operands). */
export function prepareEinsum(
  gpu: Gpu,
  owner: ResourceOwner,
  equation: string,
  operands: readonly GpuTensor[],
  out: GpuTensor,
): Dispatch[] {
  if (operands.length < 1 || operands.length > EINSUM_MAX_OPERANDS) {
    throw new EngineError(`einsum: ${operands.length} operands (the kernel takes 1 to 3)`);
  }
  const dtype = operands[0].dtype;
  if (dtype === "bool" || operands.some((o) => o.dtype !== dtype)) {
    throw new EngineError(`einsum: operands must share one numeric dtype`);
  }
  const plan = planEinsum(equation, operands.map((o) => o.shape));
  if (
    plan.outShape.length !== out.shape.length || plan.outShape.some((n, d) => n !== out.shape[d])
  ) {
    throw new EngineError(
      `einsum: output ${shapeString(out.shape)} is not ${shapeString(plan.outShape)}`,
    );
  }
  const labels = plan.outShape.length + plan.sumSizes.length;
  if (labels > EINSUM_MAX_LABELS) {
    throw new EngineError(`einsum: ${labels} labels (the kernel takes ${EINSUM_MAX_LABELS})`);
  }
  const total = sizeOf(out.shape);
  if (total === 0) return [];
  // `strides` is one array of EINSUM_MAX_LABELS per operand slot, unused slots zero.
  const strides = new Array<number>(EINSUM_MAX_OPERANDS * EINSUM_MAX_LABELS).fill(0);
  plan.strides.forEach((s, k) => s.forEach((v, l) => strides[k * EINSUM_MAX_LABELS + l] = v));
  const uniform = owner.own(createUniform(gpu, "einsum", {
    total,
    sum_total: sizeOf(plan.sumSizes),
    n_out: plan.outShape.length,
    n_sum: plan.sumSizes.length,
    sizes: [...plan.outShape, ...plan.sumSizes],
    strides,
  }));
  const bound = [0, 1, 2].map((k) => operands[k] ?? operands[0]);
  return [prepareDispatch(
    gpu,
    {
      shader: "einsum",
      constants: { WG, OPERANDS: operands.length, ROUND_F16: dtype === "float16" ? 1 : 0 },
      placeholders: { T: storageType(dtype) },
    },
    [out, uniform, ...bound],
    Math.ceil(total / WG),
  )];
}
