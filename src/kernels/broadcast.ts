/** Numpy broadcasting, shared by the elementwise kernels and their CPU references (pure TS). */

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
  const strides = new Array<number>(outShape.length).fill(0);
  const offset = outShape.length - shape.length;
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1) strides[offset + d] = stride;
    stride *= shape[d];
  }
  return strides;
}

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
