/** Host reference for MaxUnpool (onnx/reference/ops/op_max_unpool.py): Y is zero except
 * Y.flat[I.flat[k]] = X.flat[k], indices being flat positions in the whole tensor of the
 * inferred shape (as MaxPool's Indices output gives them). An explicit output_shape (at least
 * the inferred one, which is then computed without pads) embeds that tensor at the origin. */
import { type CpuTensor, newCpuData, shapeString, sizeOf } from "../util/tensor.ts";

/** The inferred output shape: (in - 1) * stride + kernel - pad_begin - pad_end per spatial axis. */
export function maxUnpoolShape(
  xShape: readonly number[],
  kernel: readonly number[],
  strides: readonly number[],
  pads: readonly number[],
): number[] {
  const rank = xShape.length - 2;
  if (rank < 1) throw new Error(`X ${shapeString(xShape)} needs N, C and spatial axes`);
  for (
    const [name, list, len] of [
      ["kernel_shape", kernel, rank],
      ["strides", strides, rank],
      ["pads", pads, 2 * rank],
    ] as const
  ) {
    if (list.length !== len) throw new Error(`${name} needs ${len} values, got ${list.length}`);
  }
  const out = [xShape[0], xShape[1]];
  for (let a = 0; a < rank; a++) {
    const o = (xShape[a + 2] - 1) * strides[a] - pads[a] - pads[a + rank] + kernel[a];
    if (o < 0) throw new Error(`axis ${a + 2}: inferred output length ${o} is negative`);
    out.push(o);
  }
  return out;
}

/** Flat position in `shape` of flat position `i` of `inferred` (same rank, shape >= inferred
 * per axis: the inferred tensor sits at the origin). */
export function embedIndex(
  i: number,
  inferred: readonly number[],
  shape: readonly number[],
): number {
  let out = 0;
  let stride = 1;
  for (let a = inferred.length - 1; a >= 0; a--) {
    out += (i % inferred[a]) * stride;
    i = Math.floor(i / inferred[a]);
    stride *= shape[a];
  }
  return out;
}

export function maxUnpoolRef(
  x: CpuTensor,
  indices: CpuTensor,
  inferred: readonly number[],
  shape: readonly number[] = inferred,
): CpuTensor {
  if (shapeString(indices.shape) !== shapeString(x.shape)) {
    throw new Error(`indices ${shapeString(indices.shape)} differ from X ${shapeString(x.shape)}`);
  }
  if (shape.length !== inferred.length || shape.some((d, a) => d < inferred[a])) {
    throw new Error(
      `output shape ${shapeString(shape)} is smaller than the inferred ${shapeString(inferred)}`,
    );
  }
  const total = sizeOf(inferred);
  const data = newCpuData(x.dtype, sizeOf(shape));
  for (let k = 0; k < x.data.length; k++) {
    const i = Number(indices.data[k]);
    if (!(i >= 0 && i < total)) {
      throw new Error(`index ${i} is outside the unpooled ${shapeString(inferred)}`);
    }
    data[embedIndex(i, inferred, shape)] = x.data[k];
  }
  return { dtype: x.dtype, shape: [...shape], data };
}
