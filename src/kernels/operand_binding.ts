/** Operands a binding may take from the host or the GPU (constant weights, biases, scales). */
import {
  createStorageBuffer,
  type Gpu,
  type GpuTensor,
  isGpuTensor,
  type ResourceOwner,
} from "../gpu/mod.ts";
import type { CpuTensor } from "../util/tensor.ts";

/** `t` as a storage binding: a GPU tensor as it is, a host tensor's values uploaded as float32
 * into a buffer `owner` keeps, or, when `t` is absent, `zerosIfAbsent` zero floats (a bias the
 * node leaves out). */
export function operandBinding(
  gpu: Gpu,
  owner: ResourceOwner,
  t: GpuTensor | CpuTensor | undefined,
  label: string,
  zerosIfAbsent = 0,
): GpuTensor | GPUBuffer {
  if (t === undefined) {
    return owner.own(createStorageBuffer(gpu, new Float32Array(zerosIfAbsent), label));
  }
  if (isGpuTensor(t)) return t;
  return owner.own(createStorageBuffer(gpu, Float32Array.from(t.data), label));
}
