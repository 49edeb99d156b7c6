import { EngineError } from "../util/errors.ts";
import type { Gpu } from "./device.ts";
import { STORAGE_USAGE } from "./buffer_pool.ts";
import { type CpuTensor, type DType, shapeString, sizeOf } from "../util/tensor.ts";
import { fromGpuArray, GPU_ELEMENT_BYTES, type GpuTensor, toGpuArray } from "./tensor.ts";

/** A pooled tensor of the given shape (contents undefined). Release with `releaseTensor`. */
export function allocTensor(
  gpu: Gpu,
  shape: readonly number[],
  dtype: DType,
  label = "tensor",
): GpuTensor {
  const bytes = sizeOf(shape) * GPU_ELEMENT_BYTES;
  return { buffer: gpu.pool.acquire(bytes, `${label} ${shapeString(shape)}`), shape, dtype };
}

export function releaseTensor(gpu: Gpu, t: GpuTensor): void {
  gpu.pool.release(t.buffer);
}

/** Host data accepted by `uploadTensor`: already in GPU element layout (32 bits each). */
export type GpuHostArray = Float32Array | Int32Array | Uint32Array;

/** Uploads 32-bit data into a new pooled tensor. */
export function uploadTensor(
  gpu: Gpu,
  data: GpuHostArray,
  shape: readonly number[],
  dtype: DType,
  label = "tensor",
): GpuTensor {
  const n = sizeOf(shape);
  if (data.length !== n) {
    throw new EngineError(`${label}: ${data.length} values for shape ${shapeString(shape)}`);
  }
  const t = allocTensor(gpu, shape, dtype, label);
  if (n > 0) gpu.device.queue.writeBuffer(t.buffer, 0, data as Float32Array<ArrayBuffer>, 0, n);
  return t;
}

/** Creates a storage buffer initialised with `data` (not pooled; for weights and constants). */
export function createStorageBuffer(
  gpu: Gpu,
  data: ArrayBufferView,
  label = "constant",
): GPUBuffer {
  // Multiples of 16 bytes let kernels bind any constant as an array of vec4.
  const bytes = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
  if (bytes > gpu.limits.maxStorageBufferBindingSize) {
    throw new EngineError(
      `${label} needs ${bytes} bytes, over this adapter's maxStorageBufferBindingSize ` +
        `(${gpu.limits.maxStorageBufferBindingSize} bytes)`,
    );
  }
  const buffer = gpu.device.createBuffer({
    size: bytes,
    usage: STORAGE_USAGE,
    label,
    mappedAtCreation: true,
  });
  new Uint8Array(buffer.getMappedRange()).set(
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  );
  buffer.unmap();
  return buffer;
}

/** Reads `byteLength` bytes from the start of a storage buffer. */
export async function readBuffer(
  gpu: Gpu,
  buffer: GPUBuffer,
  byteLength: number,
  byteOffset = 0,
): Promise<ArrayBuffer> {
  if (byteLength === 0) return new ArrayBuffer(0);
  const size = Math.ceil(byteLength / 4) * 4;
  const staging = gpu.device.createBuffer({
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    label: "readback",
  });
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, byteOffset, staging, 0, size);
  gpu.device.queue.submit([enc.finish()]);
  await gpu.untilLost(staging.mapAsync(GPUMapMode.READ), "reading results");
  const out = staging.getMappedRange().slice(0, byteLength);
  staging.unmap();
  staging.destroy();
  gpu.checkHealthy("reading results");
  return out;
}

/** Downloads a tensor as its 32-bit GPU representation (Float32Array for float dtypes,
 * Int32Array for int32/int64/int8/uint8, Uint32Array for bool). */
export async function readTensor(gpu: Gpu, t: GpuTensor): Promise<GpuHostArray> {
  const bytes = await readBuffer(gpu, t.buffer, sizeOf(t.shape) * 4);
  switch (t.dtype) {
    case "float32":
    case "float16":
      return new Float32Array(bytes);
    case "int32":
    case "int64":
    case "int8":
    case "uint8":
      return new Int32Array(bytes);
    case "bool":
      return new Uint32Array(bytes);
  }
}

/** Uploads a host tensor (converting to the GPU layout) into a new pooled tensor. */
export function uploadCpuTensor(gpu: Gpu, t: CpuTensor, label = "tensor"): GpuTensor {
  return uploadTensor(gpu, toGpuArray(t, label), t.shape, t.dtype, label);
}

/** Downloads a GPU tensor into a host tensor of its logical dtype. */
export async function downloadTensor(gpu: Gpu, t: GpuTensor): Promise<CpuTensor> {
  return fromGpuArray(await readTensor(gpu, t), t.shape, t.dtype);
}

/** Bytes per texel of the texture formats the kernels use (others count 16, the widest). */
const TEXEL_BYTES: Partial<Record<GPUTextureFormat, number>> = {
  rgba32float: 16,
  rgba32uint: 16,
  rgba16float: 8,
  r32float: 4,
};

/** Memory a texture holds (for plan memory reports). */
export function textureBytes(texture: GPUTexture): number {
  const texel = TEXEL_BYTES[texture.format] ?? 16;
  return texture.width * texture.height * texture.depthOrArrayLayers * texel;
}
