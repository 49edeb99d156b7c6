/** Einsum planning: equation parsing (explicit and implicit output, ellipsis, repeated labels for
 * diagonals and traces) into a plan of labels, sizes and per-operand strides, shared by the GPU
 * kernel (einsum.ts), the host reference (einsum_ref.ts) and the ONNX op. */
import { shapeString } from "../util/tensor.ts";
import { contiguousStrides } from "./shape.ts";

/** A resolved einsum: output labels first, then the summed ones. */
export interface EinsumPlan {
  /** Output shape (one dim per output label, in output order). */
  readonly outShape: readonly number[];
  /** Sizes of the summed labels. */
  readonly sumSizes: readonly number[];
  /** Per operand, its element stride for each label: output labels, then summed labels. A label
   * an operand lacks (or broadcasts with size 1) has stride 0; a label repeated in one operand
   * has the sum of its dims' strides (walking the diagonal). */
  readonly strides: readonly (readonly number[])[];
}

/** One operand's (or the output's) labels: letters, with `...` expanded to ellipsis labels. */
function parseTerm(term: string, equation: string): { labels: string[]; ellipsisAt: number } {
  const labels: string[] = [];
  let ellipsisAt = -1;
  for (let i = 0; i < term.length;) {
    if (term.startsWith("...", i)) {
      if (ellipsisAt >= 0) throw new RangeError(`einsum '${equation}': two ellipses in '${term}'`);
      ellipsisAt = labels.length;
      i += 3;
    } else if (/[A-Za-z]/.test(term[i])) {
      labels.push(term[i]);
      i++;
    } else {
      throw new RangeError(`einsum '${equation}': unexpected '${term[i]}' in '${term}'`);
    }
  }
  return { labels, ellipsisAt };
}

/** Label names of the ellipsis dims: ".0" is the leftmost (outermost) of `n`. */
function ellipsisLabels(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `.${i}`);
}

/** Parses `equation` for operands of `shapes` (RangeError on anything inconsistent). */
export function planEinsum(equation: string, shapes: readonly (readonly number[])[]): EinsumPlan {
  const eq = equation.replace(/\s+/g, "");
  const arrow = eq.indexOf("->");
  const lhs = arrow >= 0 ? eq.slice(0, arrow) : eq;
  const terms = lhs.split(",");
  if (terms.length !== shapes.length) {
    throw new RangeError(
      `einsum '${equation}': ${terms.length} operand terms for ${shapes.length} inputs`,
    );
  }
  // Every operand's labels with its ellipsis expanded (right-aligned to the widest ellipsis).
  const parsed = terms.map((t) => parseTerm(t, equation));
  let ellipsisRank = 0;
  const operandLabels = parsed.map(({ labels, ellipsisAt }, k) => {
    const rank = shapes[k].length;
    if (ellipsisAt < 0) {
      if (labels.length !== rank) {
        throw new RangeError(
          `einsum '${equation}': term '${terms[k]}' has ${labels.length} labels for input ${k} ` +
            `of rank ${rank}`,
        );
      }
      return labels;
    }
    const n = rank - labels.length;
    if (n < 0) {
      throw new RangeError(`einsum '${equation}': term '${terms[k]}' too long for rank ${rank}`);
    }
    ellipsisRank = Math.max(ellipsisRank, n);
    return [...labels.slice(0, ellipsisAt), ...ellipsisLabels(n), ...labels.slice(ellipsisAt)];
  });
  // Right-align ellipsis dims: an operand with fewer of them uses the trailing labels.
  operandLabels.forEach((labels, k) => {
    const n = parsed[k].ellipsisAt < 0 ? 0 : shapes[k].length - parsed[k].labels.length;
    const shift = ellipsisRank - n;
    for (let i = 0; i < labels.length; i++) {
      if (labels[i].startsWith(".")) labels[i] = `.${Number(labels[i].slice(1)) + shift}`;
    }
  });
  // Label sizes: equal wherever a label appears, except that size 1 broadcasts.
  const sizes = new Map<string, number>();
  operandLabels.forEach((labels, k) => {
    labels.forEach((l, d) => {
      const n = shapes[k][d];
      const had = sizes.get(l);
      if (had === undefined || had === 1) sizes.set(l, n);
      else if (n !== had && n !== 1) {
        throw new RangeError(
          `einsum '${equation}': label '${l.startsWith(".") ? "..." : l}' is ${had} in one ` +
            `place and ${n} in input ${k} ${shapeString(shapes[k])}`,
        );
      }
    });
  });
  let outLabels: string[];
  if (arrow >= 0) {
    const { labels, ellipsisAt } = parseTerm(eq.slice(arrow + 2), equation);
    outLabels = ellipsisAt < 0 ? labels : [
      ...labels.slice(0, ellipsisAt),
      ...ellipsisLabels(ellipsisRank),
      ...labels.slice(ellipsisAt),
    ];
    for (const l of outLabels) {
      if (!sizes.has(l)) throw new RangeError(`einsum '${equation}': output label '${l}' unknown`);
    }
    if (new Set(outLabels).size !== outLabels.length) {
      throw new RangeError(`einsum '${equation}': repeated output label`);
    }
  } else {
    // Implicit output: the ellipsis dims, then labels seen exactly once, in alphabetical order.
    const count = new Map<string, number>();
    for (const labels of operandLabels) {
      for (const l of labels) count.set(l, (count.get(l) ?? 0) + 1);
    }
    const once = [...count].filter(([l, c]) => c === 1 && !l.startsWith(".")).map(([l]) => l);
    outLabels = [...ellipsisLabels(ellipsisRank), ...once.sort()];
  }
  const sumLabels = [...sizes.keys()].filter((l) => !outLabels.includes(l));
  const all = [...outLabels, ...sumLabels];
  const strides = operandLabels.map((labels, k) => {
    const own = contiguousStrides(shapes[k]);
    return all.map((l) => {
      let s = 0;
      labels.forEach((m, d) => {
        if (m === l && shapes[k][d] !== 1) s += own[d];
      });
      return s;
    });
  });
  return {
    outShape: outLabels.map((l) => sizes.get(l)!),
    sumSizes: sumLabels.map((l) => sizes.get(l)!),
    strides,
  };
}
