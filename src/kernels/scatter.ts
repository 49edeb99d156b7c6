/** GatherND, ScatterND and ScatterElements (shaders/scatter.wgsl). Indices are i32 on the GPU
 * (int32 or int64 tensors). Negative indices count from the end; an out-of-range one is not
 * clamped: GatherND writes 0 for that element, the scatters skip that update, and the kernel
 * reports it in the `status` slot given (src/gpu/status.ts layout: flag word, offending value),
 * which a plan reads back and raises as an error naming the node. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  statusOrSink,
  type StatusSlot,
  storageType,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { prepareExpand } from "./copy.ts";
import {
  checkScatterElements,
  checkScatterND,
  gatherNDShape,
  SCATTER_REDUCTIONS,
  type ScatterReduction,
} from "./scatter_shape.ts";
import { contiguousStrides } from "./shape.ts";

const WG = 64;
const MAX_RANK = 8;

function checkIndices(label: string, indices: GpuTensor): void {
  if (indices.dtype !== "int32" && indices.dtype !== "int64") {
    throw new EngineError(`${label}: indices must be int32 or int64, got ${indices.dtype}`);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, d) => n === b[d]);
}

interface ScatterParams {
  threads: number;
  tuples: number;
  slice: number;
  depth: number;
  tuplesPerBatch?: number;
  batchStride?: number;
  axis?: number;
  dims: readonly number[];
  strides: readonly number[];
  idxShape?: readonly number[];
}

function scatterDispatch(
  gpu: Gpu,
  owner: ResourceOwner,
  entryPoint: "gather_nd" | "scatter_nd" | "scatter_elements",
  p: ScatterParams,
  reduction: ScatterReduction,
  bindings: { indices: GpuTensor; src: GpuTensor; out: GpuTensor },
  status: StatusSlot | undefined,
): Dispatch {
  const slot = statusOrSink(gpu, owner, status, entryPoint);
  const uniform = owner.own(createUniform(gpu, "scatter", {
    threads: p.threads,
    tuples: p.tuples,
    slice: p.slice,
    depth: p.depth,
    tuples_per_batch: p.tuplesPerBatch ?? 1,
    batch_stride: p.batchStride ?? 0,
    axis: p.axis ?? 0,
    status_slot: slot.slot,
    dims: p.dims,
    strides: p.strides,
    idx_shape: p.idxShape ?? [],
  }, entryPoint));
  return prepareDispatch(
    gpu,
    {
      shader: "scatter",
      entryPoint,
      constants: {
        WG,
        REDUCE: SCATTER_REDUCTIONS.indexOf(reduction),
        ROUND_F16: bindings.out.dtype === "float16" ? 1 : 0,
      },
      placeholders: { T: storageType(bindings.out.dtype) },
    },
    [bindings.indices, bindings.src, bindings.out, uniform, slot.buffer],
    Math.ceil(p.threads / WG),
  );
}

/** out = GatherND(data, indices) with `batchDims` leading batch dims. */
export function prepareGatherND(
  gpu: Gpu,
  owner: ResourceOwner,
  data: GpuTensor,
  indices: GpuTensor,
  out: GpuTensor,
  batchDims: number,
  status?: StatusSlot,
): Dispatch[] {
  checkIndices("gatherND", indices);
  const expected = gatherNDShape(data.shape, indices.shape, batchDims);
  if (!sameShape(expected, out.shape)) {
    throw new EngineError(
      `gatherND: output ${shapeString(out.shape)} is not ${shapeString(expected)}`,
    );
  }
  const total = sizeOf(out.shape);
  if (total === 0) return [];
  const q = indices.shape.length;
  const depth = indices.shape[q - 1];
  if (depth > MAX_RANK) throw new EngineError(`gatherND: index tuples longer than ${MAX_RANK}`);
  const strides = contiguousStrides(data.shape);
  const addressed = data.shape.slice(batchDims, batchDims + depth);
  if (addressed.some((n) => n === 0)) throw new EngineError("gatherND: indexing an empty axis");
  return [scatterDispatch(
    gpu,
    owner,
    "gather_nd",
    {
      threads: total,
      tuples: sizeOf(indices.shape.slice(0, q - 1)),
      slice: sizeOf(data.shape.slice(batchDims + depth)),
      depth,
      tuplesPerBatch: sizeOf(indices.shape.slice(batchDims, q - 1)),
      batchStride: sizeOf(data.shape.slice(batchDims)),
      dims: addressed,
      strides: strides.slice(batchDims, batchDims + depth),
    },
    "none",
    { indices, src: data, out },
    status,
  )];
}

/** out = data with updates written (or combined by `reduction`) at the index tuples. */
export function prepareScatterND(
  gpu: Gpu,
  owner: ResourceOwner,
  data: GpuTensor,
  indices: GpuTensor,
  updates: GpuTensor,
  out: GpuTensor,
  reduction: ScatterReduction,
  status?: StatusSlot,
): Dispatch[] {
  checkIndices("scatterND", indices);
  checkScatterND(data.shape, indices.shape, updates.shape);
  if (!sameShape(data.shape, out.shape)) {
    throw new EngineError(`scatterND: output ${shapeString(out.shape)} is not data's shape`);
  }
  checkReduction("scatterND", reduction, out);
  if (sizeOf(out.shape) === 0) return [];
  const copy = prepareExpand(gpu, owner, data, out);
  const q = indices.shape.length;
  const depth = indices.shape[q - 1];
  const tuples = sizeOf(indices.shape.slice(0, q - 1));
  const slice = sizeOf(data.shape.slice(depth));
  if (tuples * slice === 0) return copy;
  return [
    ...copy,
    scatterDispatch(
      gpu,
      owner,
      "scatter_nd",
      {
        threads: reduction === "none" ? tuples * slice : slice,
        tuples,
        slice,
        depth,
        dims: data.shape.slice(0, depth),
        strides: contiguousStrides(data.shape).slice(0, depth),
      },
      reduction,
      { indices, src: updates, out },
      status,
    ),
  ];
}

/** out = data with update p written (or combined) at p with its `axis` coordinate replaced by
 * indices[p]. */
export function prepareScatterElements(
  gpu: Gpu,
  owner: ResourceOwner,
  data: GpuTensor,
  indices: GpuTensor,
  updates: GpuTensor,
  out: GpuTensor,
  axis: number,
  reduction: ScatterReduction,
  status?: StatusSlot,
): Dispatch[] {
  checkIndices("scatterElements", indices);
  checkScatterElements(data.shape, indices.shape, updates.shape, axis);
  if (!sameShape(data.shape, out.shape)) {
    throw new EngineError(`scatterElements: output ${shapeString(out.shape)} is not data's shape`);
  }
  if (data.shape.length > MAX_RANK) throw new EngineError(`scatterElements: rank > ${MAX_RANK}`);
  checkReduction("scatterElements", reduction, out);
  if (sizeOf(out.shape) === 0) return [];
  const copy = prepareExpand(gpu, owner, data, out);
  const n = sizeOf(indices.shape);
  if (n === 0) return copy;
  return [
    ...copy,
    scatterDispatch(
      gpu,
      owner,
      "scatter_elements",
      {
        threads: n / indices.shape[axis],
        tuples: indices.shape[axis],
        slice: 1,
        depth: data.shape.length,
        axis,
        dims: [data.shape[axis]],
        strides: contiguousStrides(data.shape),
        idxShape: indices.shape,
      },
      reduction,
      { indices, src: updates, out },
      status,
    ),
  ];
}

function checkReduction(label: string, reduction: ScatterReduction, out: GpuTensor): void {
  if (reduction !== "none" && out.dtype === "bool") {
    throw new EngineError(`${label}: reduction '${reduction}' on bool data`);
  }
}
