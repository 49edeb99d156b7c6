/** Host references for GatherND, ScatterND and ScatterElements (ONNX semantics). Negative indices
 * count from the end; an index outside [-dim, dim) is an error here (the GPU kernels skip it and
 * report it in their status slot). */
import { type CpuTensor, type DType, newCpuData, roundToF16, sizeOf } from "../util/tensor.ts";
import {
  checkScatterElements,
  checkScatterND,
  gatherNDShape,
  type ScatterReduction,
} from "./scatter_shape.ts";
import { contiguousStrides, unravel } from "./shape.ts";

/** The index in [0, dim) that `raw` names, or a RangeError saying what is wrong. */
export function resolveIndex(raw: number, dim: number, what: string): number {
  const i = raw < 0 ? raw + dim : raw;
  if (!(i >= 0 && i < dim)) {
    throw new RangeError(`${what}: index ${raw} is outside [-${dim}, ${dim})`);
  }
  return i;
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
