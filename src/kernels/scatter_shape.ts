/** GatherND, ScatterND and ScatterElements shapes and reductions, shared by the binding
 * (scatter.ts), the references (scatter_ref.ts) and the ONNX ops. The checks throw RangeError
 * naming the shapes ONNX rejects. */
import { shapeString } from "../util/tensor.ts";

/** ScatterND / ScatterElements reductions (ONNX attribute `reduction`). */
export type ScatterReduction = "none" | "add" | "mul" | "max" | "min";

export const SCATTER_REDUCTIONS: readonly ScatterReduction[] = ["none", "add", "mul", "max", "min"];

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
