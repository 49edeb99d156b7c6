/** Writes ONNX graphs from TypeScript: the demo encoders, the architectures built from checkpoint
 * weights (src/models/arch/) and tests' small graphs. Nodes are added in order; names are
 * generated where not given. */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import type { CpuTensor, DType } from "../util/tensor.ts";
import { onnxTypeOf, tensorToProto } from "./tensor_proto.ts";
import { checkSupported, removeDeadNodes, topoSort, type ValueDecl } from "./graph.ts";
import type { ParsedModel } from "./parse.ts";
import type { AttrValue, OnnxNode, OpImpl } from "./types.ts";

const { onnx } = onnxProto;

/** Attribute values: integers must be given as `{ int: n }` / `{ ints: [...] }` when a float
 * would be ambiguous; plain numbers are written as floats unless integral. */
export type BuilderAttr =
  | number
  | string
  | number[]
  | { int: number }
  | { float: number }
  | { ints: number[] }
  | { floats: number[] }
  | CpuTensor;

/** A dimension: a size, or a symbolic name (dynamic axis such as `batch`). */
export type Dim = number | string;

/** A node as recorded, before it is written as a NodeProto or handed to the engine. */
interface BuiltNode {
  readonly name: string;
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, BuilderAttr>>;
}

interface BuiltValue {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly Dim[];
}

/** Records a graph once and gives it two ways: as ModelProto bytes (`encode`, for files and
 * export) or as the engine's graph IR (`toParsedModel`, no serialisation and no copy of the
 * weights: the constants are the caller's tensors). */
export class GraphBuilder {
  #nodes: BuiltNode[] = [];
  #constants = new Map<string, CpuTensor>();
  #inputs: BuiltValue[] = [];
  #outputs: BuiltValue[] = [];
  #counter = 0;

  constructor(readonly name = "graph", readonly opset = 17) {}

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.#counter++}`;
  }

  input(name: string, dtype: DType, shape: readonly Dim[]): string {
    this.#inputs.push({ name, dtype, shape: [...shape] });
    return name;
  }

  output(name: string, dtype: DType, shape: readonly Dim[]): void {
    this.#outputs.push({ name, dtype, shape: [...shape] });
  }

  /** Adds an initializer under a fresh name made from `prefix`; returns its name. */
  constant(prefix: string, t: CpuTensor): string {
    const name = this.fresh(prefix);
    this.#constants.set(name, t);
    return name;
  }

  /** Adds an initializer under exactly `name` (a checkpoint key, say) unless that name is taken,
   * in which case a fresh one is made from it; returns the name used. */
  namedConstant(name: string, t: CpuTensor): string {
    const used = this.#constants.has(name) ? this.fresh(name) : name;
    this.#constants.set(used, t);
    return used;
  }

  /** Adds a node with one output (named `out` or generated); returns the output name. */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, BuilderAttr> = {},
    out?: string,
  ): string {
    const output = out ?? this.fresh(opType.toLowerCase());
    this.opMulti(opType, inputs, [output], attrs);
    return output;
  }

  /** Adds a node with several outputs. */
  opMulti(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs: Record<string, BuilderAttr> = {},
  ): readonly string[] {
    this.#nodes.push({
      name: `${opType}_${this.#nodes.length}`,
      opType,
      inputs: [...inputs],
      outputs: [...outputs],
      attrs: { ...attrs },
    });
    return outputs;
  }

  /** The serialised ModelProto. */
  encode(producer = "clip-webgpu builder"): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: producer,
      opsetImport: [{ domain: "", version: this.opset }],
      graph: onnx.GraphProto.create({
        name: this.name,
        node: this.#nodes.map((n) =>
          onnx.NodeProto.create({
            name: n.name,
            opType: n.opType,
            input: [...n.inputs],
            output: [...n.outputs],
            attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
          })
        ),
        initializer: [...this.#constants].map(([name, t]) => tensorToProto(name, t)),
        input: this.#inputs.map(valueInfo),
        output: this.#outputs.map(valueInfo),
      }),
    });
    return onnx.ModelProto.encode(model).finish();
  }

  /** The graph as the engine loads it (what `parseModel` would make of `encode()`'s bytes),
   * with the same structural checks: ordering, dead nodes, supported operators. */
  toParsedModel(
    source: string,
    ops: ReadonlyMap<string, OpImpl>,
    producer = "clip-webgpu builder",
  ): ParsedModel {
    const available = new Set<string>([
      ...this.#inputs.map((v) => v.name),
      ...this.#constants.keys(),
    ]);
    const nodes: OnnxNode[] = this.#nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: "",
      inputs: n.inputs,
      outputs: n.outputs,
      attrs: new Map(Object.entries(n.attrs).map(([k, v]) => [k, attrValue(v)])),
    }));
    const sorted = topoSort(source, nodes, available);
    const live = removeDeadNodes(sorted, this.#outputs.map((o) => o.name));
    checkSupported(source, live, ops);
    const decl = (v: BuiltValue): ValueDecl => ({
      name: v.name,
      dtype: v.dtype,
      typeName: v.dtype,
      dims: v.shape,
    });
    return {
      source,
      irVersion: 8,
      producer,
      graph: {
        name: this.name,
        nodes: live,
        inputs: this.#inputs.map(decl),
        outputs: this.#outputs.map(decl),
        constants: new Map(this.#constants),
        opsets: new Map([["", this.opset]]),
        opTypes: this.#nodes.map((n) => n.opType),
      },
    };
  }
}

/** The engine's attribute value for a builder attribute. */
function attrValue(v: BuilderAttr): AttrValue {
  if (typeof v === "number" || typeof v === "string" || Array.isArray(v)) return v;
  if ("int" in v) return v.int;
  if ("float" in v) return v.float;
  if ("ints" in v) return v.ints;
  if ("floats" in v) return v.floats;
  return v;
}

function valueInfo({ name, dtype, shape }: BuiltValue): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnxTypeOf(dtype),
        shape: { dim: shape.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }) },
      },
    },
  };
}

const AttrType = onnx.AttributeProto.AttributeType;

function attribute(name: string, v: BuilderAttr): OnnxTypes.IAttributeProto {
  if (typeof v === "string") {
    return { name, type: AttrType.STRING, s: new TextEncoder().encode(v) };
  }
  if (typeof v === "number") {
    return Number.isInteger(v)
      ? { name, type: AttrType.INT, i: v }
      : { name, type: AttrType.FLOAT, f: v };
  }
  if (Array.isArray(v)) {
    return v.every(Number.isInteger)
      ? { name, type: AttrType.INTS, ints: v }
      : { name, type: AttrType.FLOATS, floats: v };
  }
  if ("int" in v) return { name, type: AttrType.INT, i: v.int };
  if ("float" in v) return { name, type: AttrType.FLOAT, f: v.float };
  if ("ints" in v) return { name, type: AttrType.INTS, ints: v.ints };
  if ("floats" in v) return { name, type: AttrType.FLOATS, floats: v.floats };
  return { name, type: AttrType.TENSOR, t: tensorToProto(name, v) };
}
