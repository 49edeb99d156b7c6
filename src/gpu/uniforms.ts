import type { Gpu } from "./device.ts";

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

/** Creates a uniform buffer holding `params` (created once per prepared dispatch). */
export function createUniform(gpu: Gpu, params: Params | ArrayBuffer, label = "params"): GPUBuffer {
  const data = params instanceof Params ? params.build() : params;
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
