/** Public ONNX API: load a model, plan it for input shapes, run it on host or GPU tensors. */
export { InputError, loadModel, loadModelBytes, Model, type ModelOptions } from "./executor.ts";
export { Plan, type PlanMemory, type PlanOutput, type PlanSettings } from "./plan.ts";
export { type Analysis, analyze, type InputFacts } from "./analyze.ts";
export {
  type Mismatch,
  type Tolerance,
  VALIDATE_ENV,
  ValidationError,
  type ValidationReport,
} from "./validate.ts";
export { formatProfile, type PlanProfile, profilePlan, type ProfileRow } from "./profile.ts";
export {
  type KernelTuningOptions,
  setupKernelTuning,
  tuneSteps,
  type TuningSummary,
} from "./tune.ts";
export {
  type Graph,
  GraphError,
  UnsupportedError,
  UnsupportedFeatureError,
  UnsupportedOperatorError,
  UnsupportedTypeError,
  type ValueDecl,
} from "./graph.ts";
export { loadModelFile, type ParsedModel, parseModel } from "./parse.ts";
export { type BuilderAttr, type Dim, GraphBuilder } from "./builder.ts";
export {
  engineDType,
  type LoadedTensor,
  onnxTypeName,
  onnxTypeOf,
  readTensorFile,
  readTensorProto,
  tensorToProto,
} from "./tensor_proto.ts";
export {
  attrInt,
  type ComputePrecision,
  NodeError,
  type OnnxNode,
  type OpImpl,
  type TensorInfo,
} from "./types.ts";
export { OPS } from "./ops/registry.ts";
