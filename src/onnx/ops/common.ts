/** Small helpers every operator family uses. */
import type { DType } from "../../gpu/mod.ts";
import { UnsupportedError } from "../graph.ts";
import { NodeError, type OnnxNode } from "../types.ts";

/** dtype + shape: what TensorInfo, CpuTensor and GpuTensor share. */
export interface Shaped {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export const FLOATS: readonly DType[] = ["float32", "float16"];

/** Input `i`, or an error naming the node (and `what` the input is) when it is omitted. */
export function required<T>(
  node: OnnxNode,
  inputs: readonly (T | undefined)[],
  i: number,
  what?: string,
): T {
  const t = inputs[i];
  if (t === undefined) {
    throw new NodeError(node, `input ${i}${what ? ` (${what})` : ""} is missing`);
  }
  return t;
}

/** Runs a kernel-level function, turning its plain errors into errors that name the node
 * (errors that already name it, or say an input is unsupported, pass through). */
export function onNode<T>(node: OnnxNode, run: () => T): T {
  try {
    return run();
  } catch (e) {
    if (e instanceof NodeError || e instanceof UnsupportedError) throw e;
    throw new NodeError(node, (e as Error).message);
  }
}
