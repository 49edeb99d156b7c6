/** GPU buffers as the methods' kernels want them: zero-filled or uploaded storage tensors owned by
 * a scope, padded to whole vec4s, and a split's rows cut into chunks that fit one binding. */
import {
  createStorageBuffer,
  type Gpu,
  type GpuTensor,
  ResourceScope,
  STORAGE_USAGE,
} from "../gpu/mod.ts";

/** Bytes of the widest per-chunk buffer the baselines allocate for a split's rows. */
export const DEFAULT_CHUNK_BYTES = 64 << 20;

/** A zero-filled float32 (or int32) storage tensor, padded to whole vec4s for the AMU kernels. */
export function emptyTensor(
  gpu: Gpu,
  owner: ResourceScope,
  shape: number[],
  label: string,
  dtype: "float32" | "int32" = "float32",
): GpuTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const buffer = owner.own(gpu.device.createBuffer({
    size: Math.max(16, Math.ceil((n * 4) / 16) * 16),
    usage: STORAGE_USAGE,
    label,
  }));
  return { buffer, shape, dtype };
}

/** Uploads host data as a storage tensor owned by `owner`. */
export function uploadOwned(
  gpu: Gpu,
  owner: ResourceScope,
  data: Float32Array | Int32Array | Uint32Array,
  shape: number[],
  label: string,
): GpuTensor {
  return {
    buffer: owner.own(createStorageBuffer(gpu, data, label)),
    shape,
    dtype: data instanceof Float32Array ? "float32" : "int32",
  };
}

/** Row chunks [start, end) whose widest buffer (`width` floats a row) fits `chunkBytes`. */
export function rowChunks(rows: number, width: number, chunkBytes: number): [number, number][] {
  const per = Math.max(1, Math.floor(chunkBytes / (Math.max(width, 1) * 4)));
  const out: [number, number][] = [];
  for (let r = 0; r < rows; r += per) out.push([r, Math.min(rows, r + per)]);
  return out;
}
