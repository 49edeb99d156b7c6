/** DeformConv (2-D) on the GPU (shaders/deform_conv.wgsl); host reference in deform_conv_ref.ts. */
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
import { type DeformConvAttrs, deformConvShape } from "./deform_conv_shape.ts";

const WG = 64;

/** Records Y = DeformConv(X, W, offset, B?, mask?); all float tensors. */
export function prepareDeformConv(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  weight: GpuTensor,
  offset: GpuTensor,
  y: GpuTensor,
  a: DeformConvAttrs,
  bias?: GpuTensor,
  mask?: GpuTensor,
): Dispatch[] {
  const label = `deform conv ${shapeString(x.shape)} * ${shapeString(weight.shape)}`;
  for (const t of [x, weight, offset, y, bias, mask]) {
    if (t && t.dtype !== "float32" && t.dtype !== "float16") {
      throw new EngineError(`${label}: dtype ${t.dtype} is not a float type`);
    }
  }
  let shape: number[];
  try {
    shape = deformConvShape(x.shape, weight.shape, offset.shape, a, bias?.shape, mask?.shape);
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
  const [oc, icg, kh, kw] = weight.shape;
  const uniform = owner.own(createUniform(gpu, "deform_conv", {
    in_size: x.shape,
    out_size: [oc, shape[2], shape[3], count],
    kernel: [kh, kw, icg, oc / a.group],
    stride: a.strides,
    dilation: a.dilations,
    pad: [a.pads[0], a.pads[1]],
    offset_groups: a.offsetGroup,
    ic_per_offset_group: x.shape[1] / a.offsetGroup,
  }, "deform conv"));
  // Absent bias / mask: a small placeholder the shader never reads.
  const none = () => owner.own(createStorageBuffer(gpu, new Float32Array(4), "deform conv none"));
  return [prepareDispatch(
    gpu,
    {
      shader: "deform_conv",
      constants: {
        WG,
        HAS_BIAS: bias ? 1 : 0,
        HAS_MASK: mask ? 1 : 0,
        ROUND_F16: y.dtype === "float16" ? 1 : 0,
      },
    },
    [
      x,
      weight,
      offset,
      bias ?? none(),
      mask ?? none(),
      y,
      uniform,
    ],
    Math.ceil(count / WG),
  )];
}
