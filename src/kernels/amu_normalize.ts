/** L2 row normalisation in place (`shaders/amu_normalize.wgsl`), for AMU's cached features. */
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

/** x[r, :] /= ||x[r, :]||_2 for every row of a [rows, cols] float32 tensor, in place. One
 * workgroup of `workgroupSize` (a power of two) invocations per row. */
export function prepareL2NormalizeRows(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  workgroupSize = 64,
): Dispatch[] {
  if (x.shape.length !== 2 || x.dtype !== "float32") {
    throw new EngineError(
      `l2 normalise: expected a float32 [rows, cols] tensor, got ` +
        `${x.dtype} ${shapeString(x.shape)}`,
    );
  }
  const [rows, cols] = x.shape;
  const uniform = owner.own(createUniform(gpu, "amu_normalize", { rows, cols }));
  return [prepareDispatch(
    gpu,
    { shader: "amu_normalize", placeholders: { WG: workgroupSize } },
    [x, uniform],
    rows,
  )];
}
