import { type CpuTensor, cpuTensor, type DType } from "../util/tensor.ts";

/** WGSL storage type used for a logical dtype. */
export type StorageType = "f32" | "i32" | "u32";

export function storageType(dtype: DType): StorageType {
  switch (dtype) {
    case "float32":
    case "float16":
      return "f32";
    case "int32":
    case "int64":
    case "int8":
    case "uint8":
      return "i32";
    case "bool":
      return "u32";
  }
}

/** Bytes per element on the GPU (always 4: see DType). */
export const GPU_ELEMENT_BYTES = 4;

/** A tensor living in a GPU storage buffer, row-major, starting at byte 0 of the buffer.
 * The buffer may be larger than the tensor (pooled buffers come in size classes). */
export interface GpuTensor {
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** Converts host data to the 32-bit layout the GPU stores (see DType). `label` names the tensor
 * in the error raised when an int64 value does not fit in i32. */
export function toGpuArray(
  t: CpuTensor,
  label = "tensor",
): Float32Array | Int32Array | Uint32Array {
  switch (t.dtype) {
    case "float32":
    case "float16":
      return t.data instanceof Float32Array ? t.data : new Float32Array(t.data);
    case "int32":
      return t.data instanceof Int32Array ? t.data : Int32Array.from(t.data);
    case "int64": {
      const out = new Int32Array(t.data.length);
      for (let i = 0; i < t.data.length; i++) {
        const v = t.data[i];
        if (v > 2147483647 || v < -2147483648) {
          throw new RangeError(
            `${label}: int64 value ${v} at index ${i} does not fit in the GPU's 32-bit integers`,
          );
        }
        out[i] = v;
      }
      return out;
    }
    case "bool":
      return Uint32Array.from(t.data);
    case "int8":
    case "uint8":
      return Int32Array.from(t.data);
  }
}

/** Wraps GPU-layout data read back from a buffer as a host tensor of `dtype`. */
export function fromGpuArray(
  data: Float32Array | Int32Array | Uint32Array,
  shape: readonly number[],
  dtype: DType,
): CpuTensor {
  switch (dtype) {
    case "float32":
      return {
        dtype,
        shape: [...shape],
        data: new Float32Array(data.buffer, data.byteOffset, data.length),
      };
    case "float16":
      return cpuTensor(dtype, shape, new Float32Array(data.buffer, data.byteOffset, data.length));
    case "int32":
      return {
        dtype,
        shape: [...shape],
        data: new Int32Array(data.buffer, data.byteOffset, data.length),
      };
    case "int64":
      return { dtype, shape: [...shape], data: Float64Array.from(data) };
    case "bool":
      return { dtype, shape: [...shape], data: Uint8Array.from(data) };
    // Kernels producing int8/uint8 keep values in range; the typed array wraps anything else.
    case "int8":
      return { dtype, shape: [...shape], data: Int8Array.from(data) };
    case "uint8":
      return { dtype, shape: [...shape], data: Uint8Array.from(data) };
  }
}

/** Whether `t` lives on the GPU (bindings and the executor take either kind where a constant may
 * stay on the host). */
export function isGpuTensor(t: GpuTensor | CpuTensor): t is GpuTensor {
  return (t as GpuTensor).buffer !== undefined;
}
