/** Pad in every ONNX mode, and Tile as wrap-mode padding (shaders/pad.wgsl). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { elementBits } from "./fill.ts";
import { paddedShape, type PadMode } from "./pad_shape.ts";
import { contiguousStrides } from "./shape.ts";

const WG = 64;
const CHUNK = 16;
const MAX_RANK = 8;
const MODES: Record<PadMode, number> = { constant: 0, reflect: 1, edge: 2, wrap: 3 };

/** out = x padded by `begin`/`end` elements per axis (negative crops) in `mode`; constant mode
 * fills with `value`. */
export function preparePad(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  begin: readonly number[],
  end: readonly number[],
  mode: PadMode,
  value = 0,
  label = "pad",
): Dispatch[] {
  const expected = paddedShape(x.shape, begin, end);
  if (expected.length !== out.shape.length || expected.some((n, d) => n !== out.shape[d])) {
    throw new EngineError(
      `${label}: output ${shapeString(out.shape)} is not ${shapeString(expected)}`,
    );
  }
  const total = sizeOf(out.shape);
  if (total === 0) return [];
  if (mode !== "constant" && sizeOf(x.shape) === 0) {
    throw new EngineError(`${label}: ${mode} padding of the empty tensor ${shapeString(x.shape)}`);
  }
  // Rank 0 behaves as rank 1 of size 1.
  const rank = Math.max(1, x.shape.length);
  if (rank > MAX_RANK) throw new EngineError(`${label}: rank ${rank} over ${MAX_RANK}`);
  const inShape = x.shape.length ? x.shape : [1];
  const outShape = out.shape.length ? out.shape : [1];
  const lastDim = outShape[rank - 1];
  const chunk = Math.min(CHUNK, lastDim);
  const chunksPerRow = Math.ceil(lastDim / chunk);
  const threads = (total / lastDim) * chunksPerRow;
  const uniform = owner.own(createUniform(gpu, "pad", {
    rank,
    threads,
    chunks_per_row: chunksPerRow,
    chunk,
    value_bits: elementBits(value, x.dtype),
    out_shape: outShape,
    in_shape: inShape,
    in_strides: contiguousStrides(inShape),
    pad_begin: x.shape.length ? begin : [0],
  }, label));
  return [prepareDispatch(
    gpu,
    { shader: "pad", constants: { WG, MODE: MODES[mode] } },
    [x, out, uniform],
    Math.ceil(threads / WG),
  )];
}

/** out = x repeated `repeats[d]` times along every axis (wrap-mode padding). */
export function prepareTile(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  repeats: readonly number[],
): Dispatch[] {
  if (repeats.length !== x.shape.length || repeats.some((r) => !(r >= 0))) {
    throw new EngineError(`tile: repeats [${repeats}] for ${shapeString(x.shape)}`);
  }
  const end = x.shape.map((n, d) => n * (repeats[d] - 1));
  return preparePad(gpu, owner, x, out, x.shape.map(() => 0), end, "wrap", 0, "tile");
}
