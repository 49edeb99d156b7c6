/** Col2Im on the GPU (shaders/col2im.wgsl); host reference in col2im_ref.ts. */
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
import { type Col2ImAttrs, col2ImBlocks, col2ImShape } from "./col2im_shape.ts";
import { to3d } from "./shape.ts";

const WG = 64;

/** Records Y = Col2Im(X): X [N, C * prod(block), L] float, Y [N, C, ...image] (1-3 axes). */
export function prepareCol2Im(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  y: GpuTensor,
  a: Col2ImAttrs,
): Dispatch[] {
  const label = `col2im ${shapeString(x.shape)}`;
  if (x.dtype !== "float32" && x.dtype !== "float16") {
    throw new EngineError(`${label}: dtype ${x.dtype} is not a float type`);
  }
  let shape: number[];
  try {
    shape = col2ImShape(x.shape, a);
  } catch (e) {
    throw new EngineError(`${label}: ${(e as Error).message}`);
  }
  if (shapeString(shape) !== shapeString(y.shape)) {
    throw new EngineError(
      `${label}: output is ${shapeString(y.shape)}, expected ${shapeString(shape)}`,
    );
  }
  const rank = a.image.length;
  if (rank > 3) throw new EngineError(`${label}: ${rank} image axes (at most 3 are supported)`);
  const count = sizeOf(shape);
  if (count === 0) return [];
  const blocks = col2ImBlocks(a);
  const uniform = owner.own(createUniform(gpu, "col2im", {
    image: [...to3d(a.image, 1), sizeOf(a.image)],
    kernel: [...to3d(a.block, 1), sizeOf(a.block)],
    blocks: [...to3d(blocks, 1), sizeOf(blocks)],
    stride: to3d(a.strides, 1),
    dilation: to3d(a.dilations, 1),
    pad_begin: to3d(a.pads.slice(0, rank), 0),
    count,
  }));
  return [prepareDispatch(
    gpu,
    { shader: "col2im", constants: { WG, ROUND_F16: y.dtype === "float16" ? 1 : 0 } },
    [x, y, uniform],
    Math.ceil(count / WG),
  )];
}
