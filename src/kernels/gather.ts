/** Gather and GatherElements (shaders/gather.wgsl). Indices are i32 on the GPU (int32 or int64
 * tensors); negative ones count from the end; an out-of-range one is clamped and reported in the
 * `status` slot given (see the shader and src/gpu/status.ts). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  statusOrSink,
  type StatusSlot,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { interleaveFor } from "./copy.ts";
import { gatherShape } from "./gather_shape.ts";
import { contiguousStrides } from "./shape.ts";

const WG = 64;
/** Words one invocation copies of a gathered row at most (see gather.wgsl). */
const RUN = 16;
const MAX_RANK = 8;

function checkIndices(label: string, indices: GpuTensor): void {
  if (indices.dtype !== "int32" && indices.dtype !== "int64") {
    throw new EngineError(`${label}: indices must be int32 or int64, got ${indices.dtype}`);
  }
}

/** out = data gathered along `axis` (non-negative) at `indices` (any shape):
 * out.shape = data.shape[:axis] + indices.shape + data.shape[axis+1:]. The AMU trainer uses it
 * with axis 0 to pick batch rows from a permutation. */
export function prepareGather(
  gpu: Gpu,
  owner: ResourceOwner,
  data: GpuTensor,
  indices: GpuTensor,
  out: GpuTensor,
  axis: number,
  status?: StatusSlot,
): Dispatch[] {
  checkIndices("gather", indices);
  const expected = gatherShape(data.shape, indices.shape, axis);
  if (expected.length !== out.shape.length || expected.some((n, d) => n !== out.shape[d])) {
    throw new EngineError(
      `gather: output ${shapeString(out.shape)} is not ${shapeString(expected)}`,
    );
  }
  const total = sizeOf(out.shape);
  if (total === 0) return [];
  const axisDim = data.shape[axis];
  if (axisDim === 0) throw new EngineError(`gather: axis ${axis} of data is empty`);
  const outer = sizeOf(data.shape.slice(0, axis));
  const inner = sizeOf(data.shape.slice(axis + 1));
  const nIdx = sizeOf(indices.shape);
  // Whole rows of 4k elements move as vec4 words.
  const word = inner % 4 === 0 ? 4 : 1;
  const rowWords = inner / word;
  const lanes = Math.ceil(rowWords / RUN);
  const run = Math.ceil(rowWords / lanes);
  const threads = outer * nIdx * lanes;
  const slot = statusOrSink(gpu, owner, status, "gather");
  const uniform = owner.own(createUniform(gpu, "gather", {
    threads,
    axis_dim: axisDim,
    n_idx: nIdx,
    inner: rowWords,
    lanes,
    run,
    rank: 0,
    axis: 0,
    idx_shape: [],
    data_strides: [],
    status_slot: slot.slot,
  }));
  return [prepareDispatch(
    gpu,
    {
      shader: "gather",
      constants: { WG, INTERLEAVE: interleaveFor(gpu) },
      placeholders: { WORD: word === 4 ? "vec4<u32>" : "u32" },
    },
    [data, indices, out, uniform, slot.buffer],
    Math.ceil(threads / WG),
  )];
}

/** out[i] = data[i with coordinate `axis` (non-negative) replaced by indices[i]]; out has the
 * indices' shape (same rank as data). */
export function prepareGatherElements(
  gpu: Gpu,
  owner: ResourceOwner,
  data: GpuTensor,
  indices: GpuTensor,
  out: GpuTensor,
  axis: number,
  status?: StatusSlot,
): Dispatch[] {
  checkIndices("gatherElements", indices);
  const rank = data.shape.length;
  if (indices.shape.length !== rank || rank > MAX_RANK) {
    throw new EngineError(
      `gatherElements: indices ${shapeString(indices.shape)} for data ${shapeString(data.shape)}`,
    );
  }
  const total = sizeOf(indices.shape);
  if (total === 0) return [];
  if (data.shape[axis] === 0) throw new EngineError(`gatherElements: axis ${axis} is empty`);
  const slot = statusOrSink(gpu, owner, status, "gather");
  const uniform = owner.own(createUniform(gpu, "gather", {
    threads: total,
    axis_dim: data.shape[axis],
    n_idx: 0,
    inner: 0,
    lanes: 0,
    run: 0,
    rank,
    axis,
    idx_shape: indices.shape,
    data_strides: contiguousStrides(data.shape),
    status_slot: slot.slot,
  }, "gatherElements"));
  return [prepareDispatch(
    gpu,
    { shader: "gather", entryPoint: "elements", constants: { WG }, placeholders: { WORD: "u32" } },
    [data, indices, out, uniform, slot.buffer],
    Math.ceil(total / WG),
  )];
}
