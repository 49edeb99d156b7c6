/** Loads an ONNX ModelProto into the engine's graph IR: initializers (raw, typed and external
 * data), declared inputs/outputs, nodes with decoded attributes, opsets per domain. */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import { dirname } from "node:path";
import { type CpuTensor } from "../util/tensor.ts";
import { EngineError, inSource } from "../util/errors.ts";
import { printable } from "../util/text.ts";
import { type AttrValue, NodeError, type OnnxNode, type OpImpl } from "./types.ts";
import {
  checkSupported,
  type Graph,
  GraphError,
  isDefaultDomain,
  type NodeLike,
  removeDeadNodes,
  topoSort,
  UnsupportedTypeError,
  type ValueDecl,
} from "./graph.ts";
import {
  engineDType,
  onnxTypeName,
  readTensorProto,
  type TensorReadOptions,
  toNumber,
} from "./tensor_proto.ts";

const { onnx } = onnxProto;
type ModelProto = OnnxTypes.ModelProto;
type INodeProto = OnnxTypes.INodeProto;
type IAttributeProto = OnnxTypes.IAttributeProto;
type IValueInfoProto = OnnxTypes.IValueInfoProto;

/** A model as loaded from a file, before any GPU work. */
/** The newest default-domain opset the engine is tested against (the ONNX conformance suite's
 * newest). A model importing a newer one still loads, with a warning (`opsetWarnings`). */
export const NEWEST_OPSET = 28;

/** Warnings about a model's opset imports: a default-domain opset newer than NEWEST_OPSET may
 * change operators in ways the engine does not know. */
export function opsetWarnings(source: string, opsets: ReadonlyMap<string, number>): string[] {
  const v = opsets.get("") ?? opsets.get("ai.onnx");
  if (v === undefined || v <= NEWEST_OPSET) return [];
  return [
    `warning: ${source} imports ONNX opset ${v}, newer than the newest this engine is tested ` +
    `against (${NEWEST_OPSET}); operators changed after opset ${NEWEST_OPSET} run with their ` +
    `opset-${NEWEST_OPSET} meaning`,
  ];
}

export interface ParsedModel {
  /** The file (or label) the model came from; errors name it. */
  readonly source: string;
  readonly graph: Graph;
  readonly irVersion: number;
  readonly producer: string;
}

export interface ParseOptions {
  /** Names the model in errors (the file path). */
  readonly source?: string;
  /** Folder external data is relative to (the model file's folder). */
  readonly baseDir?: string;
  /** Supported operators; every node is checked against them before anything runs. */
  readonly ops: ReadonlyMap<string, OpImpl>;
}

/** Reads and parses a `.onnx` file; external data is resolved next to it. */
export function loadModelFile(path: string, ops: ReadonlyMap<string, OpImpl>): ParsedModel {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "file not found" : String(e);
    throw new EngineError(`cannot read model ${path}: ${why}`);
  }
  return parseModel(bytes, { source: path, baseDir: dirname(path), ops });
}

/** Parses ModelProto bytes. Throws one EngineError naming the source for anything malformed. */
export function parseModel(bytes: Uint8Array, opts: ParseOptions): ParsedModel {
  const source = opts.source ?? "model";
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new EngineError(
      `not a valid ONNX model, the file is truncated or corrupt (${(e as Error).message})`,
      { source },
    );
  }
  if (!model.graph) {
    throw new EngineError("not a valid ONNX model (no graph; truncated or corrupt?)", { source });
  }
  try {
    return {
      source,
      graph: parseGraph(model, opts),
      irVersion: toNumber(model.irVersion),
      producer: [model.producerName, model.producerVersion].filter(Boolean).join(" "),
    };
  } catch (e) {
    // Messages from deeper layers name tensors and nodes, not the file: it is named here. Those
    // names are bytes of the file: control characters are escaped.
    if (e instanceof EngineError) e.message = printable(inSource(e, source).message);
    throw e;
  }
}

function parseOpsets(model: ModelProto): Map<string, number> {
  const opsets = new Map<string, number>();
  for (const o of model.opsetImport ?? []) {
    const domain = isDefaultDomain(o.domain ?? "") ? "" : o.domain!;
    opsets.set(domain, toNumber(o.version));
  }
  // Models from before opset imports existed (IR version 1-2) use the first opset.
  if (!opsets.has("")) opsets.set("", 1);
  return opsets;
}

interface RawNode extends NodeLike {
  readonly proto: INodeProto;
}

function parseGraph(model: ModelProto, opts: ParseOptions): Graph {
  const g = model.graph!;
  const where = ""; // parseModel prefixes the source to every message
  const readOpts: TensorReadOptions = {
    baseDir: opts.baseDir,
    fileCache: new Map<string, Uint8Array>(),
  };

  if ((g.sparseInitializer ?? []).length > 0) {
    throw new EngineError("sparse initializers are not supported");
  }
  const constants = new Map<string, CpuTensor>();
  for (const init of g.initializer ?? []) {
    if (!init.name) throw new GraphError("an initializer has no name");
    constants.set(init.name, readTensorProto(init, readOpts).tensor);
  }

  const badTypes: string[] = [];
  const decl = (v: IValueInfoProto, what: string): ValueDecl | undefined => {
    const name = v.name ?? "";
    const tensorType = v.type?.tensorType;
    if (!tensorType) {
      if (v.type && (v.type.sequenceType || v.type.mapType || v.type.optionalType)) {
        badTypes.push(`${what} '${name}' is a sequence/map/optional (only tensors are supported)`);
        return undefined;
      }
      // No type information: accept whatever the caller passes (checked against use later).
      return { name, dtype: "float32", typeName: "unknown" };
    }
    const code = tensorType.elemType ?? 0;
    const dtype = engineDType(code);
    if (!dtype) {
      badTypes.push(`${what} '${name}' has element type ${onnxTypeName(code)}`);
      return undefined;
    }
    const dims = tensorType.shape
      ? (tensorType.shape.dim ?? []).map((d) =>
        d.dimParam
          ? d.dimParam
          : d.dimValue !== undefined && d.dimValue !== null
          ? toNumber(d.dimValue)
          : undefined
      )
      : undefined;
    return { name, dtype, typeName: onnxTypeName(code), dims };
  };

  const inputs: ValueDecl[] = [];
  const inputNames: string[] = [];
  for (const v of g.input ?? []) {
    if (constants.has(v.name ?? "")) continue; // IR < 4 lists initializers as inputs too
    inputNames.push(v.name ?? "");
    const d = decl(v, "input");
    if (d) inputs.push(d);
  }
  const outputs: ValueDecl[] = [];
  for (const v of g.output ?? []) {
    const d = decl(v, "output");
    if (d) outputs.push(d);
  }
  if (outputs.length === 0 && badTypes.length === 0) {
    throw new GraphError("the graph declares no outputs");
  }

  const protos = g.node ?? [];
  const rawNodes: RawNode[] = protos.map((p, i) => ({
    name: p.name || `${p.opType}_${i}`,
    opType: p.opType ?? "",
    domain: isDefaultDomain(p.domain ?? "") ? "" : p.domain!,
    inputs: p.input ?? [],
    outputs: p.output ?? [],
    proto: p,
  }));
  const opTypes = rawNodes.map((n) => n.opType);

  const available = new Set<string>([...inputNames, ...constants.keys()]);
  const sorted = topoSort(where, rawNodes, available);
  const produced = new Set(sorted.flatMap((n) => n.outputs));
  for (const o of outputs) {
    if (!produced.has(o.name) && !available.has(o.name)) {
      throw new GraphError(`graph output '${o.name}' is not produced by any node`);
    }
  }
  const live = removeDeadNodes(sorted, outputs.map((o) => o.name));
  checkSupported(where, live, opts.ops);
  if (badTypes.length > 0) throw new UnsupportedTypeError(where, badTypes);

  const nodes = live.map((n) => toOnnxNode(n, readOpts));
  return {
    name: g.name ?? "",
    nodes,
    inputs,
    outputs,
    constants,
    opsets: parseOpsets(model),
    opTypes,
  };
}

const utf8 = new TextDecoder();

function toOnnxNode(raw: RawNode, readOpts: TensorReadOptions): OnnxNode {
  const attrs = new Map<string, AttrValue>();
  const node: OnnxNode = {
    name: raw.name,
    opType: raw.opType,
    domain: raw.domain,
    inputs: raw.inputs,
    outputs: raw.outputs,
    attrs,
  };
  for (const a of raw.proto.attribute ?? []) {
    const name = a.name ?? "";
    try {
      attrs.set(name, decodeAttribute(a, readOpts));
    } catch (e) {
      if (e instanceof EngineError) {
        throw new NodeError(node, `attribute '${name}': ${e.message}`);
      }
      throw e;
    }
  }
  return node;
}

const A = onnx.AttributeProto.AttributeType;

/** The attribute's type, inferred from the populated field for old files that leave it unset. */
function attributeType(a: IAttributeProto): number {
  if (a.type) return a.type;
  if (a.t) return A.TENSOR;
  if (a.g) return A.GRAPH;
  if (a.floats?.length) return A.FLOATS;
  if (a.ints?.length) return A.INTS;
  if (a.strings?.length) return A.STRINGS;
  if (a.s?.length) return A.STRING;
  if (a.f) return A.FLOAT;
  return A.INT;
}

function decodeAttribute(a: IAttributeProto, readOpts: TensorReadOptions): AttrValue {
  switch (attributeType(a)) {
    case A.FLOAT:
      return a.f ?? 0;
    case A.INT:
      return toNumber(a.i);
    case A.STRING:
      return utf8.decode(a.s ?? new Uint8Array());
    case A.TENSOR:
      if (!a.t) throw new EngineError("has type TENSOR but holds no tensor (corrupt file?)");
      return readTensorProto(a.t, { ...readOpts, label: a.name ?? "attribute" }).tensor;
    case A.FLOATS:
      return [...(a.floats ?? [])];
    case A.INTS:
      return (a.ints ?? []).map((v) => toNumber(v));
    case A.STRINGS:
      return (a.strings ?? []).map((s) => utf8.decode(s));
    case A.GRAPH:
      return { graph: a.g };
    default:
      // Lists of tensors/graphs, sparse tensors, type protos: kept raw; no supported op reads them.
      return { graph: a };
  }
}
