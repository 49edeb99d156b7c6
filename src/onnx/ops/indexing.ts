/** ONNX indexing operators: TopK, GatherND, ScatterND, ScatterElements (and its opset-9 name
 * Scatter), NonMaxSuppression here; Trilu, CumSum, OneHot, Hardmax, EyeLike in
 * indexing_fill.ts; Einsum in indexing_einsum.ts.
 *
 * Bad indices: constant indices (known at plan time) are checked by `infer`, which raises a
 * NodeError. Indices computed on the GPU cannot be checked then: the kernels skip an out-of-range
 * index (GatherND writes 0 for that element) and report it in the node's status slot, which the
 * plan reads back after the run and raises as an error naming the node. */
import type { CpuTensor } from "../../util/tensor.ts";
import { NMS_BOX_COORDS, nmsRef } from "../../kernels/nms_ref.ts";
import {
  prepareGatherND,
  prepareScatterElements,
  prepareScatterND,
} from "../../kernels/scatter.ts";
import { gatherNDRef, scatterElementsRef, scatterNDRef } from "../../kernels/scatter_ref.ts";
import {
  checkScatterElements,
  checkScatterND,
  gatherNDShape,
  SCATTER_REDUCTIONS,
  type ScatterReduction,
} from "../../kernels/scatter_shape.ts";
import { prepareTopK } from "../../kernels/topk.ts";
import { topKRef } from "../../kernels/topk_ref.ts";
import { topKShape } from "../../kernels/topk_shape.ts";
import {
  attrInt,
  attrString,
  constValues,
  type GpuOpContext,
  NodeError,
  normAxis,
  type OnnxNode,
  type OpContext,
  type OpImpl,
  type TensorInfo,
} from "../types.ts";
import { UnsupportedFeatureError } from "../graph.ts";
import { info, onNode, required, type Shaped } from "./common.ts";
import { einsumOps } from "./indexing_einsum.ts";
import { fillOps } from "./indexing_fill.ts";

// ---- TopK ----

interface TopKSpec {
  axis: number;
  k: number;
  largest: boolean;
}

/** Resolves TopK's axis, k (attribute before opset 10, constant input 1 after) and `largest`. */
function topKOf({ node, opset }: OpContext, x: Shaped, kInput: number[] | undefined): TopKSpec {
  if (x.shape.length === 0) throw new NodeError(node, "input is a scalar");
  if (x.dtype === "bool") throw new NodeError(node, "bool input is not supported");
  const axis = normAxis(node, attrInt(node, "axis", -1), x.shape.length);
  let k: number;
  if (opset < 10) k = attrInt(node, "k");
  else {
    if (!kInput || kInput.length !== 1) {
      throw new NodeError(node, "input 1 (K) must be a 1-element tensor");
    }
    k = kInput[0];
  }
  const n = x.shape[axis];
  if (!(k >= 0 && k <= n)) {
    throw new NodeError(node, `k ${k} is outside [0, ${n}] (axis ${axis} has ${n} elements)`);
  }
  const largest = attrInt(node, "largest", 1);
  const sorted = attrInt(node, "sorted", 1);
  if ((largest !== 0 && largest !== 1) || (sorted !== 0 && sorted !== 1)) {
    throw new NodeError(node, `largest ${largest} and sorted ${sorted} must be 0 or 1`);
  }
  // sorted = 0 lets the order be anything; the kernel always sorts, which satisfies it.
  return { axis, k, largest: largest === 1 };
}

function kFromTensor(t: CpuTensor | undefined): number[] | undefined {
  return t ? Array.from(t.data as ArrayLike<number>) : undefined;
}

const TopK: OpImpl = {
  constInputs: [1],
  infer(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const kInput = ctx.opset < 10 ? undefined : constValues(ctx.node, inputs[1], "K");
    const { axis, k } = topKOf(ctx, x, kInput);
    const shape = topKShape(x.shape, axis, k);
    return [info(x.dtype, shape), info("int64", shape)];
  },
  cpu(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const { axis, k, largest } = topKOf(ctx, x, kFromTensor(inputs[1]));
    return onNode(ctx.node, () => topKRef(x, axis, k, largest));
  },
  gpu(ctx, inputs, [values, indices]) {
    const x = required(ctx.node, inputs, 0);
    const kInput = ctx.opset < 10 ? undefined : constValues(ctx.node, ctx.inputInfos[1], "K");
    const { axis, k, largest } = topKOf(ctx, x, kInput);
    return onNode(
      ctx.node,
      () => prepareTopK(ctx.gpu, ctx, x, values, indices, axis, k, largest),
    );
  },
};

// ---- GatherND, ScatterND, ScatterElements ----

function indicesOf(node: OnnxNode, inputs: readonly (Shaped | undefined)[]): Shaped {
  const indices = required(node, inputs, 1, "indices");
  if (indices.dtype !== "int64" && indices.dtype !== "int32") {
    throw new NodeError(node, `indices must be int32 or int64, got ${indices.dtype}`);
  }
  return indices;
}

function outOfRange(index: number, dim: number, where: string): string {
  return `index ${index} is outside [-${dim}, ${dim}) for ${where} (ONNX forbids it)`;
}

/** Checks constant indices now (plan time): `dimOf(p)` is the size index p addresses. */
function checkConstIndices(
  node: OnnxNode,
  indices: TensorInfo | undefined,
  dimOf: (p: number) => { dim: number; where: string },
): void {
  const known = indices?.value;
  if (!known) return;
  for (let p = 0; p < known.data.length; p++) {
    const v = Number(known.data[p]);
    const { dim, where } = dimOf(p);
    if (v < -dim || v >= dim) throw new NodeError(node, outOfRange(v, dim, where));
  }
}

/** The node's status slot for indices computed on the GPU (see the module comment). */
function statusOf(ctx: GpuOpContext, what: string) {
  return ctx.statusSlot?.((v) =>
    `an index tensor value ${v} is out of range for ${what} (ONNX forbids it)`
  );
}

function batchDimsOf(node: OnnxNode, opset: number): number {
  return opset < 12 ? 0 : attrInt(node, "batch_dims", 0);
}

const GatherND: OpImpl = {
  infer({ node, opset }, inputs) {
    const data = required(node, inputs, 0, "data");
    const indices = indicesOf(node, inputs);
    const b = batchDimsOf(node, opset);
    const shape = onNode(node, () => gatherNDShape(data.shape, indices.shape, b));
    const depth = indices.shape[indices.shape.length - 1];
    checkConstIndices(node, inputs[1], (p) => {
      const d = b + (p % depth);
      return { dim: data.shape[d], where: `data axis ${d} of size ${data.shape[d]}` };
    });
    return [info(data.dtype, shape)];
  },
  cpu({ node, opset }, inputs) {
    const data = required(node, inputs, 0, "data");
    indicesOf(node, inputs);
    const indices = required(node, inputs, 1);
    return [onNode(node, () => gatherNDRef(data, indices, batchDimsOf(node, opset)))];
  },
  gpu(ctx, inputs, [out]) {
    const data = required(ctx.node, inputs, 0, "data");
    const indices = required(ctx.node, inputs, 1, "indices");
    const b = batchDimsOf(ctx.node, ctx.opset);
    const status = statusOf(ctx, `the data ${JSON.stringify(data.shape)}`);
    return onNode(ctx.node, () => prepareGatherND(ctx.gpu, ctx, data, indices, out, b, status));
  },
};

function reductionOf(node: OnnxNode, opset: number): ScatterReduction {
  const r = opset < 16 ? "none" : attrString(node, "reduction", "none");
  if (!(SCATTER_REDUCTIONS as readonly string[]).includes(r)) {
    throw new NodeError(node, `unknown reduction '${r}' (none, add, mul, max, min)`);
  }
  return r as ScatterReduction;
}

function checkUpdates(node: OnnxNode, data: Shaped, updates: Shaped): void {
  if (updates.dtype !== data.dtype) {
    throw new NodeError(node, `updates are ${updates.dtype} but data is ${data.dtype}`);
  }
}

function checkBoolReduction(node: OnnxNode, data: Shaped, reduction: ScatterReduction): void {
  if (data.dtype === "bool" && reduction !== "none") {
    throw new NodeError(node, `reduction '${reduction}' is not defined for bool data`);
  }
}

const ScatterND: OpImpl = {
  infer({ node, opset }, inputs) {
    const data = required(node, inputs, 0, "data");
    const indices = indicesOf(node, inputs);
    const updates = required(node, inputs, 2, "updates");
    checkUpdates(node, data, updates);
    checkBoolReduction(node, data, reductionOf(node, opset));
    onNode(node, () => checkScatterND(data.shape, indices.shape, updates.shape));
    const depth = indices.shape[indices.shape.length - 1];
    checkConstIndices(node, inputs[1], (p) => {
      const d = p % depth;
      return { dim: data.shape[d], where: `data axis ${d} of size ${data.shape[d]}` };
    });
    return [info(data.dtype, data.shape)];
  },
  cpu({ node, opset }, inputs) {
    const [data, indices, updates] = [0, 1, 2].map((i) => required(node, inputs, i));
    const reduction = reductionOf(node, opset);
    return [onNode(node, () => scatterNDRef(data, indices, updates, reduction))];
  },
  gpu(ctx, inputs, [out]) {
    const [data, indices, updates] = [0, 1, 2].map((i) => required(ctx.node, inputs, i));
    const reduction = reductionOf(ctx.node, ctx.opset);
    const status = statusOf(ctx, `the data ${JSON.stringify(data.shape)}`);
    return onNode(
      ctx.node,
      () => prepareScatterND(ctx.gpu, ctx, data, indices, updates, out, reduction, status),
    );
  },
};

function scatterElementsSpec(
  { node, opset }: OpContext,
  inputs: readonly (Shaped | undefined)[],
): { axis: number; reduction: ScatterReduction } {
  const data = required(node, inputs, 0, "data");
  const indices = indicesOf(node, inputs);
  const updates = required(node, inputs, 2, "updates");
  checkUpdates(node, data, updates);
  const axis = normAxis(node, attrInt(node, "axis", 0), data.shape.length);
  const reduction = node.opType === "Scatter" ? "none" : reductionOf(node, opset);
  checkBoolReduction(node, data, reduction);
  onNode(node, () => checkScatterElements(data.shape, indices.shape, updates.shape, axis));
  return { axis, reduction };
}

const ScatterElements: OpImpl = {
  infer(ctx, inputs) {
    const data = required(ctx.node, inputs, 0, "data");
    const { axis } = scatterElementsSpec(ctx, inputs);
    const dim = data.shape[axis];
    checkConstIndices(ctx.node, inputs[1], () => ({
      dim,
      where: `axis ${axis} of size ${dim}`,
    }));
    return [info(data.dtype, data.shape)];
  },
  cpu(ctx, inputs) {
    const { axis, reduction } = scatterElementsSpec(ctx, inputs);
    const [data, indices, updates] = [0, 1, 2].map((i) => required(ctx.node, inputs, i));
    return [onNode(ctx.node, () => scatterElementsRef(data, indices, updates, axis, reduction))];
  },
  gpu(ctx, inputs, [out]) {
    const { axis, reduction } = scatterElementsSpec(ctx, inputs as readonly Shaped[]);
    const [data, indices, updates] = [0, 1, 2].map((i) => required(ctx.node, inputs, i));
    const status = statusOf(ctx, `axis ${axis} of size ${data.shape[axis]}`);
    return onNode(
      ctx.node,
      () =>
        prepareScatterElements(ctx.gpu, ctx, data, indices, updates, out, axis, reduction, status),
    );
  },
};

// ---- NonMaxSuppression ----

const NMS_INPUTS = ["boxes", "scores"];

/** Host-only: how many boxes NMS selects depends on the scores, and a plan fixes every shape
 * before running, so NMS is folded when its inputs are constants and otherwise runs in the
 * graph's host tail (src/onnx/host_tail.ts), after the GPU part has computed boxes and scores.
 * `infer` is reached only for constant boxes and scores. */
function nmsArgs(
  node: OnnxNode,
  inputs: readonly (CpuTensor | undefined)[],
): Parameters<typeof nmsRef> {
  const boxes = required(node, inputs, 0, "boxes");
  const scores = required(node, inputs, 1, "scores");
  const b = boxes.shape, s = scores.shape;
  const boxesOk = b.length === 3 && b[2] === NMS_BOX_COORDS;
  if (!boxesOk || s.length !== 3 || s[0] !== b[0] || s[2] !== b[1]) {
    throw new NodeError(
      node,
      `boxes ${JSON.stringify(b)} must be [batches, boxes, 4] and scores ${JSON.stringify(s)} ` +
        "[batches, classes, boxes]",
    );
  }
  const scalar = (i: number, fallback: number) => {
    const t = inputs[i];
    if (!t || t.data.length === 0) return fallback;
    if (t.data.length !== 1) throw new NodeError(node, `input ${i} must hold one value`);
    return Number(t.data[0]);
  };
  const centerPointBox = attrInt(node, "center_point_box", 0);
  if (centerPointBox !== 0 && centerPointBox !== 1) {
    throw new NodeError(node, `center_point_box ${centerPointBox} must be 0 or 1`);
  }
  return [boxes, scores, {
    maxOutputBoxesPerClass: scalar(2, 0),
    iouThreshold: scalar(3, 0),
    scoreThreshold: scalar(4, -Infinity),
    centerPointBox: centerPointBox === 1,
  }];
}

const NonMaxSuppression: OpImpl = {
  constInputs: [2, 3, 4],
  hostTail: true,
  infer({ node }, inputs) {
    const unknown = [0, 1].filter((i) => inputs[i] !== undefined && inputs[i]!.value === undefined);
    if (unknown.length > 0) {
      // A limit of the engine's scope, not a broken model.
      const what = unknown.map((i) => NMS_INPUTS[i]).join(" and ");
      throw new UnsupportedFeatureError(
        node,
        `${what} ${unknown.length > 1 ? "are" : "is"} ` +
          "not known when the plan is made (a graph input, or computed on the GPU), and " +
          "NonMaxSuppression cannot run inside a GPU plan: how many boxes it selects depends " +
          "on the scores (a data-dependent output shape), and a plan fixes every output shape " +
          "before running. Run the graph up to NMS's inputs (make boxes and scores graph " +
          "outputs) and apply NMS on the host (nmsRef in src/kernels/nms_ref.ts)",
      );
    }
    const out = onNode(node, () => nmsRef(...nmsArgs(node, inputs.map((t) => t?.value))));
    return [{ dtype: out.dtype, shape: out.shape, value: out }];
  },
  cpu({ node }, inputs) {
    return [onNode(node, () => nmsRef(...nmsArgs(node, inputs)))];
  },
};

export const indexingOps: Record<string, OpImpl> = {
  TopK,
  GatherND,
  ScatterND,
  ScatterElements,
  Scatter: ScatterElements,
  NonMaxSuppression,
  ...fillOps,
  ...einsumOps,
};
