/** Host references for GatherND, ScatterND and ScatterElements (ONNX semantics). Negative indices
 * count from the end; an index outside [-dim, dim) is an error here (the GPU kernels skip it and
 * report it in their status slot). */
import {
  type CpuTensor,
  type DType,
  newCpuData,
  roundToF16,
  shapeString,
  sizeOf,
} from "../util/tensor.ts";
import { contiguousStrides, unravel } from "./copy_ref.ts";

/** ScatterND / ScatterElements reductions (ONNX attribute `reduction`). */
export type ScatterReduction = "none" | "add" | "mul" | "max" | "min";

export const SCATTER_REDUCTIONS: readonly ScatterReduction[] = ["none", "add", "mul", "max", "min"];

/** The index in [0, dim) that `raw` names, or a RangeError saying what is wrong. */
export function resolveIndex(raw: number, dim: number, what: string): number {
  const i = raw < 0 ? raw + dim : raw;
  if (!(i >= 0 && i < dim)) {
    throw new RangeError(`${what}: index ${raw} is outside [-${dim}, ${dim})`);
  }
  return i;
}

/** Output shape of GatherND: indices.shape[:-1] + data.shape[batchDims + indices.shape[-1]:],
 * or a RangeError for shapes ONNX rejects. */
export function gatherNDShape(
  dataShape: readonly number[],
  indicesShape: readonly number[],
  batchDims: number,
): number[] {
  const q = indicesShape.length;
  const r = dataShape.length;
  if (q < 1 || r < 1) throw new RangeError("gatherND: data and indices need rank >= 1");
  if (batchDims < 0 || batchDims >= Math.min(q, r)) {
    throw new RangeError(`gatherND: batch_dims ${batchDims} for ranks ${r} and ${q}`);
  }
  for (let d = 0; d < batchDims; d++) {
    if (dataShape[d] !== indicesShape[d]) {
      throw new RangeError(
        `gatherND: batch dims of data ${shapeString(dataShape)} and indices ` +
          `${shapeString(indicesShape)} differ`,
      );
    }
  }
  const depth = indicesShape[q - 1];
  if (depth < 1 || depth > r - batchDims) {
    throw new RangeError(
      `gatherND: index tuples of length ${depth} for data ${shapeString(dataShape)} with ` +
        `batch_dims ${batchDims}`,
    );
  }
  return [...indicesShape.slice(0, q - 1), ...dataShape.slice(batchDims + depth)];
}

export function gatherNDRef(data: CpuTensor, indices: CpuTensor, batchDims: number): CpuTensor {
  const shape = gatherNDShape(data.shape, indices.shape, batchDims);
  const q = indices.shape.length;
  const depth = indices.shape[q - 1];
  const tuples = sizeOf(indices.shape.slice(0, q - 1));
  const perBatch = sizeOf(indices.shape.slice(batchDims, q - 1));
  const batchStride = sizeOf(data.shape.slice(batchDims));
  const slice = sizeOf(data.shape.slice(batchDims + depth));
  const strides = contiguousStrides(data.shape);
  const out = newCpuData(data.dtype, sizeOf(shape));
  for (let u = 0; u < tuples; u++) {
    let off = Math.floor(u / perBatch) * batchStride;
    for (let j = 0; j < depth; j++) {
      const d = batchDims + j;
      off += resolveIndex(indices.data[u * depth + j], data.shape[d], "gatherND") * strides[d];
    }
    for (let e = 0; e < slice; e++) out[u * slice + e] = data.data[off + e];
  }
  return { dtype: data.dtype, shape, data: out };
}

function combine(reduction: ScatterReduction, old: number, v: number, dtype: DType): number {
  // float16 data: add/mul results rounded to half, as the GPU rounds them.
  const r = dtype === "float16" ? (x: number) => roundToF16(Math.fround(x)) : (x: number) => x;
  switch (reduction) {
    case "none":
      return v;
    case "add":
      return r(old + v);
    case "mul":
      return r(old * v);
    case "max":
      return Math.max(old, v);
    case "min":
      return Math.min(old, v);
  }
}

/** Checks ScatterND shapes: updates.shape == indices.shape[:-1] + data.shape[indices.shape[-1]:]. */
export function checkScatterND(
  dataShape: readonly number[],
  indicesShape: readonly number[],
  updatesShape: readonly number[],
): void {
  const q = indicesShape.length;
  const depth = indicesShape[q - 1];
  if (q < 1 || !(depth >= 1 && depth <= dataShape.length)) {
    throw new RangeError(
      `scatterND: indices ${shapeString(indicesShape)} for data ${shapeString(dataShape)}`,
    );
  }
  const expected = [...indicesShape.slice(0, q - 1), ...dataShape.slice(depth)];
  if (expected.length !== updatesShape.length || expected.some((n, d) => n !== updatesShape[d])) {
    throw new RangeError(
      `scatterND: updates ${shapeString(updatesShape)} should be ${shapeString(expected)}`,
    );
  }
}

/** A copy of data with updates written (or combined) at the index tuples, in order. */
export function scatterNDRef(
  data: CpuTensor,
  indices: CpuTensor,
  updates: CpuTensor,
  reduction: ScatterReduction,
): CpuTensor {
  checkScatterND(data.shape, indices.shape, updates.shape);
  const q = indices.shape.length;
  const depth = indices.shape[q - 1];
  const tuples = sizeOf(indices.shape.slice(0, q - 1));
  const slice = sizeOf(data.shape.slice(depth));
  const strides = contiguousStrides(data.shape);
  const out = newCpuData(data.dtype, data.data.length);
  out.set(data.data);
  for (let u = 0; u < tuples; u++) {
    let off = 0;
    for (let j = 0; j < depth; j++) {
      off += resolveIndex(indices.data[u * depth + j], data.shape[j], "scatterND") * strides[j];
    }
    for (let e = 0; e < slice; e++) {
      out[off + e] = combine(reduction, out[off + e], updates.data[u * slice + e], data.dtype);
    }
  }
  return { dtype: data.dtype, shape: [...data.shape], data: out };
}

/** Checks ScatterElements shapes: same rank, indices.shape == updates.shape, and no indices dim
 * off the axis beyond data's. */
export function checkScatterElements(
  dataShape: readonly number[],
  indicesShape: readonly number[],
  updatesShape: readonly number[],
  axis: number,
): void {
  const bad = indicesShape.length !== dataShape.length ||
    updatesShape.length !== indicesShape.length ||
    indicesShape.some((n, d) => n !== updatesShape[d] || (d !== axis && n > dataShape[d]));
  if (bad) {
    throw new RangeError(
      `scatterElements: indices ${shapeString(indicesShape)} and updates ` +
        `${shapeString(updatesShape)} do not fit data ${shapeString(dataShape)} (axis ${axis})`,
    );
  }
}

/** A copy of data where update p goes to p with its `axis` coordinate replaced by indices[p]. */
export function scatterElementsRef(
  data: CpuTensor,
  indices: CpuTensor,
  updates: CpuTensor,
  axis: number,
  reduction: ScatterReduction,
): CpuTensor {
  checkScatterElements(data.shape, indices.shape, updates.shape, axis);
  const strides = contiguousStrides(data.shape);
  const out = newCpuData(data.dtype, data.data.length);
  out.set(data.data);
  const idx = new Array<number>(indices.shape.length).fill(0);
  for (let p = 0; p < indices.data.length; p++) {
    unravel(p, indices.shape, idx);
    let dst = 0;
    for (let d = 0; d < idx.length; d++) {
      const i = d === axis
        ? resolveIndex(indices.data[p], data.shape[axis], "scatterElements")
        : idx[d];
      dst += i * strides[d];
    }
    out[dst] = combine(reduction, out[dst], updates.data[p], data.dtype);
  }
  return { dtype: data.dtype, shape: [...data.shape], data: out };
}
