/** Strided copies (shaders/copy.wgsl): Slice, Concat, Split, Expand, and the general path of
 * Transpose. Every element moves as 32 raw bits, so one pipeline serves every dtype. */
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
import { contiguousStrides } from "./shape.ts";

const WG = 64;
/** Region axes the shader's uniform holds. */
export const MAX_COPY_RANK = 8;
/** Words one invocation copies along the region's last axis at most (see copy.wgsl). */
const RUN = 16;

/** How invocations share a row in the copy and gather kernels: "auto" interleaves on real GPUs
 * (coalesced) and gives each invocation a consecutive run on llvmpipe. Tests force both. */
export const movementTuning: { interleave: "auto" | boolean } = { interleave: "auto" };

/** The INTERLEAVE override constant for `gpu` (see movementTuning). */
export function interleaveFor(gpu: Gpu): number {
  const i = movementTuning.interleave;
  return (i === "auto" ? !gpu.summary.isLlvmpipe : i) ? 1 : 0;
}

/** A copy between two row-major buffers: for every multi-index `i` of `shape`,
 * `dst[dstOffset + i . dstStrides] = src[srcOffset + i . srcStrides]` (offsets and strides in
 * elements; strides may be negative or zero). */
export interface CopyRegion {
  readonly shape: readonly number[];
  readonly srcOffset: number;
  readonly srcStrides: readonly number[];
  readonly dstOffset: number;
  readonly dstStrides: readonly number[];
}

/** The same copy with size-1 axes dropped and neighbouring axes merged where they are contiguous
 * in both source and destination (so most copies become rank 1-3). Returns undefined for an
 * empty region. */
export function simplifyRegion(region: CopyRegion): CopyRegion | undefined {
  const { shape, srcStrides, dstStrides } = region;
  if (shape.some((d) => d === 0)) return undefined;
  const dims: number[] = [];
  const ss: number[] = [];
  const ds: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    // Axis `last` followed by axis d is one axis when stepping d's whole extent lands exactly
    // on the next `last` element in both buffers.
    if (
      last >= 0 && ss[last] === srcStrides[d] * shape[d] && ds[last] === dstStrides[d] * shape[d]
    ) {
      dims[last] *= shape[d];
      ss[last] = srcStrides[d];
      ds[last] = dstStrides[d];
    } else {
      dims.push(shape[d]);
      ss.push(srcStrides[d]);
      ds.push(dstStrides[d]);
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    ss.push(1);
    ds.push(1);
  }
  return {
    shape: dims,
    srcOffset: region.srcOffset,
    srcStrides: ss,
    dstOffset: region.dstOffset,
    dstStrides: ds,
  };
}

/** The region in vec4 words when its last axis is contiguous on both sides and every offset,
 * stride and the last size are multiples of 4 (then a 4x cheaper copy on llvmpipe). */
function asVec4(r: CopyRegion): CopyRegion | undefined {
  const last = r.shape.length - 1;
  const aligned = (v: number, d: number) => d === last ? v === 1 : v % 4 === 0;
  if (
    r.shape[last] % 4 !== 0 || r.srcOffset % 4 !== 0 || r.dstOffset % 4 !== 0 ||
    !r.srcStrides.every(aligned) || !r.dstStrides.every(aligned)
  ) {
    return undefined;
  }
  const quarter = (v: number, d: number) => (d === last ? v : v / 4);
  return {
    shape: r.shape.map((n, d) => (d === last ? n / 4 : n)),
    srcOffset: r.srcOffset / 4,
    srcStrides: r.srcStrides.map(quarter),
    dstOffset: r.dstOffset / 4,
    dstStrides: r.dstStrides.map(quarter),
  };
}

/** Records the copy of `region` from `src` to `dst` (no dispatch when the region is empty). */
export function prepareStridedCopy(
  gpu: Gpu,
  owner: ResourceOwner,
  src: GpuTensor,
  dst: GpuTensor,
  region: CopyRegion,
  label = "copy",
): Dispatch[] {
  const simple = simplifyRegion(region);
  if (!simple) return [];
  if (simple.shape.length > MAX_COPY_RANK) {
    throw new EngineError(
      `${label}: copy of ${shapeString(region.shape)} needs ${simple.shape.length} axes after ` +
        `merging; the copy kernel handles ${MAX_COPY_RANK}`,
    );
  }
  const vec4 = asVec4(simple);
  const r = vec4 ?? simple;
  const rank = r.shape.length;
  const lastDim = r.shape[rank - 1];
  const lanes = Math.ceil(lastDim / RUN);
  const run = Math.ceil(lastDim / lanes);
  const threads = (sizeOf(r.shape) / lastDim) * lanes;
  const uniform = owner.own(createUniform(gpu, "copy", {
    rank,
    threads,
    lanes,
    run,
    src_offset: r.srcOffset,
    dst_offset: r.dstOffset,
    shape: r.shape,
    src_strides: r.srcStrides,
    dst_strides: r.dstStrides,
  }, label));
  return [prepareDispatch(
    gpu,
    {
      shader: "copy",
      constants: { WG, INTERLEAVE: interleaveFor(gpu) },
      placeholders: { WORD: vec4 ? "vec4<u32>" : "u32" },
    },
    [src, dst, uniform],
    Math.ceil(threads / WG),
  )];
}

function checkRank(label: string, t: GpuTensor, rank: number): void {
  if (t.shape.length !== rank) {
    throw new EngineError(`${label}: expected rank ${rank}, got ${shapeString(t.shape)}`);
  }
}

/** Copies `x[starts[d] + k * steps[d]]` for k < out.shape[d] on every axis (all axes given,
 * already clamped: see `resolveSlice` in copy_shape.ts). */
export function prepareSlice(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  starts: readonly number[],
  steps: readonly number[],
): Dispatch[] {
  checkRank("slice", out, x.shape.length);
  const inStrides = contiguousStrides(x.shape);
  let srcOffset = 0;
  for (let d = 0; d < x.shape.length; d++) srcOffset += starts[d] * inStrides[d];
  return prepareStridedCopy(gpu, owner, x, out, {
    shape: out.shape,
    srcOffset,
    srcStrides: inStrides.map((s, d) => s * steps[d]),
    dstOffset: 0,
    dstStrides: contiguousStrides(out.shape),
  }, "slice");
}

/** Concatenates `inputs` along `axis` (non-negative) into `out`: one rank-2 copy per non-empty
 * input ([outer, size along axis * inner] into a column block of out). */
export function prepareConcat(
  gpu: Gpu,
  owner: ResourceOwner,
  inputs: readonly GpuTensor[],
  out: GpuTensor,
  axis: number,
): Dispatch[] {
  const outer = sizeOf(out.shape.slice(0, axis));
  const inner = sizeOf(out.shape.slice(axis + 1));
  const outRow = out.shape[axis] * inner;
  const dispatches: Dispatch[] = [];
  let offset = 0;
  for (const x of inputs) {
    checkRank("concat", x, out.shape.length);
    const row = x.shape[axis] * inner;
    dispatches.push(...prepareStridedCopy(gpu, owner, x, out, {
      shape: [outer, row],
      srcOffset: 0,
      srcStrides: [row, 1],
      dstOffset: offset,
      dstStrides: [outRow, 1],
    }, "concat"));
    offset += row;
  }
  if (offset !== outRow) {
    throw new EngineError(
      `concat: inputs add up to ${offset / Math.max(inner, 1)} along axis ${axis}, output has ` +
        `${out.shape[axis]}`,
    );
  }
  return dispatches;
}

/** Splits `x` along `axis` (non-negative) into `outputs`, in order. */
export function prepareSplit(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  outputs: readonly GpuTensor[],
  axis: number,
): Dispatch[] {
  const outer = sizeOf(x.shape.slice(0, axis));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const inRow = x.shape[axis] * inner;
  const dispatches: Dispatch[] = [];
  let offset = 0;
  for (const out of outputs) {
    checkRank("split", out, x.shape.length);
    const row = out.shape[axis] * inner;
    dispatches.push(...prepareStridedCopy(gpu, owner, x, out, {
      shape: [outer, row],
      srcOffset: offset,
      srcStrides: [inRow, 1],
      dstOffset: 0,
      dstStrides: [row, 1],
    }, "split"));
    offset += row;
  }
  if (offset > inRow) {
    throw new EngineError(`split: outputs take more than the ${x.shape[axis]} along axis ${axis}`);
  }
  return dispatches;
}

/** Broadcasts `x` to `out.shape` (numpy rules, x right-aligned; x's size-1 axes repeat). */
export function prepareExpand(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
): Dispatch[] {
  const rank = out.shape.length;
  const lead = rank - x.shape.length;
  if (lead < 0) {
    throw new EngineError(
      `expand: ${shapeString(x.shape)} has more axes than ${shapeString(out.shape)}`,
    );
  }
  const inStrides = contiguousStrides(x.shape);
  const srcStrides = out.shape.map((n, d) => {
    if (d < lead) return 0;
    const m = x.shape[d - lead];
    if (m === n) return inStrides[d - lead];
    if (m === 1) return 0;
    throw new EngineError(
      `expand: ${shapeString(x.shape)} does not broadcast to ${shapeString(out.shape)}`,
    );
  });
  return prepareStridedCopy(gpu, owner, x, out, {
    shape: out.shape,
    srcOffset: 0,
    srcStrides,
    dstOffset: 0,
    dstStrides: contiguousStrides(out.shape),
  }, "expand");
}
