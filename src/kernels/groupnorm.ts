/** GPU binding of `shaders/groupnorm.wgsl`: group normalization (and instance normalization, one
 * channel per group) as three passes: statistics per chunk of a row, their merge per row, and the
 * elementwise normalisation (see the shader's header for why). */
import { type CpuTensor, shapeString, sizeOf } from "../util/tensor.ts";
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  STORAGE_USAGE,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { type GroupNormLayout, groupNormParamCount } from "./groupnorm_shape.ts";
import { operandBinding } from "./operand_binding.ts";

const WG = 64;
/** Values per invocation of the apply pass (RUN in the shader). */
const RUN = 4;

/** Values per invocation of the statistics pass (CHUNK in the shader): enough that the merge of
 * the chunks is a small part of the work, few enough that a few long rows still give every CPU
 * core (and GPU lane) chunks to sum. */
export const GROUPNORM_CHUNK = 256;

/** Records Y = GroupNorm(X) * scale + bias for X [N, C, ...] viewed by `layout`; scale and bias
 * hold one value per channel or per group (`layout.perChannel`), as host tensors (uploaded once
 * into buffers owned by `owner`) or GPU tensors. Y has X's shape (rounded to half precision when
 * float16). `chunk` overrides the values per invocation of the statistics pass (tests). */
export function prepareGroupNorm(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  scale: GpuTensor | CpuTensor,
  bias: GpuTensor | CpuTensor,
  y: GpuTensor,
  layout: GroupNormLayout,
  epsilon: number,
  chunk = GROUPNORM_CHUNK,
): Dispatch[] {
  if (shapeString(x.shape) !== shapeString(y.shape)) {
    throw new EngineError(
      `groupnorm: output ${shapeString(y.shape)} differs from input ${shapeString(x.shape)}`,
    );
  }
  const total = layout.batch * layout.channels * layout.plane;
  if (sizeOf(x.shape) !== total) {
    throw new EngineError(`groupnorm: layout does not match input ${shapeString(x.shape)}`);
  }
  const count = groupNormParamCount(layout);
  for (const [name, t] of [["scale", scale], ["bias", bias]] as const) {
    if (sizeOf(t.shape) !== count) {
      throw new EngineError(`groupnorm: ${name} has ${sizeOf(t.shape)} values, expected ${count}`);
    }
  }
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new EngineError(`groupnorm: chunk must be a positive integer, got ${chunk}`);
  }
  if (total === 0) return [];
  const param = (t: GpuTensor | CpuTensor, label: string) => operandBinding(gpu, owner, t, label);
  const rows = layout.batch * layout.groups;
  const cpg = layout.channels / layout.groups;
  const rowLength = cpg * layout.plane;
  const runs = Math.ceil(layout.plane / RUN);
  const chunks = Math.ceil(rowLength / chunk);
  const uniform = owner.own(createUniform(gpu, "groupnorm", {
    rows,
    row_len: rowLength,
    plane: layout.plane,
    channels: layout.channels,
    channels_per_group: cpg,
    param_div: layout.perChannel ? 1 : cpg,
    epsilon,
    runs,
    chunks,
  }));
  // Row statistics, then the chunks' (see the shader): 2 values each.
  const stats = owner.own(gpu.device.createBuffer({
    size: Math.max(16, 8 * rows * (1 + chunks)),
    usage: STORAGE_USAGE,
    label: "groupnorm stats",
  }));
  const spec = (entryPoint: string, constants: Record<string, number>) => ({
    shader: "groupnorm",
    entryPoint,
    constants: { WG, ...constants },
  });
  return [
    prepareDispatch(
      gpu,
      spec("partials", { CHUNK: chunk }),
      [uniform, stats, x],
      Math.ceil((rows * chunks) / WG),
    ),
    prepareDispatch(gpu, spec("combine", { CHUNK: chunk }), [uniform, stats], Math.ceil(rows / WG)),
    prepareDispatch(
      gpu,
      spec("apply", { ROUND_F16: y.dtype === "float16" ? 1 : 0 }),
      [uniform, stats, x, param(scale, "groupnorm scale"), param(bias, "groupnorm bias"), y],
      Math.ceil((layout.batch * layout.channels * runs) / WG),
    ),
  ];
}
