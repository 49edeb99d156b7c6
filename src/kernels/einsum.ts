/** Einsum (shaders/einsum.wgsl): a generic contraction over up to 3 operands, planned on the host
 * by planEinsum (einsum_ref.ts). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  Params,
  prepareDispatch,
  type ResourceOwner,
  storageType,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { planEinsum } from "./einsum_ref.ts";

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
  const params = new Params()
    .u32(total, sizeOf(plan.sumSizes), plan.outShape.length, plan.sumSizes.length)
    .u32Array([...plan.outShape, ...plan.sumSizes], 4);
  for (let k = 0; k < EINSUM_MAX_OPERANDS; k++) params.u32Array(plan.strides[k] ?? [], 4);
  const uniform = owner.own(createUniform(gpu, params, "einsum"));
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
