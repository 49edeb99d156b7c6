/** Load-time fusion: node patterns that exporters write out op by op become one engine operator
 * (domain "engine"), so that they run as one kernel instead of several elementwise passes, each
 * with its own dispatch and a round trip of the tensor through memory:
 *  - a decomposed LayerNorm (ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div, Mul scale,
 *    Add bias: how torch.onnx writes nn.LayerNorm before opset 17) -> `LayerNormalization`;
 *  - MatMul followed by the Add of a constant 1-D bias (a Linear layer) -> `FusedMatMul` with a
 *    bias, and a ReLU or QuickGELU (x * sigmoid(1.702 x), CLIP's activation) after it -> its
 *    activation, and exact GELU (its erf form, or an ONNX `Gelu`) after it -> "gelu"; the
 *    erf form elsewhere -> one `Gelu` node;
 *  - Conv followed by Relu -> `FusedConv` with activation "relu";
 *  - scaled dot-product attention (MatMul(q, k^T) -> scale -> Add mask? -> Softmax -> MatMul(., v),
 *    with the head split/merge Transposes around it) -> one `Attention` (src/onnx/ops/attention.ts).
 * Measured on the full-size CLIP text encoder at batch 1 on llvmpipe: 579 dispatches -> ~300.
 *
 * A pattern is fused only where its intermediate values are used by nothing else (and are not
 * graph outputs) and its constants have the expected values, so the result is the same function
 * up to float32 rounding (the fused kernels sum in another order). `ModelOptions.fuse: false`
 * keeps the graph as written. */
import type { CpuTensor } from "../util/tensor.ts";
import type { Graph } from "./graph.ts";
import { type AttrValue, ENGINE_DOMAIN, type OnnxNode } from "./types.ts";

/** What fusion did, for reports and tests. */
export interface FusionSummary {
  readonly layerNorms: number;
  readonly biases: number;
  readonly activations: number;
  readonly convRelus: number;
  /** Attention patterns fused (present only when some were, so summaries of graphs without
   * attention read as before). */
  readonly attentions?: number;
}

/** Index of the graph for matching: who consumes each value, and the known constants. */
class Index {
  readonly consumers = new Map<string, number[]>();
  readonly producer = new Map<string, number>();
  readonly outputs: ReadonlySet<string>;

  constructor(readonly nodes: readonly OnnxNode[], readonly graph: Graph) {
    this.outputs = new Set(graph.outputs.map((o) => o.name));
    nodes.forEach((n, i) => {
      for (const v of n.inputs) {
        if (v !== "") this.consumers.set(v, [...(this.consumers.get(v) ?? []), i]);
      }
      for (const v of n.outputs) if (v !== "") this.producer.set(v, i);
    });
  }

  /** The nodes reading `value` (each once per input slot). */
  readers(value: string): OnnxNode[] {
    return (this.consumers.get(value) ?? []).map((i) => this.nodes[i]);
  }

  /** The single node reading `value` (and nothing else, not a graph output), if it is `opType`. */
  soleReader(value: string, opType: string): OnnxNode | undefined {
    const r = this.consumers.get(value) ?? [];
    if (r.length !== 1 || this.outputs.has(value)) return undefined;
    const n = this.nodes[r[0]];
    return n.opType === opType && n.domain === "" ? n : undefined;
  }

  constant(value: string): CpuTensor | undefined {
    return this.graph.constants.get(value);
  }

  /** The value of a one-element constant. */
  scalar(value: string): number | undefined {
    const c = this.constant(value);
    return c && c.data.length === 1 ? Number(c.data[0]) : undefined;
  }
}

/** The other input of a two-input node, given one of them. */
function other(node: OnnxNode, value: string): string | undefined {
  if (node.inputs.length !== 2) return undefined;
  if (node.inputs[0] === value) return node.inputs[1];
  if (node.inputs[1] === value) return node.inputs[0];
  return undefined;
}

function close(a: number | undefined, b: number, tol = 1e-6): boolean {
  return a !== undefined && Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
}

/** A ReduceMean over the last axis only, keeping it (how nn.LayerNorm exports). */
function isLastAxisMean(node: OnnxNode, index: Index): boolean {
  if (node.opType !== "ReduceMean" || node.domain !== "") return false;
  const keep = node.attrs.get("keepdims");
  if (keep !== undefined && keep !== 1) return false;
  let axes: readonly number[] | undefined;
  const attr = node.attrs.get("axes");
  if (Array.isArray(attr)) axes = attr as number[];
  else if (node.inputs[1]) {
    const c = index.constant(node.inputs[1]);
    axes = c ? Array.from(c.data as ArrayLike<number>, Number) : undefined;
  }
  return axes !== undefined && axes.length === 1 && axes[0] === -1;
}

function engineNode(
  name: string,
  opType: string,
  inputs: string[],
  output: string,
  attrs: Record<string, AttrValue>,
): OnnxNode {
  return {
    name,
    opType,
    domain: ENGINE_DOMAIN,
    inputs,
    outputs: [output],
    attrs: new Map(Object.entries(attrs)),
  };
}

/** A match: nodes to drop and the node that replaces the last of them. */
interface Rewrite {
  readonly remove: readonly OnnxNode[];
  readonly node: OnnxNode;
}

/** Applies `match` at every node (in order; nodes already rewritten are skipped). */
function rewrite(
  nodes: readonly OnnxNode[],
  graph: Graph,
  match: (node: OnnxNode, index: Index) => Rewrite | undefined,
): { nodes: OnnxNode[]; count: number } {
  const index = new Index(nodes, graph);
  const gone = new Set<OnnxNode>();
  const replace = new Map<OnnxNode, OnnxNode>();
  let count = 0;
  for (const node of nodes) {
    if (gone.has(node)) continue;
    const r = match(node, index);
    if (!r || r.remove.some((n) => gone.has(n))) continue;
    // The fused node takes the place of the pattern's last node: its inputs exist before the
    // pattern's first node, and its output's readers all come after the last.
    const last = r.remove.reduce((a, b) => (nodes.indexOf(a) > nodes.indexOf(b) ? a : b));
    for (const n of r.remove) gone.add(n);
    replace.set(last, r.node);
    count++;
  }
  const out: OnnxNode[] = [];
  for (const n of nodes) {
    const r = replace.get(n);
    if (r) out.push(r);
    else if (!gone.has(n)) out.push(n);
  }
  return { nodes: out, count };
}

/** ReduceMean -> Sub -> Pow 2 -> ReduceMean -> Add eps -> Sqrt -> Div -> Mul scale -> Add bias. */
function matchLayerNorm(mean: OnnxNode, ix: Index): Rewrite | undefined {
  if (!isLastAxisMean(mean, ix)) return undefined;
  const x = mean.inputs[0];
  const sub = ix.soleReader(mean.outputs[0], "Sub");
  if (!sub || sub.inputs[0] !== x || sub.inputs[1] !== mean.outputs[0]) return undefined;
  const centred = sub.outputs[0];
  const readers = ix.readers(centred);
  if (readers.length !== 2 || ix.outputs.has(centred)) return undefined;
  const pow = readers.find((n) => n.opType === "Pow");
  const div = readers.find((n) => n.opType === "Div");
  if (!pow || !div || pow.inputs[0] !== centred || !close(ix.scalar(pow.inputs[1]), 2)) {
    return undefined;
  }
  const varMean = ix.soleReader(pow.outputs[0], "ReduceMean");
  if (!varMean || !isLastAxisMean(varMean, ix)) return undefined;
  const addEps = ix.soleReader(varMean.outputs[0], "Add");
  const eps = addEps && ix.scalar(other(addEps, varMean.outputs[0]) ?? "");
  if (!addEps || eps === undefined || !(eps >= 0)) return undefined;
  const sqrt = ix.soleReader(addEps.outputs[0], "Sqrt");
  if (!sqrt || div.inputs[0] !== centred || div.inputs[1] !== sqrt.outputs[0]) return undefined;
  if (ix.soleReader(sqrt.outputs[0], "Div") !== div) return undefined;
  const mul = ix.soleReader(div.outputs[0], "Mul");
  const scale = mul && other(mul, div.outputs[0]);
  if (!mul || !scale || ix.constant(scale)?.shape.length !== 1) return undefined;
  const add = ix.soleReader(mul.outputs[0], "Add");
  const bias = add && other(add, mul.outputs[0]);
  if (!add || !bias || ix.constant(bias)?.shape.length !== 1) return undefined;
  return {
    remove: [mean, sub, pow, varMean, addEps, sqrt, div, mul, add],
    node: engineNode(
      `${add.name}/layernorm`,
      "LayerNormalization",
      [x, scale, bias],
      add.outputs[0],
      {
        axis: -1,
        epsilon: eps,
      },
    ),
  };
}

/** MatMul(A, W) -> Add(., b), b a constant [N] and W a constant [..., N] (a Linear layer). */
function matchBias(mm: OnnxNode, ix: Index): Rewrite | undefined {
  if (mm.opType !== "MatMul" || mm.domain !== "") return undefined;
  const w = ix.constant(mm.inputs[1]);
  const add = ix.soleReader(mm.outputs[0], "Add");
  const bias = add && other(add, mm.outputs[0]);
  const b = bias ? ix.constant(bias) : undefined;
  if (!add || !bias || !w || !b || b.shape.length !== 1 || w.shape.length < 2) return undefined;
  if (b.shape[0] !== w.shape[w.shape.length - 1] || b.dtype !== w.dtype) return undefined;
  return {
    remove: [mm, add],
    node: engineNode(`${add.name}/linear`, "FusedMatMul", [...mm.inputs, bias], add.outputs[0], {
      activation: "none",
    }),
  };
}

/** (Fused)MatMul -> Relu, or -> QuickGELU: Mul(x, Sigmoid(Mul(x, 1.702))). */
function matchActivation(mm: OnnxNode, ix: Index): Rewrite | undefined {
  const fused = mm.domain === ENGINE_DOMAIN && mm.opType === "FusedMatMul";
  if (!fused && !(mm.domain === "" && mm.opType === "MatMul")) return undefined;
  if (fused && mm.attrs.get("activation") !== "none") return undefined;
  const x = mm.outputs[0];
  const as = (activation: string, remove: OnnxNode[], out: string): Rewrite => ({
    remove: [mm, ...remove],
    node: engineNode(
      `${mm.name}/${activation}`,
      "FusedMatMul",
      [...mm.inputs],
      out,
      { activation },
    ),
  });
  const relu = ix.soleReader(x, "Relu");
  if (relu) return as("relu", [relu], relu.outputs[0]);
  const readers = ix.readers(x);
  if (readers.length !== 2 || ix.outputs.has(x)) return undefined;
  const scaled = readers.find((n) =>
    n.opType === "Mul" && n.domain === "" && close(ix.scalar(other(n, x) ?? ""), 1.702, 1e-4)
  );
  if (!scaled) return undefined;
  const sigmoid = ix.soleReader(scaled.outputs[0], "Sigmoid");
  const gate = readers.find((n) => n !== scaled);
  if (
    !sigmoid || !gate || gate.opType !== "Mul" || gate.domain !== "" ||
    other(gate, x) !== sigmoid.outputs[0] || ix.soleReader(sigmoid.outputs[0], "Mul") !== gate
  ) {
    return undefined;
  }
  return as("quick_gelu", [scaled, sigmoid, gate], gate.outputs[0]);
}

/** GELU written out with Erf, as exporters do for exact GELU (torch.onnx before opset 20, HF
 * models): x / sqrt(2) (or x * (1 / sqrt(2))) -> Erf -> Add 1, then times x and 0.5 in any of
 * the arrangements x * (1 + e) * 0.5, x * (0.5 * (1 + e)) and (x * 0.5) * (1 + e). Returns the
 * pattern's nodes (not x's producer) and its output, where every intermediate is private. */
function erfGelu(x: string, ix: Index): { remove: OnnxNode[]; out: string } | undefined {
  const readers = ix.readers(x);
  if (readers.length !== 2 || ix.outputs.has(x)) return undefined;
  const isOp = (n: OnnxNode | undefined, op: string) => n?.opType === op && n.domain === "";
  const times = (n: OnnxNode | undefined, v: string, k: number) =>
    isOp(n, "Mul") && close(ix.scalar(other(n!, v) ?? ""), k, 1e-4);
  const scale = readers.find((n) =>
    (isOp(n, "Div") && n.inputs[0] === x && close(ix.scalar(n.inputs[1]), Math.SQRT2, 1e-4)) ||
    times(n, x, Math.SQRT1_2)
  );
  const gate = readers.find((n) => n !== scale);
  if (!scale || !gate || !isOp(gate, "Mul")) return undefined;
  const erf = ix.soleReader(scale.outputs[0], "Erf");
  const add = erf && ix.soleReader(erf.outputs[0], "Add");
  if (!erf || !add || !close(ix.scalar(other(add, erf.outputs[0]) ?? ""), 1)) return undefined;
  const onePlus = add.outputs[0];
  const next = ix.soleReader(onePlus, "Mul");
  if (!next) return undefined;
  const common = [scale, erf, add];
  if (next === gate) {
    // x * (1 + e), then * 0.5
    const half = ix.soleReader(gate.outputs[0], "Mul");
    return times(half, gate.outputs[0], 0.5)
      ? { remove: [...common, gate, half!], out: half!.outputs[0] }
      : undefined;
  }
  if (times(next, onePlus, 0.5)) {
    // 0.5 * (1 + e), then * x
    return other(gate, x) === next.outputs[0] && ix.soleReader(next.outputs[0], "Mul") === gate
      ? { remove: [...common, next, gate], out: gate.outputs[0] }
      : undefined;
  }
  // (x * 0.5) * (1 + e)
  return times(gate, x, 0.5) && other(next, onePlus) === gate.outputs[0] &&
      ix.soleReader(gate.outputs[0], "Mul") === next
    ? { remove: [...common, gate, next], out: next.outputs[0] }
    : undefined;
}

/** (Fused)MatMul -> exact GELU (the erf form above, or an ONNX `Gelu` with approximate "none")
 * -> `FusedMatMul` with activation "gelu" (the matmul epilogue's erf GELU). */
function matchMatmulGelu(mm: OnnxNode, ix: Index): Rewrite | undefined {
  const fused = mm.domain === ENGINE_DOMAIN && mm.opType === "FusedMatMul";
  if (!fused && !(mm.domain === "" && mm.opType === "MatMul")) return undefined;
  if (fused && mm.attrs.get("activation") !== "none") return undefined;
  const gelu = ix.soleReader(mm.outputs[0], "Gelu");
  const exact = gelu && (gelu.attrs.get("approximate") ?? "none") === "none";
  const found = exact
    ? { remove: [gelu], out: gelu.outputs[0] }
    : gelu
    ? undefined
    : erfGelu(mm.outputs[0], ix);
  if (!found) return undefined;
  return {
    remove: [mm, ...found.remove],
    node: engineNode(`${mm.name}/gelu`, "FusedMatMul", [...mm.inputs], found.out, {
      activation: "gelu",
    }),
  };
}

/** The erf form of GELU after anything else -> one ONNX `Gelu` node (one elementwise pass
 * instead of five), matched at its Erf. */
function matchErfGelu(erf: OnnxNode, ix: Index): Rewrite | undefined {
  if (erf.opType !== "Erf" || erf.domain !== "") return undefined;
  const scale = ix.producer.get(erf.inputs[0]);
  const scaleNode = scale === undefined ? undefined : ix.nodes[scale];
  const x = scaleNode?.inputs.find((v) => ix.constant(v) === undefined);
  const found = x === undefined ? undefined : erfGelu(x, ix);
  if (!found || !found.remove.includes(erf)) return undefined;
  return {
    remove: found.remove,
    node: {
      name: `${erf.name}/gelu`,
      opType: "Gelu",
      domain: "",
      inputs: [x!],
      outputs: [found.out],
      attrs: new Map<string, AttrValue>([["approximate", "none"]]),
    },
  };
}

/** Conv -> Relu. */
function matchConvRelu(conv: OnnxNode, ix: Index): Rewrite | undefined {
  if (conv.opType !== "Conv" || conv.domain !== "" || conv.outputs.length !== 1) return undefined;
  const relu = ix.soleReader(conv.outputs[0], "Relu");
  if (!relu) return undefined;
  return {
    remove: [conv, relu],
    node: {
      ...conv,
      name: `${conv.name}/relu`,
      domain: ENGINE_DOMAIN,
      opType: "FusedConv",
      outputs: relu.outputs,
      attrs: new Map([...conv.attrs, ["activation", "relu"]]),
    },
  };
}

/** The producer of `value` when it is a default-domain `opType` whose output only `reader` reads
 * (not a graph output). */
function privateProducer(
  value: string,
  opType: string,
  reader: OnnxNode,
  ix: Index,
): OnnxNode | undefined {
  const i = ix.producer.get(value);
  const n = i === undefined ? undefined : ix.nodes[i];
  if (!n || n.opType !== opType || n.domain !== "") return undefined;
  return ix.soleReader(value, reader.opType) === reader ? n : undefined;
}

/** A Mul by, or Div by, a one-element constant producing `value` for `reader` alone: the
 * factor and the other operand. */
function scaledBy(
  value: string,
  reader: OnnxNode,
  ix: Index,
): { node: OnnxNode; factor: number; x: string } | undefined {
  const mul = privateProducer(value, "Mul", reader, ix);
  if (mul) {
    for (const [x, c] of [[mul.inputs[0], mul.inputs[1]], [mul.inputs[1], mul.inputs[0]]]) {
      const f = ix.scalar(c);
      if (f !== undefined && ix.constant(x) === undefined) return { node: mul, factor: f, x };
    }
  }
  const div = privateProducer(value, "Div", reader, ix);
  const f = div && ix.scalar(div.inputs[1]);
  if (div && f !== undefined && f !== 0) return { node: div, factor: 1 / f, x: div.inputs[0] };
  return undefined;
}

/** A Transpose producing `value` for `reader` alone (rank 2 to 4): its perm and input. */
function transposedBy(value: string, reader: OnnxNode, ix: Index) {
  const t = privateProducer(value, "Transpose", reader, ix);
  const perm = t?.attrs.get("perm");
  if (!t || !Array.isArray(perm) || perm.length < 2 || perm.length > 4) return undefined;
  return { node: t, perm: perm as number[], x: t.inputs[0] };
}

/** Scaled dot-product attention, matched at its Softmax over the last axis:
 *   [Transpose] q -> [Mul/Div c] -> MatMul(., [Mul/Div c] <- [Transpose] k) -> [Mul/Div c]
 *   -> [Add mask] -> Softmax -> MatMul(., [Transpose] v) -> [Transpose]
 * (how torch.onnx writes nn.MultiheadAttention and CLIP's attention pool, and how
 * src/models/arch builds them) -> engine.Attention with the transposes as perms and the
 * constant factors multiplied into its scale. */
function matchAttention(softmax: OnnxNode, ix: Index): Rewrite | undefined {
  if (softmax.opType !== "Softmax" || softmax.domain !== "") return undefined;
  const opset = ix.graph.opsets.get("") ?? 1;
  if ((softmax.attrs.get("axis") ?? (opset >= 13 ? -1 : 1)) !== -1) return undefined;
  const pv = ix.soleReader(softmax.outputs[0], "MatMul");
  if (!pv || pv.inputs[0] !== softmax.outputs[0] || pv.inputs[1] === pv.inputs[0]) {
    return undefined;
  }
  const remove: OnnxNode[] = [softmax, pv];
  let scale = 1;
  // Scores: [Add mask] <- [Mul/Div c] <- MatMul.
  let scores = softmax.inputs[0];
  let reader = softmax;
  let mask: string | undefined;
  const add = privateProducer(scores, "Add", softmax, ix);
  if (add) {
    const fromMatmul = (v: string) => {
      const i = ix.producer.get(v);
      const op = i === undefined ? "" : ix.nodes[i].opType;
      return op === "MatMul" || op === "Mul" || op === "Div";
    };
    const [a, b] = add.inputs;
    const scoresFirst = fromMatmul(a) && !(fromMatmul(b) && ix.constant(a) !== undefined);
    [scores, mask] = scoresFirst ? [a, b] : [b, a];
    if (!fromMatmul(scores)) return undefined;
    remove.push(add);
    reader = add;
  }
  const post = scaledBy(scores, reader, ix);
  if (post) {
    scale *= post.factor;
    scores = post.x;
    remove.push(post.node);
    reader = post.node;
  }
  const qk = privateProducer(scores, "MatMul", reader, ix);
  if (!qk) return undefined;
  remove.push(qk);
  // q and k (as k^T), each behind an optional factor and an optional Transpose.
  const operand = (value: string) => {
    let consumer = qk;
    const s = scaledBy(value, consumer, ix);
    if (s) {
      scale *= s.factor;
      value = s.x;
      consumer = s.node;
      remove.push(s.node);
    }
    const t = transposedBy(value, consumer, ix);
    if (t) remove.push(t.node);
    return t ? { x: t.x, perm: t.perm } : { x: value };
  };
  const q = operand(qk.inputs[0]);
  const k = operand(qk.inputs[1]);
  const tv = transposedBy(pv.inputs[1], pv, ix);
  if (tv) remove.push(tv.node);
  const v = tv ? { x: tv.x, perm: tv.perm } : { x: pv.inputs[1] };
  let out = pv.outputs[0];
  let outPerm: number[] | undefined;
  const readers = ix.readers(out);
  const t = readers.length === 1 && !ix.outputs.has(out) ? readers[0] : undefined;
  const perm = t?.attrs.get("perm");
  if (
    t && t.opType === "Transpose" && t.domain === "" && Array.isArray(perm) &&
    perm.length >= 2 && perm.length <= 4
  ) {
    outPerm = perm as number[];
    out = t.outputs[0];
    remove.push(t);
  }
  const attrs: Record<string, AttrValue> = { scale };
  if (q.perm) attrs.q_perm = q.perm;
  if (k.perm) attrs.k_perm = k.perm;
  if (v.perm) attrs.v_perm = v.perm;
  if (outPerm) attrs.out_perm = outPerm;
  const inputs = [q.x, k.x, v.x, ...(mask ? [mask] : [])];
  return { remove, node: engineNode(`${pv.name}/attention`, "Attention", inputs, out, attrs) };
}

/** The graph with the patterns above fused, and what was fused. */
export function fuseGraph(graph: Graph): { graph: Graph; summary: FusionSummary } {
  let nodes = [...graph.nodes];
  const ln = rewrite(nodes, graph, matchLayerNorm);
  nodes = ln.nodes;
  const bias = rewrite(nodes, graph, matchBias);
  nodes = bias.nodes;
  const act = rewrite(nodes, graph, matchActivation);
  nodes = act.nodes;
  // Exact GELU: into the matmul before it, else into one Gelu node (counted as activations).
  const gelu = rewrite(nodes, graph, matchMatmulGelu);
  nodes = gelu.nodes;
  const erfGelus = rewrite(nodes, graph, matchErfGelu);
  nodes = erfGelus.nodes;
  const conv = rewrite(nodes, graph, matchConvRelu);
  nodes = conv.nodes;
  const attention = rewrite(nodes, graph, matchAttention);
  nodes = attention.nodes;
  return {
    graph: { ...graph, nodes },
    summary: {
      layerNorms: ln.count,
      biases: bias.count,
      activations: act.count + gelu.count + erfGelus.count,
      convRelus: conv.count,
      ...(attention.count > 0 ? { attentions: attention.count } : {}),
    },
  };
}
