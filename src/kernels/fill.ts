/** Fill (shaders/fill.wgsl): every element of a tensor set to one value; the reference is
 * fill_ref.ts. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { sizeOf } from "../util/tensor.ts";

const WG = 256;

/** The 32-bit word a GPU tensor of `dtype` stores for `value`: its f32 bits for float32 and
 * float16 (held as f32), its i32 bits for the integer types and bool. */
export function elementBits(value: number, dtype: GpuTensor["dtype"]): number {
  const view = new DataView(new ArrayBuffer(4));
  if (dtype === "float32" || dtype === "float16") view.setFloat32(0, value, true);
  else view.setInt32(0, value, true);
  return view.getUint32(0, true);
}

/** Fills `out` with `value` (converted to the tensor's storage type). */
export function prepareFill(
  gpu: Gpu,
  owner: ResourceOwner,
  out: GpuTensor,
  value: number,
): Dispatch[] {
  const count = sizeOf(out.shape);
  const uniform = owner.own(
    createUniform(gpu, "fill", { count, bits: elementBits(value, out.dtype) }),
  );
  return [prepareDispatch(
    gpu,
    { shader: "fill", constants: { WG } },
    [out, uniform],
    Math.ceil(count / WG),
  )];
}
