import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  Params,
  prepareDispatch,
  sizeOf,
} from "../gpu/mod.ts";

const WG = 256;

/** Host reference: the value `fill` writes, as the tensor's dtype stores it. */
export function fillRef(n: number, value: number): Float64Array {
  return new Float64Array(n).fill(value);
}

/** Fills `out` with `value` (converted to the tensor's storage type). */
export function prepareFill(
  gpu: Gpu,
  out: GpuTensor,
  value: number,
): { dispatch: Dispatch; uniform: GPUBuffer } {
  const count = sizeOf(out.shape);
  const bits = new DataView(new ArrayBuffer(4));
  if (out.dtype === "float32" || out.dtype === "float16") bits.setFloat32(0, value, true);
  else bits.setInt32(0, value, true);
  const uniform = createUniform(gpu, new Params().u32(count, bits.getUint32(0, true)), "fill");
  const dispatch = prepareDispatch(
    gpu,
    { shader: "fill", constants: { WG } },
    [out, uniform],
    Math.ceil(count / WG),
  );
  return { dispatch, uniform };
}
