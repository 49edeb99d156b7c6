/** ONNX MatMul (numpy semantics) and Gemm, on the kernels of `src/kernels/matmul.ts`. With the
 * model's precision "f16" the operands may be stored as halves (float32 accumulation); `tune`
 * measures the kernel variants of the node's problem (see ModelOptions.tuneKernels). */
import { type CpuTensor, type DType, shapeString } from "../../util/tensor.ts";
import { type GpuTensor } from "../../gpu/mod.ts";
import {
  MATMUL_KERNEL,
  type MatmulProblem,
  matmulProblem,
  matmulProblemKey,
  prepareMatmul,
} from "../../kernels/matmul.ts";
import { tuneMatmul } from "../../kernels/matmul_tune.ts";
import { matmulRef } from "../../kernels/matmul_ref.ts";
import { type MatmulActivation, matmulShape } from "../../kernels/matmul_shape.ts";
import { broadcastStrides } from "../../kernels/shape.ts";
import {
  attrFloat,
  attrInt,
  attrString,
  type ComputePrecision,
  ENGINE_DOMAIN,
  type KernelTuning,
  NodeError,
  type OnnxNode,
  type OpContext,
  type OpImpl,
  type TensorInfo,
  type TuneOpContext,
} from "../types.ts";
import { checkFloat, onNode } from "./common.ts";

/** MatMul operands seen as rank >= 2 matrices (numpy: a 1-D A is a row [1, K], a 1-D B a
 * column [K, 1], and the added axis is dropped from the result). */
interface MatmulView {
  a: readonly number[];
  b: readonly number[];
  /** The kernel's output shape (rank >= 2). */
  out: readonly number[];
  /** The ONNX output shape. */
  result: readonly number[];
}

function matmulView(node: OnnxNode, aShape: readonly number[], bShape: readonly number[]) {
  if (aShape.length === 0 || bShape.length === 0) {
    throw new NodeError(node, "MatMul inputs must have rank >= 1");
  }
  const a = aShape.length === 1 ? [1, aShape[0]] : aShape;
  const b = bShape.length === 1 ? [bShape[0], 1] : bShape;
  const out = onNode(node, () => matmulShape(a, b).out);
  const result = [...out];
  if (bShape.length === 1) result.splice(result.length - 1, 1);
  if (aShape.length === 1) result.splice(result.length - 2, 1);
  return { a, b, out, result } satisfies MatmulView;
}

function requireInput<T>(node: OnnxNode, t: T | undefined, index: number): T {
  if (t === undefined) throw new NodeError(node, `input ${index} is required`);
  return t;
}

function checkSameDtype(node: OnnxNode, a: TensorInfo | CpuTensor, b: TensorInfo | CpuTensor) {
  if (a.dtype !== b.dtype) {
    throw new NodeError(node, `inputs have different dtypes (${a.dtype} and ${b.dtype})`);
  }
  if (a.dtype === "bool") throw new NodeError(node, "bool inputs are not supported");
}

function reshaped<T extends CpuTensor | GpuTensor>(t: T, shape: readonly number[]): T {
  return { ...t, shape };
}

/** Whether the kernel may store the operands as halves: requested for the model, or both are
 * float16 already (prepareMatmul decides the same way). */
function halvesAllowed(precision: ComputePrecision | undefined, a: DType, b: DType): boolean {
  return precision === "f16" || (a === "float16" && b === "float16");
}

/** Measures the variants of `problem` (cached ones are looked up only). */
async function tuneProblem(ctx: TuneOpContext, problem: MatmulProblem): Promise<KernelTuning[]> {
  const r = await tuneMatmul(ctx.gpu, problem, ctx.tuning);
  const key = matmulProblemKey(problem);
  return [{
    kernel: MATMUL_KERNEL,
    problem: key,
    chosen: r.chosen,
    cached: r.cached,
    defaultMs: r.defaultMs,
    chosenMs: r.chosenMs,
  }];
}

/** MatMul, and engine.FusedMatMul: act(A @ B + bias) with MatMul's numpy semantics, which the
 * load-time fusion pass (src/onnx/fuse.ts) makes of a MatMul, the Add of its bias and an
 * activation, to run as one kernel. A plain MatMul is the case without bias and activation. */
const MatMul: OpImpl = {
  infer(ctx, inputs) {
    const a = requireInput(ctx.node, inputs[0], 0);
    const b = requireInput(ctx.node, inputs[1], 1);
    checkSameDtype(ctx.node, a, b);
    const out = { dtype: a.dtype, shape: matmulView(ctx.node, a.shape, b.shape).result };
    const bias = fusedBias(ctx.node, inputs);
    if (bias) {
      if (bias.dtype !== out.dtype) {
        throw new NodeError(ctx.node, `bias is ${bias.dtype}, the product ${out.dtype}`);
      }
      try {
        broadcastStrides(bias.shape, out.shape);
      } catch {
        throw new NodeError(
          ctx.node,
          `bias ${shapeString(bias.shape)} does not broadcast to the product ${
            shapeString(out.shape)
          }`,
        );
      }
    }
    fusedActivation(ctx.node);
    return [out];
  },
  cpu(ctx, inputs) {
    const a = requireInput(ctx.node, inputs[0], 0);
    const b = requireInput(ctx.node, inputs[1], 1);
    checkSameDtype(ctx.node, a, b);
    const view = matmulView(ctx.node, a.shape, b.shape);
    const out = matmulRef(reshaped(a, view.a), reshaped(b, view.b), {
      bias: fusedBias(ctx.node, inputs),
      activation: fusedActivation(ctx.node),
    });
    return [reshaped(out, view.result)];
  },
  gpu(ctx, inputs, outputs) {
    const a = requireInput(ctx.node, inputs[0], 0);
    const b = requireInput(ctx.node, inputs[1], 1);
    checkFloat(ctx.node, a, "input A");
    const view = matmulView(ctx.node, a.shape, b.shape);
    const [aValue, bValue] = [ctx.inputInfos[0]?.value, ctx.inputInfos[1]?.value];
    return prepareMatmul(
      ctx.gpu,
      ctx,
      reshaped(a, view.a),
      reshaped(b, view.b),
      reshaped(outputs[0], view.out),
      {
        bias: fusedBias(ctx.node, inputs),
        activation: fusedActivation(ctx.node),
        label: `node '${ctx.node.name}' (${ctx.node.opType})`,
        precision: ctx.precision,
        variantCache: ctx.variantCache,
        // Weights (initializers, folded constants) are packed once where the kernel packs.
        constants: {
          a: aValue && reshaped(aValue, view.a),
          b: bValue && reshaped(bValue, view.b),
        },
      },
    );
  },
  tune(ctx) {
    const a = requireInput(ctx.node, ctx.inputInfos[0], 0);
    const b = requireInput(ctx.node, ctx.inputInfos[1], 1);
    const view = matmulView(ctx.node, a.shape, b.shape);
    const halves = halvesAllowed(ctx.precision, a.dtype, b.dtype);
    const constants = { a: a.value !== undefined, b: b.value !== undefined };
    return tuneProblem(ctx, matmulProblem(view.a, view.b, {}, halves, constants));
  },
};

const ACTIVATIONS: readonly MatmulActivation[] = ["none", "relu", "gelu", "quick_gelu"];

/** engine.FusedMatMul's activation attribute ("none" for MatMul). */
function fusedActivation(node: OnnxNode): MatmulActivation {
  if (node.domain !== ENGINE_DOMAIN) return "none";
  const a = attrString(node, "activation", "none") as MatmulActivation;
  if (!ACTIVATIONS.includes(a)) {
    throw new NodeError(node, `unknown activation '${a}' (${ACTIVATIONS.join(", ")})`);
  }
  return a;
}

/** engine.FusedMatMul's bias (input 2); a MatMul has none. */
function fusedBias<T>(node: OnnxNode, inputs: readonly (T | undefined)[]): T | undefined {
  return node.domain === ENGINE_DOMAIN ? inputs[2] : undefined;
}

/** Gemm's attributes and the shape checks common to inference, CPU and GPU. */
function gemmSetup(
  ctx: OpContext,
  aShape: readonly number[],
  bShape: readonly number[],
  cShape: readonly number[] | undefined,
) {
  const node = ctx.node;
  const transA = attrInt(node, "transA", 0) !== 0;
  const transB = attrInt(node, "transB", 0) !== 0;
  const alpha = attrFloat(node, "alpha", 1);
  const beta = attrFloat(node, "beta", 1);
  if (aShape.length !== 2 || bShape.length !== 2) {
    throw new NodeError(
      node,
      `Gemm takes 2-D A and B, got ${shapeString(aShape)} and ${shapeString(bShape)}`,
    );
  }
  let out: readonly number[];
  try {
    out = matmulShape(aShape, bShape, transA, transB).out;
    // C broadcasts one-directionally to [M, N] (opset < 7: when `broadcast` is set, else it
    // must equal [M, N], which broadcasting accepts too).
    if (cShape) broadcastStrides(cShape, out);
  } catch (e) {
    const c = cShape ? `, C ${shapeString(cShape)}` : "";
    throw new NodeError(
      node,
      `${(e as Error).message} (A ${shapeString(aShape)}, B ${shapeString(bShape)}${c}, ` +
        `transA ${+transA}, transB ${+transB})`,
    );
  }
  if (!cShape && ctx.opset < 11) throw new NodeError(node, `input C is required before opset 11`);
  return { transA, transB, alpha, beta, out };
}

const Gemm: OpImpl = {
  infer(ctx, inputs) {
    const a = requireInput(ctx.node, inputs[0], 0);
    const b = requireInput(ctx.node, inputs[1], 1);
    checkSameDtype(ctx.node, a, b);
    const { out } = gemmSetup(ctx, a.shape, b.shape, inputs[2]?.shape);
    return [{ dtype: a.dtype, shape: out }];
  },
  cpu(ctx, inputs) {
    const a = requireInput(ctx.node, inputs[0], 0);
    const b = requireInput(ctx.node, inputs[1], 1);
    checkSameDtype(ctx.node, a, b);
    const c = inputs[2];
    const options = gemmSetup(ctx, a.shape, b.shape, c?.shape);
    return [matmulRef(a, b, { ...options, bias: c })];
  },
  gpu(ctx, inputs, outputs) {
    const a = requireInput(ctx.node, inputs[0], 0);
    const b = requireInput(ctx.node, inputs[1], 1);
    checkFloat(ctx.node, a, "input A");
    const c = inputs[2];
    const { transA, transB, alpha, beta } = gemmSetup(ctx, a.shape, b.shape, c?.shape);
    return prepareMatmul(ctx.gpu, ctx, a, b, outputs[0], {
      transA,
      transB,
      alpha,
      beta,
      bias: c,
      label: `node '${ctx.node.name}' (Gemm)`,
      precision: ctx.precision,
      variantCache: ctx.variantCache,
      constants: { a: ctx.inputInfos[0]?.value, b: ctx.inputInfos[1]?.value },
    });
  },
  tune(ctx) {
    const a = requireInput(ctx.node, ctx.inputInfos[0], 0);
    const b = requireInput(ctx.node, ctx.inputInfos[1], 1);
    const c = ctx.inputInfos[2];
    const { transA, transB } = gemmSetup(ctx, a.shape, b.shape, c?.shape);
    const halves = halvesAllowed(ctx.precision, a.dtype, b.dtype);
    const constants = { a: a.value !== undefined, b: b.value !== undefined };
    return tuneProblem(
      ctx,
      matmulProblem(a.shape, b.shape, { transA, transB, biasShape: c?.shape }, halves, constants),
    );
  },
};

/** ONNX operators of the matmul family, keyed by op type (engine-domain ones prefixed). */
export const matmulOps: Record<string, OpImpl> = {
  MatMul,
  Gemm,
  [`${ENGINE_DOMAIN}.FusedMatMul`]: MatMul,
};
