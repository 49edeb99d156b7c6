/** Writes ONNX models from TypeScript: the project generates its demo encoders with it, and tests
 * build small graphs with it. Nodes are added in order; names are generated where not given. */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import type { CpuTensor, DType } from "../gpu/mod.ts";
import { onnxTypeOf, tensorToProto } from "./tensor_proto.ts";

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

export class GraphBuilder {
  #nodes: OnnxTypes.INodeProto[] = [];
  #initializers: OnnxTypes.ITensorProto[] = [];
  #inputs: OnnxTypes.IValueInfoProto[] = [];
  #outputs: OnnxTypes.IValueInfoProto[] = [];
  #counter = 0;

  constructor(readonly name = "graph", readonly opset = 17) {}

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.#counter++}`;
  }

  input(name: string, dtype: DType, shape: readonly Dim[]): string {
    this.#inputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  output(name: string, dtype: DType, shape: readonly Dim[]): void {
    this.#outputs.push(valueInfo(name, dtype, shape));
  }

  /** Adds an initializer; returns its name. */
  constant(prefix: string, t: CpuTensor): string {
    const name = this.fresh(prefix);
    this.#initializers.push(tensorToProto(name, t));
    return name;
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
    this.#nodes.push(onnx.NodeProto.create({
      name: `${opType}_${this.#nodes.length}`,
      opType,
      input: [...inputs],
      output: [...outputs],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    }));
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
        node: this.#nodes,
        initializer: this.#initializers,
        input: this.#inputs,
        output: this.#outputs,
      }),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, dtype: DType, shape: readonly Dim[]): OnnxTypes.IValueInfoProto {
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
