/** Shape and axis logic of the reductions and the row-wise kernels (reduce, softmax, layernorm,
 * lpnorm, argmax), shared by their bindings, their references and the ONNX ops. */
import { EngineError } from "../util/errors.ts";
import { shapeString } from "../util/tensor.ts";
import { tryNormalizeAxis } from "./shape.ts";

/** The ONNX Reduce* operators (ReduceLogSumExp is `logSumExp`, ReduceSumSquare `sumSquare`). */
export type ReduceOp =
  | "sum"
  | "mean"
  | "max"
  | "min"
  | "prod"
  | "l1"
  | "l2"
  | "sumSquare"
  | "logSum"
  | "logSumExp";

/** `axes` counted from the end where negative, duplicates dropped (first occurrence order); an
 * EngineError naming `what` and the shape for an axis outside [-rank, rank). */
export function normAxes(
  shape: readonly number[],
  axes: readonly number[],
  what: string,
): number[] {
  return [
    ...new Set(axes.map((a) => {
      const n = tryNormalizeAxis(a, shape.length);
      if (n === undefined) {
        throw new EngineError(`${what}: axis ${a} out of range for ${shapeString(shape)}`);
      }
      return n;
    })),
  ];
}

/** One axis of `shape` normalised as `normAxes` does. */
export function normAxis(shape: readonly number[], axis: number, what: string): number {
  return normAxes(shape, [axis], what)[0];
}

/** Output shape of reducing `shape` over `axes` (normalised, any order). */
export function reduceShape(
  shape: readonly number[],
  axes: readonly number[],
  keepdims: boolean,
): number[] {
  const reduced = new Set(axes);
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!reduced.has(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

/** The view of `shape` as [outer, n, inner] around `axis` (normalised). With `coerce2d`
 * (ONNX opset < 13 Softmax) every dim from `axis` on is folded into the row: inner = 1. */
export function rowView(
  shape: readonly number[],
  axis: number,
  coerce2d = false,
): { outer: number; n: number; inner: number } {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  if (coerce2d) return { outer, n: shape.slice(axis).reduce((a, b) => a * b, 1), inner: 1 };
  return { outer, n: shape[axis], inner: shape.slice(axis + 1).reduce((a, b) => a * b, 1) };
}
