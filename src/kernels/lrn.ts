/** LRN on the GPU (shaders/lrn.wgsl); host reference in lrn_ref.ts. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { checkLrnShape, type LrnOptions } from "./lrn_shape.ts";

const WG = 64;

/** Records Y = LRN(X): X [N, C, ...] float; Y the same shape. */
export function prepareLrn(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  y: GpuTensor,
  o: LrnOptions,
): Dispatch[] {
  const label = `lrn ${shapeString(x.shape)}`;
  if (x.dtype !== "float32" && x.dtype !== "float16") {
    throw new EngineError(`${label}: dtype ${x.dtype} is not a float type`);
  }
  try {
    checkLrnShape(x.shape);
  } catch (e) {
    throw new EngineError(`${label}: ${(e as Error).message}`);
  }
  if (shapeString(x.shape) !== shapeString(y.shape)) {
    throw new EngineError(`${label}: output is ${shapeString(y.shape)}`);
  }
  const count = sizeOf(x.shape);
  if (count === 0) return [];
  const uniform = owner.own(createUniform(gpu, "lrn", {
    channels: x.shape[1],
    inner: sizeOf(x.shape.slice(2)),
    count,
    before: Math.floor((o.size - 1) / 2),
    after: Math.ceil((o.size - 1) / 2),
    scale: o.alpha / o.size,
    bias: o.bias,
    beta: o.beta,
  }));
  return [prepareDispatch(
    gpu,
    { shader: "lrn", constants: { WG, ROUND_F16: y.dtype === "float16" ? 1 : 0 } },
    [x, y, uniform],
    Math.ceil(count / WG),
  )];
}
