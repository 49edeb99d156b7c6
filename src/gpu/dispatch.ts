import type { Gpu } from "./device.ts";
import type { GpuTensor } from "./tensor.ts";
import { EngineError } from "../util/errors.ts";
import { type PipelineSpec } from "./pipelines.ts";

/** A copy from a buffer into a texture (e.g. an operand a kernel reads as texels). */
export interface BufferTextureCopy {
  readonly source: GPUTexelCopyBufferInfo;
  readonly destination: GPUTexelCopyTextureInfo;
  readonly size: readonly [number, number, number];
}

/** One recorded compute dispatch, ready to encode any number of times. */
export interface Dispatch {
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly workgroups: readonly [number, number, number];
  readonly label: string;
  /** Copies the dispatch needs done first. A compute pass cannot hold copies, so the pass is
   * ended before them and a new one begun after. */
  readonly copiesBefore?: readonly BufferTextureCopy[];
}

/** A binding: a tensor or raw buffer (whole buffer), or an explicit binding resource. */
export type Binding = GpuTensor | GPUBuffer | GPUBufferBinding | GPUTextureView;

function isTensor(b: Binding): b is GpuTensor {
  return (b as GpuTensor).shape !== undefined && (b as GpuTensor).buffer !== undefined;
}

function toResource(b: Binding): GPUBindingResource {
  if (isTensor(b)) return { buffer: b.buffer };
  if (b instanceof GPUBuffer) return { buffer: b };
  return b as GPUBindingResource;
}

/** Splits `count` workgroups over x and y so neither exceeds the adapter's per-dimension limit.
 * Kernels recover the linear index as `wid.x + wid.y * nwg.x` and must bounds-check it. */
export function splitWorkgroups(gpu: Gpu, count: number): [number, number, number] {
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (count <= max) return [Math.max(count, 1), 1, 1];
  const y = Math.ceil(count / max);
  if (y > max) throw new EngineError(`dispatch of ${count} workgroups exceeds adapter limits`);
  return [Math.ceil(count / y), y, 1];
}

/** Builds a dispatch: bindings go to @binding(0), (1), ... of @group(0) in order. */
export function prepareDispatch(
  gpu: Gpu,
  spec: PipelineSpec,
  bindings: readonly Binding[],
  workgroups: readonly [number, number, number] | number,
): Dispatch {
  const pipeline = gpu.pipelines.get(spec);
  const bindGroup = gpu.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: bindings.map((b, i) => ({ binding: i, resource: toResource(b) })),
    label: spec.shader,
  });
  const wg = typeof workgroups === "number" ? splitWorkgroups(gpu, workgroups) : workgroups;
  return { pipeline, bindGroup, workgroups: wg, label: spec.shader };
}

/** Encodes dispatches into compute passes: one, unless some dispatch has copies to run first
 * (each dispatch is its own synchronisation scope either way). `timestampWrites` bracket the
 * whole: the first pass writes the beginning, the last the end (an empty first pass carries the
 * beginning when copies come before every dispatch, so that the copies are timed too). */
export function encodeDispatches(
  encoder: GPUCommandEncoder,
  dispatches: readonly Dispatch[],
  timestampWrites?: GPUComputePassTimestampWrites,
): void {
  if (dispatches.length === 0) return;
  const passes: Dispatch[][] = [];
  for (const d of dispatches) {
    if (passes.length === 0 || (d.copiesBefore?.length ?? 0) > 0) passes.push([]);
    passes[passes.length - 1].push(d);
  }
  const writes = (first: boolean, last: boolean): GPUComputePassDescriptor | undefined => {
    if (!timestampWrites || !(first || last)) return undefined;
    const w: GPUComputePassTimestampWrites = { querySet: timestampWrites.querySet };
    if (first) w.beginningOfPassWriteIndex = timestampWrites.beginningOfPassWriteIndex;
    if (last) w.endOfPassWriteIndex = timestampWrites.endOfPassWriteIndex;
    return { timestampWrites: w };
  };
  const leadingCopies = (dispatches[0].copiesBefore?.length ?? 0) > 0;
  if (timestampWrites && leadingCopies) encoder.beginComputePass(writes(true, false)).end();
  passes.forEach((group, i) => {
    for (const c of group[0].copiesBefore ?? []) {
      encoder.copyBufferToTexture(c.source, c.destination, [...c.size]);
    }
    const pass = encoder.beginComputePass(
      writes(i === 0 && !leadingCopies, i === passes.length - 1),
    );
    for (const d of group) {
      if (d.workgroups[0] * d.workgroups[1] * d.workgroups[2] === 0) continue;
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
    }
    pass.end();
  });
}

/** Encodes and submits dispatches in one command buffer (does not wait). */
export function submitDispatches(gpu: Gpu, dispatches: readonly Dispatch[]): void {
  const encoder = gpu.device.createCommandEncoder();
  encodeDispatches(encoder, dispatches);
  gpu.device.queue.submit([encoder.finish()]);
}

/** Something that keeps GPU resources made while preparing kernels (uniforms, scratch buffers,
 * packed-weight textures) alive until it is disposed. */
export interface ResourceOwner {
  own<T extends GPUBuffer | GPUTexture>(resource: T): T;
}

/** A ResourceOwner that destroys everything it owns on `dispose` (tests, one-off kernels). */
export class ResourceScope implements ResourceOwner {
  #owned: (GPUBuffer | GPUTexture)[] = [];

  own<T extends GPUBuffer | GPUTexture>(resource: T): T {
    this.#owned.push(resource);
    return resource;
  }

  dispose(): void {
    for (const r of this.#owned) r.destroy();
    this.#owned = [];
  }
}
