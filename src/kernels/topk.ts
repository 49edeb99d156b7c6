/** TopK along one axis (shaders/topk.wgsl): values and i32 (int64 on the host) indices, sorted,
 * ties broken by the lower index. One invocation per input element ranks it in its row. */
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
import { topKShape } from "./topk_shape.ts";

const WG = 64;

/** values/indices = the k largest (or smallest) of `x` along `axis` (non-negative). */
export function prepareTopK(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  values: GpuTensor,
  indices: GpuTensor,
  axis: number,
  k: number,
  largest: boolean,
): Dispatch[] {
  const expected = topKShape(x.shape, axis, k);
  for (const out of [values, indices]) {
    if (out.shape.length !== expected.length || expected.some((n, d) => n !== out.shape[d])) {
      throw new EngineError(
        `topK: output ${shapeString(out.shape)} is not ${shapeString(expected)}`,
      );
    }
  }
  if (x.dtype === "bool") throw new EngineError("topK: bool input is not supported");
  const total = sizeOf(x.shape);
  if (total === 0 || k === 0) return [];
  const uniform = owner.own(createUniform(gpu, "topk", {
    total,
    n: x.shape[axis],
    k,
    inner: sizeOf(x.shape.slice(axis + 1)),
  }));
  const t = storageType(x.dtype);
  return [prepareDispatch(
    gpu,
    {
      shader: "topk",
      constants: { WG, LARGEST: largest ? 1 : 0, IS_FLOAT: t === "f32" ? 1 : 0 },
      placeholders: { T: t },
    },
    [x, values, indices, uniform],
    Math.ceil(total / WG),
  )];
}
