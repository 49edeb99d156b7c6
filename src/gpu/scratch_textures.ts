/** Scratch textures kept per device, by purpose, format and size. Kernels whose dispatches run
 * back to back (pack operands, then use them) share one texture per purpose and size: texture
 * memory stays bounded by the number of distinct sizes instead of growing with the number of
 * nodes in a model. They live as long as the device. */
import type { Gpu } from "./device.ts";

const scratch = new WeakMap<Gpu, Map<string, GPUTexture>>();

/** The storage-sampled-and-copied-to texture of `purpose` (e.g. "matmul operand A"; distinct purposes
 * never share) with this format and [width, height, layers]. */
export function scratchTexture(
  gpu: Gpu,
  purpose: string,
  format: GPUTextureFormat,
  size: readonly [number, number, number],
): GPUTexture {
  let cache = scratch.get(gpu);
  if (!cache) scratch.set(gpu, cache = new Map());
  const key = `${purpose} ${format} ${size.join("x")}`;
  let texture = cache.get(key);
  if (!texture) {
    texture = gpu.device.createTexture({
      label: key,
      size: [...size],
      format,
      // Written by kernels or by buffer-to-texture copies.
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.TEXTURE_BINDING |
        GPUTextureUsage.COPY_DST,
    });
    cache.set(key, texture);
  }
  return texture;
}
