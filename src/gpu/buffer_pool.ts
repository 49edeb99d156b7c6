/** Pooled storage buffers: the one allocator behind every engine tensor. */
import { EngineError } from "../util/errors.ts";

/** Usage for every engine storage buffer: kernels read/write it, copies go both ways. */
export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Rounds a byte size up to its pool size class: powers of two split in four steps
 * (at most 25% waste), minimum 256 bytes, so freed buffers fit many later requests. */
export function sizeClass(bytes: number): number {
  const min = 256;
  if (bytes <= min) return min;
  const pow = 2 ** Math.floor(Math.log2(bytes));
  const step = pow / 4;
  return Math.ceil(bytes / step) * step;
}

/** Reuses storage buffers by size class. `acquire` hands out a free buffer of the class or makes
 * one; `release` returns it. `clear` destroys every free buffer. Counts bytes for memory plans. */
export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  #liveBytes = 0;
  #peakBytes = 0;

  constructor(private readonly device: GPUDevice) {}

  /** Bytes in buffers handed out and not yet released. */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  /** Highest `liveBytes` seen since the last `resetPeak`. */
  get peakBytes(): number {
    return this.#peakBytes;
  }

  resetPeak(): void {
    this.#peakBytes = this.#liveBytes;
  }

  /** A storage buffer of at least `bytes` bytes; `label` names it in limit errors. */
  acquire(bytes: number, label = "buffer"): GPUBuffer {
    const size = sizeClass(Math.max(bytes, 4));
    const limit = this.device.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new EngineError(
        `${label} needs ${bytes} bytes, over this adapter's maxStorageBufferBindingSize ` +
          `(${limit} bytes); use a smaller batch`,
      );
    }
    const list = this.#free.get(size);
    const buffer = list?.pop() ??
      this.device.createBuffer({ size: Math.min(size, limit), usage: STORAGE_USAGE, label });
    this.#liveBytes += buffer.size;
    this.#peakBytes = Math.max(this.#peakBytes, this.#liveBytes);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    this.#liveBytes -= buffer.size;
    const size = buffer.size;
    const list = this.#free.get(size);
    if (list) list.push(buffer);
    else this.#free.set(size, [buffer]);
  }

  clear(): void {
    for (const list of this.#free.values()) for (const b of list) b.destroy();
    this.#free.clear();
  }
}
