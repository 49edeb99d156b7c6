/** Trilu and EyeLike (shaders/band.wgsl): diagonal-band masks over the last two axes. Values move
 * as raw words, so every dtype runs through the same pipeline. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  storageType,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { sizeOf } from "../util/tensor.ts";

const WG = 64;

/** The band uniform of `out` keeping diagonal(s) `k`, writing `one` (raw bits) on them. */
function bandUniform(
  gpu: Gpu,
  owner: ResourceOwner,
  out: GpuTensor,
  k: number,
  one: number,
  label: string,
): GPUBuffer {
  const rank = out.shape.length;
  if (rank < 2) throw new EngineError("band: output needs rank >= 2");
  return owner.own(createUniform(gpu, "band", {
    total: sizeOf(out.shape),
    rows: out.shape[rank - 2],
    cols: out.shape[rank - 1],
    k,
    one,
  }, label));
}

/** out = x with elements off the band zeroed: kept diagonals >= k (upper) or <= k (lower). */
export function prepareTrilu(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  k: number,
  upper: boolean,
): Dispatch[] {
  if (x.shape.length !== out.shape.length || x.shape.some((n, d) => n !== out.shape[d])) {
    throw new EngineError("trilu: output shape differs from the input's");
  }
  const total = sizeOf(out.shape);
  if (total === 0) return [];
  // Diagonals beyond the matrix make no difference; clamping keeps k inside i32.
  const rows = out.shape[out.shape.length - 2], cols = out.shape[out.shape.length - 1];
  const kk = Math.max(-rows - 1, Math.min(cols + 1, k));
  const uniform = bandUniform(gpu, owner, out, kk, 0, "trilu");
  return [prepareDispatch(
    gpu,
    { shader: "band", entryPoint: "trilu", constants: { WG, UPPER: upper ? 1 : 0 } },
    [out, uniform, x],
    Math.ceil(total / WG),
  )];
}

/** out ([rows, cols]) = ones on diagonal k, zeros elsewhere, in out's dtype. */
export function prepareEye(gpu: Gpu, owner: ResourceOwner, out: GpuTensor, k: number): Dispatch[] {
  if (out.shape.length !== 2) throw new EngineError("eye: output must be 2-D");
  const total = sizeOf(out.shape);
  if (total === 0) return [];
  // The bits of 1 in the output's storage type.
  const one = storageType(out.dtype) === "f32" ? 0x3f800000 : 1;
  const kk = Math.max(-out.shape[0] - 1, Math.min(out.shape[1] + 1, k));
  const uniform = bandUniform(gpu, owner, out, kk, one, "eye");
  return [prepareDispatch(
    gpu,
    { shader: "band", entryPoint: "eye", constants: { WG } },
    [out, uniform],
    Math.ceil(total / WG),
  )];
}
