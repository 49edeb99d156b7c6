/** GPU-side timing with `timestamp-query`: a begin/end timestamp pair around each compute pass,
 * resolved after the work and read back in nanoseconds. Lives in the benchmark, not in src/gpu:
 * only measurements need it. */
import type { Gpu } from "../gpu/mod.ts";

export class GpuTimer {
  readonly #querySet: GPUQuerySet;
  readonly #resolve: GPUBuffer;
  readonly #readback: GPUBuffer;

  private constructor(private readonly gpu: Gpu, readonly pairs: number) {
    const device = gpu.device;
    this.#querySet = device.createQuerySet({ type: "timestamp", count: 2 * pairs });
    const bytes = 2 * pairs * 8;
    this.#resolve = device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      label: "bench timestamps",
    });
    this.#readback = device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: "bench timestamps readback",
    });
  }

  /** A timer for up to `pairs` timed passes per read, or undefined when the device has no
   * `timestamp-query` (callers fall back to wall clock). */
  static create(gpu: Gpu, pairs: number): GpuTimer | undefined {
    return gpu.hasTimestamps ? new GpuTimer(gpu, pairs) : undefined;
  }

  /** Timestamp writes for pass number `pair` (begin and end of the pass). */
  writes(pair: number): GPUComputePassTimestampWrites {
    if (pair < 0 || pair >= this.pairs) throw new Error(`GpuTimer: pair ${pair} out of range`);
    return {
      querySet: this.#querySet,
      beginningOfPassWriteIndex: 2 * pair,
      endOfPassWriteIndex: 2 * pair + 1,
    };
  }

  /** Durations in milliseconds of passes 0..count-1 (submitted before this call). A pair that
   * the implementation left unwritten or out of order reads as NaN. */
  async read(count: number): Promise<number[]> {
    const device = this.gpu.device;
    const encoder = device.createCommandEncoder();
    encoder.resolveQuerySet(this.#querySet, 0, 2 * count, this.#resolve, 0);
    encoder.copyBufferToBuffer(this.#resolve, 0, this.#readback, 0, 2 * count * 8);
    device.queue.submit([encoder.finish()]);
    await this.#readback.mapAsync(GPUMapMode.READ, 0, 2 * count * 8);
    const stamps = new BigUint64Array(this.#readback.getMappedRange(0, 2 * count * 8).slice(0));
    this.#readback.unmap();
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const begin = stamps[2 * i], end = stamps[2 * i + 1];
      out.push(begin > 0n && end >= begin ? Number(end - begin) / 1e6 : NaN);
    }
    return out;
  }

  destroy(): void {
    this.#querySet.destroy();
    this.#resolve.destroy();
    this.#readback.destroy();
  }
}
