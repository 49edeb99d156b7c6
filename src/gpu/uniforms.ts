import type { Gpu } from "./device.ts";
import { shaderSource } from "./pipelines.ts";
import {
  packUniformValues,
  parseUniformLayout,
  type UniformLayout,
  type UniformValues,
} from "./uniform_layout.ts";

/** Packs a WGSL uniform struct of 32-bit scalars (and 4-vectors, 16-byte aligned). Fields go in
 * declaration order; `build` pads to a multiple of 16 bytes as uniform buffers require. */
export class Params {
  #words: number[] = [];
  #kinds: ("u" | "i" | "f")[] = [];

  u32(...values: number[]): this {
    for (const v of values) {
      this.#words.push(v >>> 0);
      this.#kinds.push("u");
    }
    return this;
  }

  i32(...values: number[]): this {
    for (const v of values) {
      this.#words.push(v | 0);
      this.#kinds.push("i");
    }
    return this;
  }

  f32(...values: number[]): this {
    for (const v of values) {
      this.#words.push(v);
      this.#kinds.push("f");
    }
    return this;
  }

  /** Pads to the next 16-byte boundary (before a vec4 or array<vec4<...>> member). */
  align16(): this {
    while (this.#words.length % 4 !== 0) this.u32(0);
    return this;
  }

  /** `array<vec4<u32>, slots>` holding `values` (zero-filled): used for shapes and strides. */
  u32Array(values: readonly number[], slots: number): this {
    this.align16();
    for (let i = 0; i < slots * 4; i++) this.u32(values[i] ?? 0);
    return this;
  }

  build(): ArrayBuffer {
    this.align16();
    const buf = new ArrayBuffer(Math.max(16, this.#words.length * 4));
    const dv = new DataView(buf);
    this.#words.forEach((w, i) => {
      const k = this.#kinds[i];
      if (k === "f") dv.setFloat32(i * 4, w, true);
      else if (k === "i") dv.setInt32(i * 4, w, true);
      else dv.setUint32(i * 4, w, true);
    });
    return buf;
  }
}

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
 * per prepared dispatch). The legacy form takes positional `Params` or packed bytes. */
export function createUniform(
  gpu: Gpu,
  shader: string,
  values: UniformValues,
  label?: string,
): GPUBuffer;
export function createUniform(gpu: Gpu, params: Params | ArrayBuffer, label?: string): GPUBuffer;
export function createUniform(
  gpu: Gpu,
  first: string | Params | ArrayBuffer,
  second?: UniformValues | string,
  third?: string,
): GPUBuffer {
  let data: ArrayBuffer;
  let label: string;
  if (typeof first === "string") {
    data = packUniforms(first, second as UniformValues);
    label = third ?? first;
  } else {
    data = first instanceof Params ? first.build() : first;
    label = (second as string | undefined) ?? "params";
  }
  const buffer = gpu.device.createBuffer({
    size: Math.max(16, Math.ceil(data.byteLength / 16) * 16),
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    label,
    mappedAtCreation: true,
  });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data));
  buffer.unmap();
  return buffer;
}
