/** The AMU head's initial weights from class sums of the normalised features
 * (`shaders/amu_init.wgsl`). */
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { rowsByClass } from "./amu_init_shape.ts";

/** w [C, D] = per-class sums of x [N, D] / (N / C); `labels` (host, [N]) group the rows. */
export function prepareAmuInitWeights(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  labels: ArrayLike<number>,
  classes: number,
  w: GpuTensor,
): Dispatch[] {
  const [n, dim] = x.shape;
  if (labels.length !== n) {
    throw new EngineError(`amu init: ${labels.length} labels for ${n} feature rows`);
  }
  const { start, rows } = rowsByClass(labels, classes);
  const startBuf = owner.own(createStorageBuffer(gpu, start, "amu_init class starts"));
  const rowsBuf = owner.own(createStorageBuffer(gpu, rows, "amu_init class rows"));
  const uniform = owner.own(
    createUniform(gpu, "amu_init", { classes, dim, rowsPerClass: n / classes }),
  );
  const wg = 64;
  return [prepareDispatch(
    gpu,
    { shader: "amu_init", constants: { WG: wg } },
    [x, startBuf, rowsBuf, w, uniform],
    Math.ceil((classes * dim) / wg),
  )];
}
