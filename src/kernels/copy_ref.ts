/** Host references for the strided-copy family (Slice, Concat, Split, Expand) and
 * `gatherElements`, which the other movement references build on. Plain loops over
 * multi-indices, written independently of the GPU path's axis merging so tests compare two
 * different derivations. */
import { type CpuData, type CpuTensor, newCpuData, shapeString, sizeOf } from "../util/tensor.ts";
import type { ResolvedSlice } from "./copy_shape.ts";
import { contiguousStrides, unravel } from "./shape.ts";

/** A tensor of `dtype`/`shape` whose element i is `data[source(i)]`. */
export function gatherElements(
  x: CpuTensor,
  shape: readonly number[],
  source: (index: number[]) => number,
): CpuTensor {
  const n = sizeOf(shape);
  const out: CpuData = newCpuData(x.dtype, n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) out[i] = x.data[source(unravel(i, shape, idx))];
  return { dtype: x.dtype, shape: [...shape], data: out };
}

/** out[i] = x[starts + i * steps] on every axis. */
export function sliceRef(x: CpuTensor, slice: ResolvedSlice): CpuTensor {
  const strides = contiguousStrides(x.shape);
  return gatherElements(x, slice.shape, (idx) => {
    let j = 0;
    for (let d = 0; d < idx.length; d++) {
      j += (slice.starts[d] + idx[d] * slice.steps[d]) * strides[d];
    }
    return j;
  });
}

/** Concatenation along `axis` (non-negative); every other axis must agree. */
export function concatRef(inputs: readonly CpuTensor[], axis: number): CpuTensor {
  if (inputs.length === 0) throw new RangeError("concat of no inputs");
  const first = inputs[0];
  const shape = [...first.shape];
  shape[axis] = 0;
  for (const x of inputs) {
    if (
      x.shape.length !== shape.length || x.shape.some((n, d) => d !== axis && n !== first.shape[d])
    ) {
      throw new RangeError(
        `concat: ${shapeString(x.shape)} does not match ${shapeString(first.shape)} off axis ` +
          `${axis}`,
      );
    }
    shape[axis] += x.shape[axis];
  }
  // Which input each output position along the axis comes from, and its position there.
  const owner: number[] = [];
  const local: number[] = [];
  inputs.forEach((x, k) => {
    for (let j = 0; j < x.shape[axis]; j++) {
      owner.push(k);
      local.push(j);
    }
  });
  const n = sizeOf(shape);
  const data: CpuData = newCpuData(first.dtype, n);
  const strides = inputs.map((x) => contiguousStrides(x.shape));
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    unravel(i, shape, idx);
    const k = owner[idx[axis]];
    let j = 0;
    for (let d = 0; d < idx.length; d++) {
      j += (d === axis ? local[idx[d]] : idx[d]) * strides[k][d];
    }
    data[i] = inputs[k].data[j];
  }
  return { dtype: first.dtype, shape, data };
}

/** Splits along `axis` (non-negative) into pieces of the given sizes, in order. */
export function splitRef(x: CpuTensor, sizes: readonly number[], axis: number): CpuTensor[] {
  let start = 0;
  return sizes.map((size) => {
    const shape = [...x.shape];
    shape[axis] = size;
    const starts = x.shape.map((_, d) => (d === axis ? start : 0));
    start += size;
    return sliceRef(x, { starts, steps: x.shape.map(() => 1), shape });
  });
}

/** `x` broadcast to `shape` (x right-aligned, its size-1 axes repeated). */
export function expandRef(x: CpuTensor, shape: readonly number[]): CpuTensor {
  const lead = shape.length - x.shape.length;
  const strides = contiguousStrides(x.shape);
  return gatherElements(x, shape, (idx) => {
    let j = 0;
    for (let d = 0; d < x.shape.length; d++) {
      if (x.shape[d] !== 1) j += idx[d + lead] * strides[d];
    }
    return j;
  });
}
