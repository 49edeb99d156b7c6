/** Host references for Gather and GatherElements (ONNX semantics: negative indices count from
 * the end; an index outside [-dim, dim) is an error here, where the GPU kernel clamps). */
import { type CpuTensor, shapeString } from "../util/tensor.ts";
import { gatherElements } from "./copy_ref.ts";
import { gatherShape } from "./gather_shape.ts";
import { contiguousStrides } from "./shape.ts";

function resolveIndex(raw: number, dim: number, what: string): number {
  const i = raw < 0 ? raw + dim : raw;
  if (!(i >= 0 && i < dim)) {
    throw new RangeError(`${what}: index ${raw} out of range for axis of size ${dim}`);
  }
  return i;
}

/** out[a, j..., b] = data[a, indices[j...], b] with `axis` (non-negative) gathered. */
export function gatherRef(data: CpuTensor, indices: CpuTensor, axis: number): CpuTensor {
  const shape = gatherShape(data.shape, indices.shape, axis);
  const strides = contiguousStrides(data.shape);
  const idxRank = indices.shape.length;
  const idxStrides = contiguousStrides(indices.shape);
  const dim = data.shape[axis];
  return gatherElements(data, shape, (idx) => {
    let j = 0;
    for (let d = 0; d < idxRank; d++) j += idx[axis + d] * idxStrides[d];
    let src = resolveIndex(indices.data[j], dim, "gather") * strides[axis];
    for (let d = 0; d < axis; d++) src += idx[d] * strides[d];
    for (let d = axis + 1; d < data.shape.length; d++) src += idx[d + idxRank - 1] * strides[d];
    return src;
  });
}

/** out[i] = data[i with coordinate `axis` replaced by indices[i]]; out has the indices' shape. */
export function gatherElementsRef(data: CpuTensor, indices: CpuTensor, axis: number): CpuTensor {
  if (indices.shape.length !== data.shape.length) {
    throw new RangeError(
      `gatherElements: indices ${shapeString(indices.shape)} and data ` +
        `${shapeString(data.shape)} differ in rank`,
    );
  }
  const strides = contiguousStrides(data.shape);
  const idxStrides = contiguousStrides(indices.shape);
  return gatherElements(data, indices.shape, (idx) => {
    let src = 0;
    let flat = 0;
    for (let d = 0; d < idx.length; d++) flat += idx[d] * idxStrides[d];
    for (let d = 0; d < idx.length; d++) {
      const i = d === axis
        ? resolveIndex(indices.data[flat], data.shape[axis], "gatherElements")
        : idx[d];
      src += i * strides[d];
    }
    return src;
  });
}
