/** Slice geometry shared by the strided-copy binding (copy.ts), its reference (copy_ref.ts) and
 * the ONNX Slice op: the ONNX starts/ends/steps resolved into a start, step and size per axis. */

/** A fully resolved slice: for every axis, first index, step and output size. */
export interface ResolvedSlice {
  starts: number[];
  steps: number[];
  shape: number[];
}

/** ONNX Slice semantics for the listed axes (non-negative, distinct; others are taken whole):
 * negative starts/ends count from the end; starts and ends are clamped to [0, dim] for positive
 * steps and to [0, dim-1] / [-1, dim-1] for negative steps, so sentinels such as INT64_MAX
 * (arriving as huge float64 numbers) mean "to the end". Steps must be non-zero. */
export function resolveSlice(
  shape: readonly number[],
  starts: readonly number[],
  ends: readonly number[],
  axes: readonly number[],
  steps: readonly number[],
): ResolvedSlice {
  const out: ResolvedSlice = {
    starts: shape.map(() => 0),
    steps: shape.map(() => 1),
    shape: [...shape],
  };
  axes.forEach((axis, k) => {
    const dim = shape[axis];
    const step = steps[k];
    if (step === 0) throw new RangeError(`slice step on axis ${axis} is 0`);
    let start = starts[k] < 0 ? starts[k] + dim : starts[k];
    let end = ends[k] < 0 ? ends[k] + dim : ends[k];
    if (step > 0) {
      start = Math.min(Math.max(start, 0), dim);
      end = Math.min(Math.max(end, 0), dim);
    } else {
      start = Math.min(Math.max(start, 0), dim - 1);
      end = Math.min(Math.max(end, -1), dim - 1);
    }
    const count = step > 0 ? Math.ceil((end - start) / step) : Math.ceil((start - end) / -step);
    out.starts[axis] = start;
    out.steps[axis] = step;
    out.shape[axis] = Math.max(0, count);
  });
  return out;
}
