/** AMU-Tuning's uncertainty factor per row of CLIP logits (`shaders/amu_factor.wgsl`). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString } from "../util/tensor.ts";
import { minClassesFor, uncertaintyCode, type UncertaintyKind } from "./amu_factor_shape.ts";

export { isUncertaintyKind, UNCERTAINTY_KINDS, type UncertaintyKind } from "./amu_factor_shape.ts";

/** factor[r] = uncertainty(logits[r, :], kind, power) for a [rows, C] float32 tensor; `factor`
 * holds at least `rows` floats. One workgroup of `workgroupSize` (a power of two) per row. */
export function prepareAmuFactor(
  gpu: Gpu,
  owner: ResourceOwner,
  logits: GpuTensor,
  factor: GpuTensor,
  kind: UncertaintyKind,
  power: number,
  workgroupSize = 64,
): Dispatch[] {
  if (logits.shape.length !== 2) {
    throw new EngineError(
      `uncertainty factor: logits must be [rows, C], got ` +
        `${shapeString(logits.shape)}`,
    );
  }
  const [rows, classes] = logits.shape;
  if (classes < minClassesFor(kind)) {
    throw new EngineError(
      `uncertainty '${kind}' needs at least ${minClassesFor(kind)} classes, ` +
        `got ${classes}`,
    );
  }
  if (factor.shape.reduce((x, y) => x * y, 1) < rows) {
    throw new EngineError(`uncertainty factor: output ${shapeString(factor.shape)} < ${rows} rows`);
  }
  const uniform = owner.own(createUniform(gpu, "amu_factor", { rows, classes, power }));
  return [prepareDispatch(
    gpu,
    {
      shader: "amu_factor",
      constants: { KIND: uncertaintyCode(kind) },
      placeholders: { WG: workgroupSize },
    },
    [logits, factor, uniform],
    rows,
  )];
}
