/** LpPool on the GPU (shaders/lp_pool.wgsl); host reference in lp_pool_ref.ts. */
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
import { pool3d, type PoolAttrs, poolOutputShape } from "./pool_shape.ts";

const WG = 64;

/** Records Y = LpPool(X): X [N, C, ...1-3 spatial axes] float, Y the pooled shape; p > 0. */
export function prepareLpPool(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  y: GpuTensor,
  attrs: PoolAttrs,
  p: number,
): Dispatch[] {
  const label = `lp pool ${shapeString(x.shape)}`;
  if (x.dtype !== "float32" && x.dtype !== "float16") {
    throw new EngineError(`${label}: dtype ${x.dtype} is not a float type`);
  }
  if (!(p > 0)) throw new EngineError(`${label}: p must be positive, not ${p}`);
  let shape: number[];
  try {
    shape = poolOutputShape(x.shape, attrs);
  } catch (e) {
    throw new EngineError(`${label}: ${(e as Error).message}`);
  }
  if (shapeString(shape) !== shapeString(y.shape)) {
    throw new EngineError(
      `${label}: output is ${shapeString(y.shape)}, expected ${shapeString(shape)}`,
    );
  }
  const count = sizeOf(shape);
  if (count === 0) return [];
  const g = pool3d(x.shape, shape, attrs);
  const uniform = owner.own(createUniform(gpu, "lp_pool", {
    in_size: [...g.inSize, sizeOf(g.inSize)],
    out_size: [...g.outSize, sizeOf(g.outSize)],
    kernel: g.kernel,
    stride: g.strides,
    dilation: g.dilations,
    pad_begin: g.padBegin,
    count,
    p,
  }, "lp pool"));
  return [prepareDispatch(
    gpu,
    {
      shader: "lp_pool",
      constants: {
        WG,
        P_KIND: p === 1 ? 1 : p === 2 ? 2 : 0,
        ROUND_F16: y.dtype === "float16" ? 1 : 0,
      },
    },
    [x, y, uniform],
    Math.ceil(count / WG),
  )];
}
