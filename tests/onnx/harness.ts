/** The one way op tests run an ONNX operator (`runNode`): a single-node model written with
 * GraphBuilder, run through the executor on the GPU and, with every input an initializer, through
 * constant folding (the op's `cpu`, which the executor checks against its `infer`). GPU outputs
 * are read back as the GPU holds them (float16 unrounded). Plus the node and error helpers the op
 * tests share for calling `infer` directly. */
import "../gpu_teardown.ts";
import { throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor, sizeOf } from "../../src/util/tensor.ts";
import { getGpu, releaseTensor } from "../../src/gpu/mod.ts";
import { type BuilderAttr, GraphBuilder } from "../../src/onnx/builder.ts";
import { Model } from "../../src/onnx/executor.ts";
import { OPS } from "../../src/onnx/ops/registry.ts";
import { type AttrValue, NodeError, type OnnxNode, type TensorInfo } from "../../src/onnx/types.ts";
import { randomFloats } from "../helpers.ts";
import {
  assertHalfValues,
  assertSameTensor,
  assertTensorClose,
  readOutput,
  type Tolerance,
} from "../kernels/harness.ts";

/** Which inputs a GPU run gives as initializers, known when the plan is made (the op's
 * `constInputs` always are; the others are graph inputs): their indices, or "weights" for every
 * input but the first. */
export type KnownInputs = readonly number[] | "weights";

export interface NodeOptions {
  /** Opset of the model. Default 18. */
  opset?: number;
  attrs?: Record<string, BuilderAttr>;
  /** Outputs of the node. Default: as many as `expect` has, else 1. */
  outputs?: number;
  /** The GPU runs, by name. Default one, `gpu`, with only the op's `constInputs` known. */
  gpuRuns?: Record<string, KnownInputs>;
  /** Every path must give these outputs (within `tol`). Without them the GPU runs must give the
   * constant-folding path's. */
  expect?: readonly CpuTensor[];
  /** Default: bit-exact. */
  tol?: Tolerance;
  /** Names the node in failures. Default `OpType@opset`. */
  label?: string;
  /** false: the GPU runs only, for what only they must do (raise a run-time index error). */
  fold?: boolean;
}

/** A node's outputs by path: `cpu` (constant folding, unless `fold` is false) and each GPU run
 * by its name. */
export type NodePaths = { cpu: CpuTensor[] } & Record<string, CpuTensor[]>;

/** Runs one node on `inputs` (undefined: an omitted optional input) on every path, checks the
 * paths (see `NodeOptions.expect`; float16 outputs must hold half values) and returns their
 * outputs. */
export async function runNode(
  opType: string,
  inputs: readonly (CpuTensor | undefined)[],
  options: NodeOptions = {},
): Promise<NodePaths> {
  const opset = options.opset ?? 18;
  const label = options.label ?? `${opType}@${opset}`;
  const constInputs = OPS.get(opType)?.constInputs ?? [];
  const isKnown = (known: KnownInputs) => (i: number) =>
    constInputs.includes(i) || (known === "weights" ? i > 0 : known.includes(i));
  const runs: [string, (i: number) => boolean][] = Object.entries(options.gpuRuns ?? { gpu: [] })
    .map(([name, known]) => [name, isKnown(known)]);
  if (options.fold !== false) runs.push(["cpu", () => true]);
  const paths: Record<string, CpuTensor[]> = {};
  for (const [path, known] of runs) {
    const b = new GraphBuilder("node", opset);
    const feeds: Record<string, CpuTensor> = {};
    const names = inputs.map((t, i) => {
      if (!t) return "";
      if (known(i)) return b.constant(`in${i}`, t);
      feeds[`in${i}`] = t;
      return b.input(`in${i}`, t.dtype, t.shape);
    });
    const count = options.outputs ?? options.expect?.length ?? 1;
    const outs = Array.from({ length: count }, (_, k) => `out${k}`);
    b.opMulti(opType, names, outs, options.attrs ?? {});
    // Declared output types are not checked against inference: the executor infers them.
    for (const o of outs) b.output(o, "float32", []);
    const got = await runModel(b, feeds, `${label} (${path})`);
    paths[path] = outs.map((o) => got[o]);
  }
  const result = paths as NodePaths;
  for (const [path, tensors] of Object.entries(result)) {
    const want = options.expect ?? (path === "cpu" ? undefined : result.cpu);
    tensors.forEach((t, k) => {
      const name = `${label} ${path} output ${k}`;
      if (t.dtype === "float16") assertHalfValues(t, name);
      if (!want) return;
      if (options.tol) assertTensorClose(t, want[k], { ...options.tol, label: name });
      else assertSameTensor(t, want[k], name);
    });
  }
  return result;
}

/** Loads the model `b` describes (as the parser would make it, without the ModelProto bytes in
 * between: a float64 holding INT64_MAX, as parsed files give it, stays that value), runs it on the
 * GPU with `feeds`, and returns its outputs read back as the GPU holds them (then waits for the
 * run's index checks, which may throw). */
export async function runModel(
  b: GraphBuilder,
  feeds: Record<string, CpuTensor>,
  source = b.name,
): Promise<Record<string, CpuTensor>> {
  const model = new Model(await getGpu(), b.toParsedModel(source, OPS), OPS);
  try {
    const held = await model.runGpu(feeds);
    const result: Record<string, CpuTensor> = {};
    try {
      for (const [name, t] of Object.entries(held)) {
        result[name] = await readOutput(model.gpu, t, `${source} output '${name}'`);
      }
    } finally {
      for (const t of Object.values(held)) releaseTensor(model.gpu, t);
    }
    await model.settle();
    return result;
  } finally {
    model.dispose();
  }
}

/** A node for calling an op's `infer`/`cpu` directly, named `<optype>_node`, with inputs
 * `in0..` and outputs `out0..`. */
export function opNode(
  opType: string,
  attrs: Record<string, AttrValue> = {},
  inputs = 0,
  outputs = 1,
): OnnxNode {
  return {
    name: `${opType.toLowerCase()}_node`,
    opType,
    domain: "",
    inputs: Array.from({ length: inputs }, (_, i) => `in${i}`),
    outputs: Array.from({ length: outputs }, (_, i) => `out${i}`),
    attrs: new Map(Object.entries(attrs)),
  };
}

/** For `throws`: an error of `kind` (default NodeError) that names the `opNode` of `opType`
 * ("node 'optype_node' (OpType)") and matches `pattern`. */
export function namesNode(
  opType: string,
  pattern: RegExp,
  kind: abstract new (...args: never[]) => Error = NodeError,
): (e: Error) => boolean {
  return (e) =>
    e instanceof kind && e.message.includes(`'${opType.toLowerCase()}_node' (${opType})`) &&
    pattern.test(e.message);
}

/** Asserts that `infer` of `opType` (on an `opNode` with `attrs`) throws an error of `kind`
 * (default NodeError) that names the node and matches `pattern`. */
export function throwsOnInfer(
  opType: string,
  attrs: Record<string, AttrValue>,
  inputs: readonly (TensorInfo | undefined)[],
  pattern: RegExp,
  opset: number,
  kind: abstract new (...args: never[]) => Error = NodeError,
): void {
  const op = OPS.get(opType);
  if (!op) throw new Error(`no operator ${opType}`);
  throws(
    () => op.infer({ node: opNode(opType, attrs, inputs.length), opset }, inputs),
    namesNode(opType, pattern, kind),
  );
}

/** Infos of `inputs` as the executor makes them: values for the op's `constInputs` and for the
 * inputs listed in `known`. */
export function infosOf(
  opType: string,
  inputs: readonly (CpuTensor | undefined)[],
  known: readonly number[] = [],
): (TensorInfo | undefined)[] {
  const constInputs = OPS.get(opType)?.constInputs ?? [];
  return inputs.map((t, i): TensorInfo | undefined =>
    t
      ? {
        dtype: t.dtype,
        shape: t.shape,
        value: constInputs.includes(i) || known.includes(i) ? t : undefined,
      }
      : undefined
  );
}

/** A float32 tensor of values uniform in [lo, hi). */
export function randomF32(shape: readonly number[], seed: number, lo = -1, hi = 1): CpuTensor {
  return cpuTensor("float32", shape, randomFloats(sizeOf(shape), seed, lo, hi));
}
