/** GPU binding of `shaders/pool.wgsl`: max / average pooling over 1-3 spatial axes, MaxPool's
 * argmax indices, and global pools (a window covering the whole spatial extent). */
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
import { shapeString, sizeOf } from "../util/tensor.ts";
import { pool3d, type PoolAttrs, poolOutputShape } from "./pool_shape.ts";

const WG = 64;

export type PoolKind = "max" | "avg";

/** Pool settings of GlobalAveragePool / GlobalMaxPool for an input shape [N, C, ...spatial]. */
export function globalPoolAttrs(xShape: readonly number[]): PoolAttrs {
  const spatial = xShape.slice(2);
  return {
    kernel: spatial,
    strides: spatial.map(() => 1),
    pads: [...spatial, ...spatial].map(() => 0),
    dilations: spatial.map(() => 1),
  };
}

/** Records Y = pool(X) (and, for max pooling, the argmax `indices` as int32/int64 flat input
 * positions when given). X [N, C, ...spatial]; Y and indices have the pooled shape. */
export function preparePool(
  gpu: Gpu,
  owner: ResourceOwner,
  kind: PoolKind,
  x: GpuTensor,
  y: GpuTensor,
  attrs: PoolAttrs,
  indices?: GpuTensor,
): Dispatch[] {
  const shape = poolOutputShape(x.shape, attrs);
  if (shapeString(shape) !== shapeString(y.shape)) {
    throw new EngineError(
      `${kind} pool: output is ${shapeString(y.shape)}, expected ${shapeString(shape)}`,
    );
  }
  if (indices && (kind !== "max" || shapeString(indices.shape) !== shapeString(shape))) {
    throw new EngineError(`${kind} pool: indices ${shapeString(indices.shape)} do not fit`);
  }
  const count = sizeOf(shape);
  if (count === 0) return [];
  if (sizeOf(x.shape) > 2 ** 31 - 1 && indices) {
    throw new EngineError(`max pool: input ${shapeString(x.shape)} too large for 32-bit indices`);
  }
  const g = pool3d(x.shape, shape, attrs);
  const uniform = owner.own(createUniform(gpu, "pool", {
    in_size: [...g.inSize, sizeOf(g.inSize)],
    out_size: [...g.outSize, sizeOf(g.outSize)],
    kernel: g.kernel,
    stride: g.strides,
    dilation: g.dilations,
    pad_begin: g.padBegin,
    pad_end: g.padEnd,
    count,
  }));
  const indexBinding = indices ??
    owner.own(createStorageBuffer(gpu, new Int32Array(4), "pool no indices"));
  return [prepareDispatch(
    gpu,
    {
      shader: "pool",
      constants: {
        WG,
        MAX: kind === "max" ? 1 : 0,
        COUNT_INCLUDE_PAD: attrs.countIncludePad ? 1 : 0,
        WITH_INDICES: indices ? 1 : 0,
        COL_MAJOR: (attrs.storageOrder ?? 0) === 1 ? 1 : 0,
        ROUND_F16: y.dtype === "float16" ? 1 : 0,
      },
    },
    [x, y, indexBinding, uniform],
    Math.ceil(count / WG),
  )];
}
