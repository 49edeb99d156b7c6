/** OneHot (shaders/onehot.wgsl): one invocation per output element. */
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
import { sizeOf } from "../util/tensor.ts";
import { oneHotShape } from "./onehot_shape.ts";

const WG = 64;

/** out = OneHot(indices, depth, values = [off, on]) with the new axis at `axis` (non-negative). */
export function prepareOneHot(
  gpu: Gpu,
  owner: ResourceOwner,
  indices: GpuTensor,
  values: GpuTensor,
  out: GpuTensor,
  depth: number,
  axis: number,
): Dispatch[] {
  const expected = oneHotShape(indices.shape, depth, axis);
  if (expected.length !== out.shape.length || expected.some((n, d) => n !== out.shape[d])) {
    throw new EngineError("oneHot: output shape mismatch");
  }
  if (sizeOf(values.shape) !== 2) throw new EngineError("oneHot: values must hold [off, on]");
  if (indices.dtype === "bool") throw new EngineError("oneHot: bool indices");
  const total = sizeOf(out.shape);
  if (total === 0) return [];
  const uniform = owner.own(createUniform(gpu, "onehot", {
    total,
    depth,
    inner: sizeOf(indices.shape.slice(axis)),
  }));
  return [prepareDispatch(
    gpu,
    {
      shader: "onehot",
      constants: { WG },
      placeholders: { IT: storageType(indices.dtype), T: storageType(out.dtype) },
    },
    [indices, values, out, uniform],
    Math.ceil(total / WG),
  )];
}
