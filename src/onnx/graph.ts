/** Graph IR: the nodes of a model in execution order, its inputs, outputs and constants, and the
 * structural checks done once at load (ordering, cycles, dead nodes, unsupported operators). */
import { type CpuTensor, type DType } from "../util/tensor.ts";
import { EngineError, type EngineErrorOptions } from "../util/errors.ts";
import type { OnnxNode, OpImpl } from "./types.ts";

/** The part of a node the structural passes need (parsed nodes before attribute decoding). */
export interface NodeLike {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

/** `where: ` as a message prefix (nothing when `where` is empty). */
function at(where: string): string {
  return where ? `${where}: ` : "";
}

/** A declared graph input or output. `dims` holds numbers for fixed sizes and strings for
 * symbolic ones (`batch`); undefined when the file gives no shape. */
export interface ValueDecl {
  readonly name: string;
  readonly dtype: DType;
  /** The element type the file declares (`float32`, `float64`...), for messages. */
  readonly typeName: string;
  readonly dims?: readonly (number | string | undefined)[];
}

/** A parsed model graph, nodes already sorted, dead nodes removed, operators checked. */
export interface Graph {
  readonly name: string;
  /** Nodes in execution order. */
  readonly nodes: readonly OnnxNode[];
  /** Inputs the caller provides (declared inputs that are not initializers). */
  readonly inputs: readonly ValueDecl[];
  readonly outputs: readonly ValueDecl[];
  /** Initializers and values folded from them at load time. */
  readonly constants: ReadonlyMap<string, CpuTensor>;
  /** Opset version per domain ("" is the default ONNX domain). */
  readonly opsets: ReadonlyMap<string, number>;
  /** Op types of every node in the file (before folding and dead-node removal). */
  readonly opTypes: readonly string[];
}

/** A model the engine cannot run as a matter of scope (operators or element types it does not
 * implement), as opposed to a broken file or a bug. */
export class UnsupportedError extends EngineError {
  constructor(message: string, options?: EngineErrorOptions) {
    super(message, options);
    this.name = "UnsupportedError";
  }
}

/** Thrown when a model uses operators the engine does not implement; lists them all. */
export class UnsupportedOperatorError extends UnsupportedError {
  constructor(
    readonly where: string,
    readonly unsupported: readonly { node: string; opType: string; domain: string }[],
  ) {
    const byOp = new Map<string, string[]>();
    for (const u of unsupported) {
      const key = u.domain ? `${u.domain}.${u.opType}` : u.opType;
      byOp.set(key, [...(byOp.get(key) ?? []), u.node]);
    }
    const lines = [...byOp].map(([op, nodes]) =>
      `  ${op}: ${nodes.slice(0, 8).map((n) => `'${n}'`).join(", ")}` +
      (nodes.length > 8 ? ` and ${nodes.length - 8} more` : "")
    );
    super(
      `${at(where)}${byOp.size} unsupported operator type(s) in ${unsupported.length} node(s):\n` +
        lines.join("\n"),
    );
    this.name = "UnsupportedOperatorError";
  }

  get opTypes(): string[] {
    return [...new Set(this.unsupported.map((u) => u.opType))];
  }
}

/** Thrown by an operator for a configuration the engine deliberately does not implement (e.g.
 * random training-mode Dropout), as opposed to invalid input; names the node. */
export class UnsupportedFeatureError extends UnsupportedError {
  constructor(node: { name: string; opType: string }, message: string) {
    super(`node '${node.name}' (${node.opType}): ${message}`);
    this.name = "UnsupportedFeatureError";
  }
}

/** Thrown when graph inputs or outputs have element types the engine has no dtype for. */
export class UnsupportedTypeError extends UnsupportedError {
  constructor(where: string, readonly problems: readonly string[]) {
    super(`${at(where)}unsupported value types:\n  ${problems.join("\n  ")}`);
    this.name = "UnsupportedTypeError";
  }
}

/** Thrown for structurally broken graphs (cycles, values nobody produces). */
export class GraphError extends EngineError {
  constructor(message: string) {
    super(message);
    this.name = "GraphError";
  }
}

const DEFAULT_DOMAINS = new Set(["", "ai.onnx"]);

export function isDefaultDomain(domain: string): boolean {
  return DEFAULT_DOMAINS.has(domain);
}

/** The implementation of a node's operator, or undefined when unsupported. Operators outside
 * the default domain are looked up as `<domain>.<opType>`. */
export function findOp(
  ops: ReadonlyMap<string, OpImpl>,
  node: { opType: string; domain: string },
): OpImpl | undefined {
  return ops.get(isDefaultDomain(node.domain) ? node.opType : `${node.domain}.${node.opType}`);
}

/** Lists every node whose operator is missing from `ops` and throws them all at once. */
export function checkSupported(
  where: string,
  nodes: readonly NodeLike[],
  ops: ReadonlyMap<string, OpImpl>,
): void {
  const missing = nodes.filter((n) => !findOp(ops, n)).map((n) => ({
    node: n.name,
    opType: n.opType,
    domain: isDefaultDomain(n.domain) ? "" : n.domain,
  }));
  if (missing.length > 0) throw new UnsupportedOperatorError(where, missing);
}

/** Orders nodes so each runs after the producers of its inputs. `available` are the values
 * present before any node runs (graph inputs and initializers). Throws GraphError naming the
 * nodes of a cycle, or a value that no node produces. */
export function topoSort<N extends NodeLike>(
  where: string,
  nodes: readonly N[],
  available: ReadonlySet<string>,
): N[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.outputs) {
      if (o === "") continue;
      if (producer.has(o) || available.has(o)) {
        throw new GraphError(`${at(where)}value '${o}' is produced twice (node '${n.name}')`);
      }
      producer.set(o, i);
    }
  });
  const deps: number[][] = nodes.map(() => []);
  const users: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => {
    for (const v of n.inputs) {
      if (v === "" || available.has(v)) continue;
      const p = producer.get(v);
      if (p === undefined) {
        throw new GraphError(
          `${at(where)}node '${n.name}' (${n.opType}) reads '${v}', which is neither a graph ` +
            `input, an initializer nor any node's output`,
        );
      }
      deps[i].push(p);
      users[p].push(i);
    }
  });
  const pending = deps.map((d) => d.length);
  // Kahn's algorithm, taking ready nodes in file order so already-sorted files keep their order.
  const ready: number[] = [];
  pending.forEach((c, i) => {
    if (c === 0) ready.push(i);
  });
  const order: number[] = [];
  const queue = new MinQueue(ready);
  while (queue.size > 0) {
    const i = queue.pop();
    order.push(i);
    for (const u of users[i]) if (--pending[u] === 0) queue.push(u);
  }
  if (order.length < nodes.length) {
    const cycle = findCycle(deps, pending);
    throw new GraphError(
      `${at(where)}the graph has a cycle through nodes ` +
        cycle.map((i) => `'${nodes[i].name}'`).join(" -> "),
    );
  }
  return order.map((i) => nodes[i]);
}

/** A cycle among nodes still pending after Kahn's algorithm (they all wait on each other). */
function findCycle(deps: readonly number[][], pending: readonly number[]): number[] {
  const start = pending.findIndex((c) => c > 0);
  // Walk backwards along pending dependencies until a node repeats.
  const seen = new Map<number, number>();
  const path: number[] = [];
  let cur = start;
  while (!seen.has(cur)) {
    seen.set(cur, path.length);
    path.push(cur);
    cur = deps[cur].find((d) => pending[d] > 0)!;
  }
  const cycle = path.slice(seen.get(cur)!).reverse();
  cycle.push(cycle[0]);
  return cycle;
}

/** Smallest-index-first queue (binary heap). */
class MinQueue {
  #heap: number[] = [];
  constructor(items: number[]) {
    for (const i of items) this.push(i);
  }
  get size(): number {
    return this.#heap.length;
  }
  push(v: number): void {
    const h = this.#heap;
    h.push(v);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p] <= h[i]) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  pop(): number {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && h[l] < h[m]) m = l;
        if (r < h.length && h[r] < h[m]) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}

/** Keeps only nodes (in the given order) whose outputs reach a graph output. */
export function removeDeadNodes<N extends NodeLike>(
  sorted: readonly N[],
  outputs: readonly string[],
): N[] {
  const needed = new Set(outputs);
  const keep: boolean[] = new Array(sorted.length).fill(false);
  for (let i = sorted.length - 1; i >= 0; i--) {
    const n = sorted[i];
    if (!n.outputs.some((o) => o !== "" && needed.has(o))) continue;
    keep[i] = true;
    for (const v of n.inputs) if (v !== "") needed.add(v);
  }
  return sorted.filter((_, i) => keep[i]);
}
