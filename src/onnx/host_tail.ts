/** The host tail of a graph: operators whose output shapes depend on input values
 * (NonMaxSuppression: how many boxes it keeps depends on the scores) cannot run inside a GPU
 * plan, which fixes every shape before running. Such a node and everything downstream of it
 * run on the host after the GPU part, with the operators' CPU implementations, the way detection
 * models end (backbone and heads on the GPU, NMS on the selected few thousand boxes).
 *
 * `splitHostTail` cuts the graph: the GPU part's outputs are the original outputs it produces
 * plus every value the tail reads from it; `runHostTail` evaluates the tail from those. */
import type { CpuTensor } from "../util/tensor.ts";
import type { Graph, ValueDecl } from "./graph.ts";
import { opContext } from "./analyze.ts";
import { onNode } from "./ops/common.ts";
import type { OnnxNode, OpImpl } from "./types.ts";

export interface HostTail {
  /** Tail nodes in execution order (empty: the whole graph runs on the GPU). */
  readonly nodes: readonly OnnxNode[];
  /** The graph's declared outputs (the GPU part's are different when there is a tail). */
  readonly outputs: readonly ValueDecl[];
}

/** The GPU part of `graph` and its host tail. */
export function splitHostTail(
  graph: Graph,
  ops: ReadonlyMap<string, OpImpl>,
): { gpuGraph: Graph; tail: HostTail } {
  const tailOutputs = new Set<string>();
  const tailNodes: OnnxNode[] = [];
  for (const node of graph.nodes) {
    const op = ops.get(node.opType);
    const downstream = node.inputs.some((i) => tailOutputs.has(i));
    if (!op?.hostTail && !downstream) continue;
    tailNodes.push(node);
    for (const o of node.outputs) if (o) tailOutputs.add(o);
  }
  if (tailNodes.length === 0) {
    return { gpuGraph: graph, tail: { nodes: [], outputs: graph.outputs } };
  }
  const inTail = new Set(tailNodes);
  const gpuNodes = graph.nodes.filter((n) => !inTail.has(n));
  const produced = new Set(gpuNodes.flatMap((n) => n.outputs));
  // What the tail reads from the GPU part, in first-use order.
  const needed = new Set<string>();
  for (const n of tailNodes) {
    for (const i of n.inputs) if (i && produced.has(i)) needed.add(i);
  }
  const gpuOutputs: ValueDecl[] = graph.outputs.filter((o) => !tailOutputs.has(o.name));
  for (const name of needed) {
    if (!gpuOutputs.some((o) => o.name === name)) {
      gpuOutputs.push({ name, dtype: "float32", typeName: "unknown" });
    }
  }
  return {
    gpuGraph: { ...graph, nodes: gpuNodes, outputs: gpuOutputs },
    tail: { nodes: tailNodes, outputs: graph.outputs },
  };
}

/** Runs the tail on the host from the graph's inputs, constants and the GPU part's outputs;
 * returns the graph's declared outputs. */
export function runHostTail(
  graph: Graph,
  tail: HostTail,
  ops: ReadonlyMap<string, OpImpl>,
  inputs: Record<string, CpuTensor>,
  gpuOutputs: Record<string, CpuTensor>,
): Record<string, CpuTensor> {
  const values = new Map<string, CpuTensor>([
    ...graph.constants,
    ...Object.entries(inputs),
    ...Object.entries(gpuOutputs),
  ]);
  for (const node of tail.nodes) {
    const op = ops.get(node.opType)!;
    const args = node.inputs.map((i) => (i ? values.get(i) : undefined));
    const outs = onNode(node, () => op.cpu(opContext(graph, node), args), "cpu");
    node.outputs.forEach((o, k) => {
      if (o) values.set(o, outs[k]);
    });
  }
  const result: Record<string, CpuTensor> = {};
  for (const o of tail.outputs) result[o.name] = values.get(o.name)!;
  return result;
}
