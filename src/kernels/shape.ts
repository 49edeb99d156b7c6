/** Shape, stride and axis helpers shared by the GPU bindings, the CPU references and the ONNX
 * ops: each exists once, here (pure TS, no GPU). */
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";

/** Row-major strides (in elements) of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

/** The multi-index of row-major position `i` in `shape`, written into `out` (reused across
 * calls by the loops that walk every element). */
export function unravel(i: number, shape: readonly number[], out: number[]): number[] {
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d];
    out[d] = i % n;
    i = Math.floor(i / n);
  }
  return out;
}

/** `axis` counted from the end when negative, or undefined when outside [-rank, rank). */
export function tryNormalizeAxis(axis: number, rank: number): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  return Number.isInteger(a) && a >= 0 && a < rank ? a : undefined;
}

/** An EngineError naming `what` unless an output of `outShape` holds as many elements as an input
 * of `inShape` (elementwise kernels write a same-size output, which may be a reshape). */
export function checkSameSize(
  what: string,
  inShape: readonly number[],
  outShape: readonly number[],
): void {
  if (sizeOf(inShape) !== sizeOf(outShape)) {
    throw new EngineError(
      `${what}: output ${shapeString(outShape)} does not match input ${shapeString(inShape)}`,
    );
  }
}

/** The numpy broadcast of `shapes` (right-aligned; each dim equal or 1), or undefined when the
 * shapes are incompatible. */
export function broadcastShapes(...shapes: (readonly number[])[]): number[] | undefined {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const shape of shapes) {
    const offset = rank - shape.length;
    for (let d = 0; d < shape.length; d++) {
      const dim = shape[d];
      const cur = out[offset + d];
      if (dim === cur || dim === 1) continue;
      if (cur !== 1) return undefined;
      out[offset + d] = dim;
    }
  }
  return out;
}

/** Row-major element strides of an input of `shape` read as if it had `outShape`: 0 along
 * broadcast (size-1 or missing) dims. `outShape` must be a broadcast of `shape`. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const offset = outShape.length - shape.length;
  if (offset < 0 || shape.some((d, i) => d !== 1 && d !== outShape[offset + i])) {
    throw new RangeError(`cannot broadcast ${shapeString(shape)} to ${shapeString(outShape)}`);
  }
  const strides = new Array<number>(outShape.length).fill(0);
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1) strides[offset + d] = stride;
    stride *= shape[d];
  }
  return strides;
}

/** Left-pads a per-axis list to 3 axes (D, H, W) with `fill`, so 1-D and 2-D problems run as
 * 3-D ones with unit leading axes. */
export function to3d(values: readonly number[], fill: number): [number, number, number] {
  const out: [number, number, number] = [fill, fill, fill];
  const offset = 3 - values.length;
  for (let i = 0; i < values.length; i++) out[offset + i] = values[i];
  return out;
}

/** Output extent of one sliding-window axis (floor mode): the window positions, `stride` apart,
 * of a `kernel` dilated by `dilation` inside the padded input. */
export function windowOutputSize(
  inSize: number,
  kernel: number,
  stride: number,
  dilation: number,
  padBegin: number,
  padEnd: number,
): number {
  const span = (kernel - 1) * dilation + 1;
  return Math.floor((inSize + padBegin + padEnd - span) / stride) + 1;
}
