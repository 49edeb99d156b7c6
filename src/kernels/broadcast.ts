/** Numpy broadcasting plans, shared by the elementwise kernels and their CPU references (pure TS). */

/** How a kernel finds the element of one input that feeds output element `i`. */
export type SourceIndex =
  /** Same shape as the output: element `i`. */
  | { kind: "identity" }
  /** The input's non-broadcast dims are one contiguous block of the output's dims (scalars,
   * trailing bias vectors, per-channel [C,1,1] tensors): element `(i / inner) % extent`. */
  | { kind: "block"; inner: number; extent: number }
  /** Anything else: walk the coalesced output dims with these strides (0 = broadcast). */
  | { kind: "strided"; strides: number[] };

/** A broadcast plan: the output's dims with size-1 dims dropped and neighbouring dims merged
 * wherever every input treats them alike, plus the cheapest indexing for each input. */
export interface BroadcastPlan {
  readonly shape: readonly number[];
  readonly sources: readonly SourceIndex[];
}

/** Plans how each input of `shapes` is indexed when broadcast to `outShape`. Merging dims keeps
 * the strided rank (and the per-element div/mod work) as small as the broadcast allows. */
export function planBroadcast(
  shapes: readonly (readonly number[])[],
  outShape: readonly number[],
): BroadcastPlan {
  const rank = outShape.length;
  // real[k][d]: input k varies along output dim d (otherwise it is broadcast there).
  const dims: number[] = [];
  const real: boolean[][] = shapes.map(() => []);
  for (let d = 0; d < rank; d++) {
    if (outShape[d] === 1) continue;
    const flags = shapes.map((s) => {
      const sd = d - (rank - s.length);
      return sd >= 0 && s[sd] !== 1;
    });
    const last = dims.length - 1;
    if (last >= 0 && flags.every((f, k) => f === real[k][last])) {
      dims[last] *= outShape[d];
    } else {
      dims.push(outShape[d]);
      flags.forEach((f, k) => real[k].push(f));
    }
  }
  const sources = real.map((flags): SourceIndex => {
    const first = flags.indexOf(true);
    const last = flags.lastIndexOf(true);
    if (first < 0) return { kind: "block", inner: 1, extent: 1 };
    if (flags.every((f) => f)) return { kind: "identity" };
    if (flags.slice(first, last + 1).every((f) => f)) {
      let inner = 1;
      for (let d = last + 1; d < dims.length; d++) inner *= dims[d];
      let extent = 1;
      for (let d = first; d <= last; d++) extent *= dims[d];
      return { kind: "block", inner, extent };
    }
    const strides = new Array<number>(dims.length).fill(0);
    let stride = 1;
    for (let d = dims.length - 1; d >= 0; d--) {
      if (flags[d]) {
        strides[d] = stride;
        stride *= dims[d];
      }
    }
    return { kind: "strided", strides };
  });
  return { shape: dims, sources };
}
