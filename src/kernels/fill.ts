import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  Params,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { sizeOf } from "../util/tensor.ts";

const WG = 256;

/** Host reference: the values `prepareFill` writes. */
export function fillRef(n: number, value: number): Float64Array {
  return new Float64Array(n).fill(value);
}

/** Fills `out` with `value` (converted to the tensor's storage type). */
export function prepareFill(
  gpu: Gpu,
  owner: ResourceOwner,
  out: GpuTensor,
  value: number,
): Dispatch[] {
  const count = sizeOf(out.shape);
  const bits = new DataView(new ArrayBuffer(4));
  if (out.dtype === "float32" || out.dtype === "float16") bits.setFloat32(0, value, true);
  else bits.setInt32(0, value, true);
  const uniform = owner.own(
    createUniform(gpu, new Params().u32(count, bits.getUint32(0, true)), "fill"),
  );
  return [prepareDispatch(
    gpu,
    { shader: "fill", constants: { WG } },
    [out, uniform],
    Math.ceil(count / WG),
  )];
}
