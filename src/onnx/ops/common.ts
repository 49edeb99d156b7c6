/** Small helpers every operator family uses. */
import type { CpuTensor, DType } from "../../util/tensor.ts";
import { EngineError } from "../../util/errors.ts";
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

/** The operator callback the executor is in when it calls `onNode`. */
export type OpCallback = "infer" | "cpu" | "gpu" | "tune";

/** Runs `run`, re-throwing its errors as errors that name `node` (the one place that does;
 * errors that already name it, or say an input is unsupported, pass through).
 *
 * Inside an operator (no `callback`), around a kernel-level function, every error is about the
 * node's inputs and becomes a NodeError. Where the executor calls an operator's `callback`, only
 * engine errors and refused allocations (a RangeError: shapes too large for memory) are the
 * input's; anything else is an operator bug, re-thrown as a plain Error (with a stack in CLI
 * output) that keeps the original as `cause`. */
export function onNode<T>(node: OnnxNode, run: () => T, callback?: OpCallback): T {
  try {
    return run();
  } catch (e) {
    throw atNode(node, e, callback);
  }
}

function atNode(node: OnnxNode, e: unknown, callback: OpCallback | undefined): Error {
  if (e instanceof NodeError || e instanceof UnsupportedError) return e;
  const message = e instanceof Error ? e.message : String(e);
  if (callback === undefined || e instanceof EngineError) return new NodeError(node, message);
  if (e instanceof RangeError) return new NodeError(node, `${callback}: ${message}`);
  return new Error(`node '${node.name}' (${node.opType}) ${callback}: ${message}`, { cause: e });
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
