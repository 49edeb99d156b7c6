import type { Gpu } from "./device.ts";
import { shaderSource } from "./pipelines.ts";
import {
  packUniformValues,
  parseUniformLayout,
  type UniformLayout,
  type UniformValues,
} from "./uniform_layout.ts";

const layouts = new Map<string, UniformLayout>();

/** The layout of `shaders/<shader>.wgsl`'s `struct Params`, parsed once per shader. */
export function uniformLayout(shader: string): UniformLayout {
  let layout = layouts.get(shader);
  if (!layout) {
    layout = parseUniformLayout(shader, shaderSource(shader));
    layouts.set(shader, layout);
  }
  return layout;
}

/** `values` packed by field name as `shader`'s `struct Params` lays them out (for
 * `queue.writeBuffer` of a uniform that changes between submissions). */
export function packUniforms(shader: string, values: UniformValues): ArrayBuffer {
  return packUniformValues(uniformLayout(shader), values);
}

/** Creates a uniform buffer holding `shader`'s `struct Params` filled by field name (created once
 * per prepared dispatch). */
export function createUniform(
  gpu: Gpu,
  shader: string,
  values: UniformValues,
  label = shader,
): GPUBuffer {
  const data = packUniforms(shader, values);
  const buffer = gpu.device.createBuffer({
    size: data.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    label,
    mappedAtCreation: true,
  });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data));
  buffer.unmap();
  return buffer;
}
