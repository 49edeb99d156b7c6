/** Small helpers every operator family uses. */
import type { CpuTensor, DType } from "../../util/tensor.ts";
import { UnsupportedError, UnsupportedFeatureError } from "../graph.ts";
import { constValues, NodeError, type OnnxNode, type TensorInfo } from "../types.ts";

/** dtype + shape: what TensorInfo, CpuTensor and GpuTensor share. */
export interface Shaped {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export const FLOATS: readonly DType[] = ["float32", "float16"];

/** Refuses a non-float `t` for operators the engine computes on float data only. */
export function checkFloat(node: OnnxNode, t: Shaped, what: string): void {
  if (!FLOATS.includes(t.dtype)) {
    throw new UnsupportedFeatureError(
      node,
      `${what} dtype ${t.dtype} is not supported (float32, float16)`,
    );
  }
}

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

/** Reads the values of constant input i (undefined when the optional input is omitted). The
 * plan-time path reads TensorInfo values, the CPU path the tensors themselves. */
export type ConstInput = (i: number, what: string) => number[] | undefined;

export function fromInfos(node: OnnxNode, infos: readonly (TensorInfo | undefined)[]): ConstInput {
  return (i, what) => constValues(node, infos[i], what);
}

export function fromTensors(inputs: readonly (CpuTensor | undefined)[]): ConstInput {
  return (i) => {
    const t = inputs[i];
    return t ? Array.from(t.data as ArrayLike<number>) : undefined;
  };
}

/** A TensorInfo of `dtype` and a copy of `shape`. */
export function info(dtype: DType, shape: readonly number[]): TensorInfo {
  return { dtype, shape: [...shape] };
}
