/** ONNX data-movement operators: Transpose, Concat, Slice, Split, Gather, GatherElements, Expand,
 * Tile, Pad, DepthToSpace, SpaceToDepth. Each resolves its attributes/constant inputs once (per
 * opset) into plain numbers, shared by shape inference, the CPU reference and the GPU kernels. */
import { roundToF16, shapeString, sizeOf } from "../../util/tensor.ts";
import { broadcastShapes } from "../../kernels/shape.ts";
import { prepareConcat, prepareExpand, prepareSlice, prepareSplit } from "../../kernels/copy.ts";
import { concatRef, expandRef, sliceRef, splitRef } from "../../kernels/copy_ref.ts";
import { type ResolvedSlice, resolveSlice } from "../../kernels/copy_shape.ts";
import { prepareGather, prepareGatherElements } from "../../kernels/gather.ts";
import { gatherElementsRef, gatherRef } from "../../kernels/gather_ref.ts";
import { gatherShape } from "../../kernels/gather_shape.ts";
import { preparePad, prepareTile } from "../../kernels/pad.ts";
import { padRef, tileRef } from "../../kernels/pad_ref.ts";
import { paddedShape, type PadMode } from "../../kernels/pad_shape.ts";
import {
  checkPerm,
  prepareDepthToSpace,
  prepareSpaceToDepth,
  prepareTranspose,
} from "../../kernels/transpose.ts";
import { depthToSpaceRef, spaceToDepthRef, transposeRef } from "../../kernels/transpose_ref.ts";
import { type DepthToSpaceMode, reversedPerm } from "../../kernels/transpose_shape.ts";
import {
  attrInt,
  attrInts,
  attrString,
  type GpuOpContext,
  NodeError,
  normAxis,
  type OnnxNode,
  type OpContext,
  type OpImpl,
} from "../types.ts";
import {
  type ConstInput,
  fromInfos,
  fromTensors,
  info,
  onNode,
  required,
  type Shaped,
} from "./common.ts";

// ---- Transpose ----

function transposePerm(node: OnnxNode, rank: number): number[] {
  const perm = attrInts(node, "perm", reversedPerm(rank));
  onNode(node, () => checkPerm(perm, rank));
  return perm;
}

const Transpose: OpImpl = {
  infer({ node }, inputs) {
    const x = required(node, inputs, 0);
    const perm = transposePerm(node, x.shape.length);
    return [info(x.dtype, perm.map((p) => x.shape[p]))];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0);
    return [transposeRef(x, transposePerm(node, x.shape.length))];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    return prepareTranspose(ctx.gpu, ctx, x, out, transposePerm(ctx.node, x.shape.length));
  },
};

// ---- Concat ----

function concatAxis(node: OnnxNode, inputs: readonly (Shaped | undefined)[]): number {
  const first = required(node, inputs, 0);
  const axis = normAxis(node, attrInt(node, "axis"), first.shape.length);
  for (let i = 1; i < inputs.length; i++) {
    const x = required(node, inputs, i);
    if (
      x.shape.length !== first.shape.length ||
      x.shape.some((n, d) => d !== axis && n !== first.shape[d])
    ) {
      throw new NodeError(
        node,
        `input ${i} ${shapeString(x.shape)} does not match input 0 ` +
          `${shapeString(first.shape)} off axis ${axis}`,
      );
    }
    if (x.dtype !== first.dtype) {
      throw new NodeError(node, `input ${i} is ${x.dtype}, input 0 is ${first.dtype}`);
    }
  }
  return axis;
}

const Concat: OpImpl = {
  infer({ node }, inputs) {
    const axis = concatAxis(node, inputs);
    const first = required(node, inputs, 0);
    const shape = [...first.shape];
    shape[axis] = inputs.reduce((sum, x) => sum + (x?.shape[axis] ?? 0), 0);
    return [info(first.dtype, shape)];
  },
  cpu({ node }, inputs) {
    const axis = concatAxis(node, inputs);
    return [onNode(node, () => concatRef(inputs.map((_, i) => required(node, inputs, i)), axis))];
  },
  gpu(ctx, inputs, [out]) {
    const axis = concatAxis(ctx.node, ctx.inputInfos);
    // Empty inputs contribute nothing (the executor may not give them a buffer).
    const parts = inputs.flatMap((_, i) => {
      if (sizeOf(required(ctx.node, ctx.inputInfos, i).shape) === 0) return [];
      return [required(ctx.node, inputs, i)];
    });
    if (sizeOf(out.shape) === 0) return [];
    return prepareConcat(ctx.gpu, ctx, parts, out, axis);
  },
};

// ---- Slice ----

function sliceOf(
  { node, opset }: OpContext,
  shape: readonly number[],
  consts: ConstInput,
): ResolvedSlice {
  const rank = shape.length;
  let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
  if (opset < 10) {
    starts = attrInts(node, "starts");
    ends = attrInts(node, "ends");
    axes = node.attrs.has("axes") ? attrInts(node, "axes") : undefined;
  } else {
    starts = consts(1, "starts") ?? [];
    ends = consts(2, "ends") ?? [];
    axes = consts(3, "axes");
    steps = consts(4, "steps");
  }
  axes ??= starts.map((_, d) => d);
  steps ??= starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length) {
    throw new NodeError(node, "starts, ends and axes differ in length");
  }
  if (steps.length !== starts.length) {
    throw new NodeError(node, "steps and starts differ in length");
  }
  const norm = axes.map((a) => normAxis(node, a, rank));
  if (new Set(norm).size !== norm.length) throw new NodeError(node, `repeated axes [${axes}]`);
  return onNode(node, () => resolveSlice(shape, starts, ends, norm, steps));
}

const Slice: OpImpl = {
  constInputs: [1, 2, 3, 4],
  infer(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    return [info(x.dtype, sliceOf(ctx, x.shape, fromInfos(ctx.node, inputs)).shape)];
  },
  cpu(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    return [sliceRef(x, sliceOf(ctx, x.shape, fromTensors(inputs)))];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    const s = sliceOf(ctx, x.shape, fromInfos(ctx.node, ctx.inputInfos));
    return prepareSlice(ctx.gpu, ctx, x, out, s.starts, s.steps);
  },
};

// ---- Split ----

function splitOf(
  { node, opset }: OpContext,
  shape: readonly number[],
  consts: ConstInput,
): { axis: number; sizes: number[] } {
  const axis = normAxis(node, attrInt(node, "axis", 0), shape.length);
  const dim = shape[axis];
  const count = node.outputs.length;
  let sizes = opset < 13
    ? (node.attrs.has("split") ? attrInts(node, "split") : undefined)
    : consts(1, "split");
  if (sizes === undefined) {
    const parts = opset >= 18 && node.attrs.has("num_outputs")
      ? attrInt(node, "num_outputs")
      : count;
    if (parts !== count) {
      throw new NodeError(node, `num_outputs ${parts} but the node has ${count} outputs`);
    }
    // Equal parts; when they do not divide evenly the last one is smaller (opset 18 rule).
    const chunk = Math.ceil(dim / parts);
    sizes = Array.from({ length: parts }, (_, k) => Math.max(0, Math.min(chunk, dim - k * chunk)));
  }
  if (sizes.length !== count) {
    throw new NodeError(node, `${sizes.length} split sizes for ${count} outputs`);
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== dim || sizes.some((n) => n < 0)) {
    throw new NodeError(node, `split [${sizes}] does not cover axis ${axis} of size ${dim}`);
  }
  return { axis, sizes };
}

const Split: OpImpl = {
  constInputs: [1],
  infer(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const { axis, sizes } = splitOf(ctx, x.shape, fromInfos(ctx.node, inputs));
    return sizes.map((n) => info(x.dtype, x.shape.map((d, i) => (i === axis ? n : d))));
  },
  cpu(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const { axis, sizes } = splitOf(ctx, x.shape, fromTensors(inputs));
    return splitRef(x, sizes, axis);
  },
  gpu(ctx, inputs, outputs) {
    const x = required(ctx.node, inputs, 0);
    const { axis } = splitOf(ctx, x.shape, fromInfos(ctx.node, ctx.inputInfos));
    return prepareSplit(ctx.gpu, ctx, x, outputs, axis);
  },
};

// ---- Gather, GatherElements ----

function indicesOf(node: OnnxNode, inputs: readonly (Shaped | undefined)[]): Shaped {
  const indices = required(node, inputs, 1);
  if (indices.dtype !== "int64" && indices.dtype !== "int32") {
    throw new NodeError(node, `indices must be int32 or int64, got ${indices.dtype}`);
  }
  return indices;
}

/** Bad indices on the GPU: constant ones are checked now; others report into the node's status
 * slot, raised after the run as an error naming the node (ONNX forbids them; the kernel clamps
 * meanwhile so that nothing reads outside the data). */
function indexStatus(ctx: GpuOpContext, axisDim: number, axis: number) {
  const known = ctx.inputInfos[1]?.value;
  if (known) {
    for (const v of Array.from(known.data as ArrayLike<number>)) {
      if (v < -axisDim || v >= axisDim) {
        throw new NodeError(ctx.node, outOfRange(Number(v), axisDim, axis));
      }
    }
  }
  return ctx.statusSlot?.((v) => outOfRange(v, axisDim, axis));
}

function outOfRange(index: number, axisDim: number, axis: number): string {
  return `index ${index} is outside [-${axisDim}, ${axisDim}) for axis ${axis} of size ` +
    `${axisDim} (ONNX forbids it; for a text tower: a token id beyond the embedding table)`;
}

const Gather: OpImpl = {
  infer({ node }, inputs) {
    const data = required(node, inputs, 0);
    const indices = indicesOf(node, inputs);
    const axis = normAxis(node, attrInt(node, "axis", 0), data.shape.length);
    return [info(data.dtype, gatherShape(data.shape, indices.shape, axis))];
  },
  cpu({ node }, inputs) {
    const data = required(node, inputs, 0);
    indicesOf(node, inputs);
    const axis = normAxis(node, attrInt(node, "axis", 0), data.shape.length);
    return [onNode(node, () => gatherRef(data, required(node, inputs, 1), axis))];
  },
  gpu(ctx, inputs, [out]) {
    const data = required(ctx.node, inputs, 0);
    const axis = normAxis(ctx.node, attrInt(ctx.node, "axis", 0), data.shape.length);
    const status = indexStatus(ctx, data.shape[axis], axis);
    return prepareGather(ctx.gpu, ctx, data, required(ctx.node, inputs, 1), out, axis, status);
  },
};

const GatherElements: OpImpl = {
  infer({ node }, inputs) {
    const data = required(node, inputs, 0);
    const indices = indicesOf(node, inputs);
    if (indices.shape.length !== data.shape.length) {
      throw new NodeError(node, "indices and data differ in rank");
    }
    normAxis(node, attrInt(node, "axis", 0), data.shape.length);
    return [info(data.dtype, indices.shape)];
  },
  cpu({ node }, inputs) {
    const data = required(node, inputs, 0);
    indicesOf(node, inputs);
    const axis = normAxis(node, attrInt(node, "axis", 0), data.shape.length);
    return [onNode(node, () => gatherElementsRef(data, required(node, inputs, 1), axis))];
  },
  gpu(ctx, inputs, [out]) {
    const data = required(ctx.node, inputs, 0);
    const axis = normAxis(ctx.node, attrInt(ctx.node, "axis", 0), data.shape.length);
    const status = indexStatus(ctx, data.shape[axis], axis);
    const indices = required(ctx.node, inputs, 1);
    return prepareGatherElements(ctx.gpu, ctx, data, indices, out, axis, status);
  },
};

// ---- Expand, Tile ----

function expandShape(node: OnnxNode, x: Shaped, consts: ConstInput): number[] {
  const target = consts(1, "shape");
  if (!target) throw new NodeError(node, "input 1 (shape) is missing");
  const shape = broadcastShapes(x.shape, target);
  if (!shape) {
    throw new NodeError(
      node,
      `${shapeString(x.shape)} does not broadcast with ${shapeString(target)}`,
    );
  }
  return shape;
}

const Expand: OpImpl = {
  constInputs: [1],
  infer({ node }, inputs) {
    const x = required(node, inputs, 0);
    return [info(x.dtype, expandShape(node, x, fromInfos(node, inputs)))];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0);
    return [expandRef(x, expandShape(node, x, fromTensors(inputs)))];
  },
  gpu(ctx, inputs, [out]) {
    return prepareExpand(ctx.gpu, ctx, required(ctx.node, inputs, 0), out);
  },
};

function tileRepeats(node: OnnxNode, x: Shaped, consts: ConstInput): number[] {
  const repeats = consts(1, "repeats");
  if (!repeats || repeats.length !== x.shape.length || repeats.some((r) => r < 0)) {
    throw new NodeError(node, `repeats [${repeats ?? ""}] for input ${shapeString(x.shape)}`);
  }
  return repeats;
}

const Tile: OpImpl = {
  constInputs: [1],
  infer({ node }, inputs) {
    const x = required(node, inputs, 0);
    const repeats = tileRepeats(node, x, fromInfos(node, inputs));
    return [info(x.dtype, x.shape.map((n, d) => n * repeats[d]))];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0);
    return [tileRef(x, tileRepeats(node, x, fromTensors(inputs)))];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    const repeats = tileRepeats(ctx.node, x, fromInfos(ctx.node, ctx.inputInfos));
    return prepareTile(ctx.gpu, ctx, x, out, repeats);
  },
};

// ---- Pad ----

interface PadSpec {
  begin: number[];
  end: number[];
  mode: PadMode;
  value: number;
}

function padOf({ node, opset }: OpContext, x: Shaped, consts: ConstInput): PadSpec {
  const rank = x.shape.length;
  const mode = attrString(node, "mode", "constant");
  if (mode !== "constant" && mode !== "reflect" && mode !== "edge" && mode !== "wrap") {
    throw new NodeError(node, `unknown pad mode '${mode}'`);
  }
  let pads: number[];
  let value = 0;
  let axes: number[] | undefined;
  if (opset < 11) {
    pads = node.attrs.has("pads") ? attrInts(node, "pads") : attrInts(node, "paddings");
    value = attrInt(node, "value", 0);
  } else {
    const p = consts(1, "pads");
    if (!p) throw new NodeError(node, "input 1 (pads) is missing");
    pads = p;
    const v = consts(2, "constant_value");
    if (v && v.length > 0) value = v[0];
    axes = consts(3, "axes");
  }
  const norm = (axes ?? x.shape.map((_, d) => d)).map((a) => normAxis(node, a, rank));
  if (pads.length !== 2 * norm.length) {
    throw new NodeError(node, `${pads.length} pads for ${norm.length} axes`);
  }
  const begin = x.shape.map(() => 0);
  const end = x.shape.map(() => 0);
  norm.forEach((a, k) => {
    begin[a] = pads[k];
    end[a] = pads[k + norm.length];
  });
  const shape = paddedShape(x.shape, begin, end);
  if (shape.some((n) => n < 0)) {
    throw new NodeError(node, `pads [${pads}] crop ${shapeString(x.shape)} below zero`);
  }
  if (mode !== "constant" && sizeOf(x.shape) === 0 && sizeOf(shape) > 0) {
    throw new NodeError(node, `${mode} padding needs a non-empty input`);
  }
  // The fill value takes the data's type (a float16 tensor holds half-precision values).
  if (x.dtype === "float16") value = roundToF16(value);
  else if (x.dtype === "bool") value = value ? 1 : 0;
  else if (x.dtype !== "float32") value = Math.trunc(value);
  return { begin, end, mode, value };
}

const Pad: OpImpl = {
  constInputs: [1, 2, 3],
  infer(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const p = padOf(ctx, x, fromInfos(ctx.node, inputs));
    return [info(x.dtype, paddedShape(x.shape, p.begin, p.end))];
  },
  cpu(ctx, inputs) {
    const x = required(ctx.node, inputs, 0);
    const p = padOf(ctx, x, fromTensors(inputs));
    return [padRef(x, p.begin, p.end, p.mode, p.value)];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    const p = padOf(ctx, x, fromInfos(ctx.node, ctx.inputInfos));
    return preparePad(ctx.gpu, ctx, x, out, p.begin, p.end, p.mode, p.value);
  },
};

// ---- DepthToSpace, SpaceToDepth ----

function blockOf(node: OnnxNode, x: Shaped, toSpace: boolean): number {
  const block = attrInt(node, "blocksize");
  const [, c, h, w] = x.shape;
  const ok = x.shape.length === 4 && block > 0 &&
    (toSpace ? c % (block * block) === 0 : h % block === 0 && w % block === 0);
  if (!ok) throw new NodeError(node, `blocksize ${block} for input ${shapeString(x.shape)}`);
  return block;
}

function d2sMode(node: OnnxNode): DepthToSpaceMode {
  const mode = attrString(node, "mode", "DCR");
  if (mode !== "DCR" && mode !== "CRD") throw new NodeError(node, `unknown mode '${mode}'`);
  return mode;
}

const DepthToSpace: OpImpl = {
  infer({ node }, inputs) {
    const x = required(node, inputs, 0);
    const b = blockOf(node, x, true);
    d2sMode(node);
    const [n, c, h, w] = x.shape;
    return [info(x.dtype, [n, c / (b * b), h * b, w * b])];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0);
    return [depthToSpaceRef(x, blockOf(node, x, true), d2sMode(node))];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    const b = blockOf(ctx.node, x, true);
    return prepareDepthToSpace(ctx.gpu, ctx, x, out, b, d2sMode(ctx.node));
  },
};

const SpaceToDepth: OpImpl = {
  infer({ node }, inputs) {
    const x = required(node, inputs, 0);
    const b = blockOf(node, x, false);
    const [n, c, h, w] = x.shape;
    return [info(x.dtype, [n, c * b * b, h / b, w / b])];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0);
    return [spaceToDepthRef(x, blockOf(node, x, false))];
  },
  gpu(ctx, inputs, [out]) {
    const x = required(ctx.node, inputs, 0);
    return prepareSpaceToDepth(ctx.gpu, ctx, x, out, blockOf(ctx.node, x, false));
  },
};

/** ONNX operators of the movement family, keyed by op type. */
export const movementOps: Record<string, OpImpl> = {
  Transpose,
  Concat,
  Slice,
  Split,
  Gather,
  GatherElements,
  Expand,
  Tile,
  Pad,
  DepthToSpace,
  SpaceToDepth,
};
