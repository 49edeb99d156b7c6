/** Plan-time analysis on the CPU: constant folding at load (`foldConstants`), and static shape
 * inference with folding for one set of input shapes (`analyze`), which yields the steps a GPU
 * plan records. */
import { type CpuTensor, type DType, shapeString } from "../util/tensor.ts";
import { NodeError, type OnnxNode, type OpContext, type OpImpl, type TensorInfo } from "./types.ts";
import { findOp, type Graph, isDefaultDomain } from "./graph.ts";
import { onNode } from "./ops/common.ts";

/** Operators whose outputs are random: never folded even when their inputs are constant. */
export const NONDETERMINISTIC: ReadonlySet<string> = new Set([
  "RandomNormal",
  "RandomUniform",
  "RandomNormalLike",
  "RandomUniformLike",
  "Bernoulli",
  "Multinomial",
]);

/** What an operator evaluates `node` with: the node and the opset of its domain. */
export function opContext(graph: Graph, node: OnnxNode): OpContext {
  const domain = isDefaultDomain(node.domain) ? "" : node.domain;
  return { node, opset: graph.opsets.get(domain) ?? graph.opsets.get("") ?? 1 };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Evaluates a node on the CPU (constant folding) and checks the result against `infer`. */
function evalNode(
  ctx: OpContext,
  op: OpImpl,
  inputs: readonly (TensorInfo | undefined)[],
  inferred: readonly TensorInfo[],
): CpuTensor[] {
  const node = ctx.node;
  const values = onNode(node, () => op.cpu(ctx, inputs.map((i) => i?.value)), "cpu");
  node.outputs.forEach((name, k) => {
    if (name === "") return;
    const v = values[k], inf = inferred[k];
    if (!v) throw new NodeError(node, `cpu returned no value for output ${k} ('${name}')`);
    if (v.dtype !== inf.dtype || !sameShape(v.shape, inf.shape)) {
      throw new NodeError(
        node,
        `cpu result for output '${name}' is ${v.dtype}${shapeString(v.shape)} but infer ` +
          `said ${inf.dtype}${shapeString(inf.shape)} (operator bug)`,
      );
    }
  });
  return values;
}

function inferNode(
  ctx: OpContext,
  op: OpImpl,
  inputs: readonly (TensorInfo | undefined)[],
): TensorInfo[] {
  const node = ctx.node;
  const outs = onNode(node, () => op.infer(ctx, inputs), "infer");
  if (outs.length < node.outputs.length) {
    throw new NodeError(
      node,
      `has ${node.outputs.length} outputs but the operator produces ${outs.length}`,
    );
  }
  return outs;
}

/** Folds nodes whose inputs are all initializers (weight Casts, Constant nodes, shape arithmetic
 * on constants) once at load. Returns the graph with those nodes removed, their outputs added to
 * `constants`, and constants no longer referenced dropped. */
export function foldConstants(graph: Graph, ops: ReadonlyMap<string, OpImpl>): Graph {
  const constants = new Map(graph.constants);
  const nodes: OnnxNode[] = [];
  for (const node of graph.nodes) {
    const op = findOp(ops, node)!;
    const known = node.inputs.every((n) => n === "" || constants.has(n));
    if (!known || NONDETERMINISTIC.has(node.opType)) {
      nodes.push(node);
      continue;
    }
    const ctx = opContext(graph, node);
    const infos = node.inputs.map((n): TensorInfo | undefined => {
      if (n === "") return undefined;
      const v = constants.get(n)!;
      return { dtype: v.dtype, shape: v.shape, value: v };
    });
    const outs = inferNode(ctx, op, infos);
    const values = evalNode(ctx, op, infos, outs);
    node.outputs.forEach((name, k) => {
      if (name !== "") constants.set(name, values[k]);
    });
  }
  const used = new Set<string>(graph.outputs.map((o) => o.name));
  for (const n of nodes) for (const i of n.inputs) used.add(i);
  for (const name of [...constants.keys()]) if (!used.has(name)) constants.delete(name);
  return { ...graph, nodes, constants };
}

/** A node that needs GPU work, with its static input/output facts. */
export interface Step {
  readonly node: OnnxNode;
  readonly op: OpImpl;
  readonly ctx: OpContext;
  readonly inputs: readonly (TensorInfo | undefined)[];
  /** One per node output ("" outputs included, as unnamed temporaries). */
  readonly outputs: readonly TensorInfo[];
}

/** What `analyze` knows about one graph input. */
export interface InputFacts {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Set for inputs whose values feed shapes/axes (see NeedsInputValues). */
  readonly value?: CpuTensor;
}

/** Raised during analysis when a node needs a constant that derives from graph inputs given
 * without values: the caller re-plans with those inputs' values (they become part of the plan's
 * key, like shapes). */
export class NeedsInputValues extends Error {
  constructor(readonly inputs: readonly string[], readonly node: OnnxNode, readonly what: string) {
    super(`node '${node.name}' (${node.opType}) needs the value of ${what}`);
  }
}

export interface Analysis {
  readonly infos: ReadonlyMap<string, TensorInfo>;
  readonly steps: readonly Step[];
}

/** Static shape inference and constant folding from actual input shapes (CPU only). */
export function analyze(
  graph: Graph,
  ops: ReadonlyMap<string, OpImpl>,
  inputs: ReadonlyMap<string, InputFacts>,
): Analysis {
  const infos = new Map<string, TensorInfo>();
  for (const [name, v] of graph.constants) {
    infos.set(name, { dtype: v.dtype, shape: v.shape, value: v });
  }
  for (const [name, f] of inputs) infos.set(name, f);
  const producers = new Map<string, OnnxNode>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o !== "") producers.set(o, n);

  const steps: Step[] = [];
  for (const node of graph.nodes) {
    const op = findOp(ops, node)!;
    const ctx = opContext(graph, node);
    const ins = node.inputs.map((n) => (n === "" ? undefined : infos.get(n)!));
    for (const ci of op.constInputs ?? []) {
      const info = ins[ci];
      if (info && info.value === undefined) {
        missingConstant(node, ci, infos, producers, inputs);
      }
    }
    const outs = inferNode(ctx, op, ins);
    const allKnown = ins.every((i) => i === undefined || i.value !== undefined);
    if (allKnown && !NONDETERMINISTIC.has(node.opType)) {
      const values = evalNode(ctx, op, ins, outs);
      node.outputs.forEach((name, k) => {
        if (name !== "") {
          infos.set(name, { dtype: values[k].dtype, shape: values[k].shape, value: values[k] });
        }
      });
      continue;
    }
    const outputs = node.outputs.map((_, k) => outs[k]);
    node.outputs.forEach((name, k) => {
      if (name !== "") infos.set(name, outputs[k]);
    });
    // Outputs known from shapes alone (Shape, Size) need no GPU work.
    if (node.outputs.every((name, k) => name === "" || outputs[k].value !== undefined)) continue;
    steps.push({ node, op, ctx, inputs: ins, outputs });
  }
  return { infos, steps };
}

/** Throws for a constant input whose value is unknown: NeedsInputValues when it derives from
 * graph inputs (the executor retries with their values), else a NodeError. */
function missingConstant(
  node: OnnxNode,
  index: number,
  infos: ReadonlyMap<string, TensorInfo>,
  producers: ReadonlyMap<string, OnnxNode>,
  graphInputs: ReadonlyMap<string, InputFacts>,
): never {
  const name = node.inputs[index];
  const sources = new Set<string>();
  const seen = new Set<string>();
  const stack = [name];
  let gpuProducer: string | undefined;
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (infos.get(v)?.value !== undefined) continue;
    if (graphInputs.has(v)) {
      sources.add(v);
      continue;
    }
    const p = producers.get(v);
    if (!p) continue;
    gpuProducer ??= p.name;
    for (const i of p.inputs) if (i !== "") stack.push(i);
  }
  const what = `input ${index} ('${name}')`;
  if (sources.size > 0) throw new NeedsInputValues([...sources], node, what);
  throw new NodeError(
    node,
    `${what} must be a constant known before running, but it is computed on the GPU` +
      (gpuProducer ? ` (by node '${gpuProducer}')` : ""),
  );
}
