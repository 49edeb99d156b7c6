/** Shape, stride and axis helpers shared by the GPU bindings, the CPU references and the ONNX
 * ops: each exists once, here (pure TS, no GPU). */
import { EngineError } from "../util/errors.ts";
import { shapeString } from "../util/tensor.ts";

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

/** `axis` counted from the end when negative, or undefined when outside [-rank, rank). */
export function tryNormalizeAxis(axis: number, rank: number): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  return Number.isInteger(a) && a >= 0 && a < rank ? a : undefined;
}

/** `axis` counted from the end when negative; an EngineError naming `what` when out of range. */
export function normalizeAxis(axis: number, rank: number, what: string): number {
  const a = tryNormalizeAxis(axis, rank);
  if (a === undefined) throw new EngineError(`${what}: axis ${axis} out of range for rank ${rank}`);
  return a;
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
