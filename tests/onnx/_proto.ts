/** Test helpers that write ONNX ModelProtos field by field with onnx-proto (so tests control
 * every encoding detail: typed fields vs raw_data, external data, missing names...). */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import type { CpuTensor, DType } from "../../src/util/tensor.ts";
import { onnxTypeOf, tensorToProto } from "../../src/onnx/tensor_proto.ts";

export const { onnx } = onnxProto;
export type INodeProto = OnnxTypes.INodeProto;
export type ITensorProto = OnnxTypes.ITensorProto;
export type IAttributeProto = OnnxTypes.IAttributeProto;
export type IValueInfoProto = OnnxTypes.IValueInfoProto;

export const T = onnx.TensorProto.DataType;
export const A = onnx.AttributeProto.AttributeType;

/** A tensor ValueInfo; dims are sizes or symbolic names. */
export function vi(
  name: string,
  dtype: DType | number,
  dims: (number | string)[],
): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: typeof dtype === "number" ? dtype : onnxTypeOf(dtype),
        shape: {
          dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: IAttributeProto[] = [],
  name = "",
  domain = "",
): INodeProto {
  return { opType, input: inputs, output: outputs, attribute: attrs, name, domain };
}

export const ints = (name: string, v: number[]): IAttributeProto => ({
  name,
  type: A.INTS,
  ints: v,
});
export const int = (name: string, v: number): IAttributeProto => ({ name, type: A.INT, i: v });

export const init = (name: string, t: CpuTensor): ITensorProto => tensorToProto(name, t);

export interface ModelParts {
  nodes: INodeProto[];
  inputs?: IValueInfoProto[];
  outputs: IValueInfoProto[];
  initializers?: ITensorProto[];
  opset?: number;
  extraOpsets?: { domain: string; version: number }[];
}

/** Serialised ModelProto bytes. */
export function encodeModel(p: ModelParts): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "test",
    opsetImport: [{ domain: "", version: p.opset ?? 17 }, ...(p.extraOpsets ?? [])],
    graph: {
      name: "test",
      node: p.nodes,
      input: p.inputs ?? [],
      output: p.outputs,
      initializer: p.initializers ?? [],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
