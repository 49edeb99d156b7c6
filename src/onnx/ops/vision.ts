/** ONNX operators of vision models' heads and older backbones: GridSample, AffineGrid, RoiAlign,
 * LRN, LpPool, MaxUnpool, CenterCropPad, Col2Im, DeformConv. Each resolves its attributes into
 * the plain settings its kernel and CPU reference share (src/kernels/grid_sample*.ts, ...). */
import { prepareCol2Im } from "../../kernels/col2im.ts";
import { col2ImRef } from "../../kernels/col2im_ref.ts";
import { type Col2ImAttrs, col2ImShape } from "../../kernels/col2im_shape.ts";
import { prepareDeformConv } from "../../kernels/deform_conv.ts";
import { deformConvRef } from "../../kernels/deform_conv_ref.ts";
import { type DeformConvAttrs, deformConvShape } from "../../kernels/deform_conv_shape.ts";
import { prepareAffineGrid, prepareGridSample } from "../../kernels/grid_sample.ts";
import { affineGridRef, gridSampleRef } from "../../kernels/grid_sample_ref.ts";
import {
  affineGridShape,
  type GridPaddingMode,
  type GridSampleMode,
  type GridSampleOptions,
  gridSampleShape,
} from "../../kernels/grid_sample_shape.ts";
import { prepareLpPool } from "../../kernels/lp_pool.ts";
import { lpPoolRef } from "../../kernels/lp_pool_ref.ts";
import { prepareLrn } from "../../kernels/lrn.ts";
import { lrnRef } from "../../kernels/lrn_ref.ts";
import type { LrnOptions } from "../../kernels/lrn_shape.ts";
import { prepareMaxUnpool } from "../../kernels/max_unpool.ts";
import { maxUnpoolRef, maxUnpoolShape } from "../../kernels/max_unpool_ref.ts";
import { preparePad } from "../../kernels/pad.ts";
import { padRef } from "../../kernels/pad_ref.ts";
import { type PoolAttrs, poolOutputShape } from "../../kernels/pool_shape.ts";
import { prepareRoiAlign } from "../../kernels/roi_align.ts";
import { roiAlignRef } from "../../kernels/roi_align_ref.ts";
import { type RoiAlignOptions, roiAlignShape } from "../../kernels/roi_align_shape.ts";
import { UnsupportedFeatureError } from "../graph.ts";
import {
  attrFloat,
  attrInt,
  attrInts,
  attrString,
  NodeError,
  normAxis,
  type OnnxNode,
  type OpContext,
  type OpImpl,
} from "../types.ts";
import {
  checkFloat,
  type ConstInput,
  fromInfos,
  fromTensors,
  info,
  onNode,
  required,
  type Shaped,
} from "./common.ts";

/** A 0/1 attribute. */
function attrBool(node: OnnxNode, name: string): boolean {
  const v = attrInt(node, name, 0);
  if (v !== 0 && v !== 1) throw new NodeError(node, `attribute '${name}' must be 0 or 1, not ${v}`);
  return v === 1;
}

// ---- GridSample (opsets 16 and 20) ----

function gridSampleOptions(ctx: OpContext, rank: number): GridSampleOptions {
  const { node, opset } = ctx;
  // Opset 20 renamed bilinear/bicubic to linear/cubic and allowed N-d inputs.
  const names: Record<string, GridSampleMode> = opset >= 20
    ? { linear: "linear", nearest: "nearest", cubic: "cubic" }
    : { bilinear: "linear", nearest: "nearest", bicubic: "cubic" };
  const modeName = attrString(node, "mode", opset >= 20 ? "linear" : "bilinear");
  const mode = names[modeName];
  if (!Object.hasOwn(names, modeName)) {
    throw new NodeError(
      node,
      `unknown mode '${modeName}' (opset ${opset}: ${Object.keys(names).join(", ")})`,
    );
  }
  const padding = attrString(node, "padding_mode", "zeros");
  if (padding !== "zeros" && padding !== "border" && padding !== "reflection") {
    throw new NodeError(node, `unknown padding_mode '${padding}'`);
  }
  if (opset < 20 && rank !== 2) {
    throw new NodeError(node, `opset ${opset} takes 4-D X only (${rank} spatial axes given)`);
  }
  if (rank > 3) {
    throw new UnsupportedFeatureError(node, `${rank} spatial axes (at most 3 are supported)`);
  }
  if (mode === "cubic" && rank !== 2) {
    // The ONNX spec defines cubic for 4-D input only.
    throw new NodeError(node, "cubic mode needs 4-D input");
  }
  return {
    mode,
    padding: padding as GridPaddingMode,
    alignCorners: attrBool(node, "align_corners"),
  };
}

const GridSample: OpImpl = {
  infer(ctx, inputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const grid = required(node, inputs, 1, "grid");
    checkFloat(node, x, "X");
    checkFloat(node, grid, "grid");
    const shape = onNode(node, () => gridSampleShape(x.shape, grid.shape));
    gridSampleOptions(ctx, x.shape.length - 2);
    return [info(x.dtype, shape)];
  },
  cpu(ctx, inputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const grid = required(node, inputs, 1, "grid");
    const opts = gridSampleOptions(ctx, x.shape.length - 2);
    return [onNode(node, () => gridSampleRef(x, grid, opts))];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const grid = required(node, inputs, 1, "grid");
    const opts = gridSampleOptions(ctx, x.shape.length - 2);
    return onNode(node, () => prepareGridSample(ctx.gpu, ctx, x, grid, outputs[0], opts));
  },
};

// ---- AffineGrid (opset 20) ----

function affineSize(node: OnnxNode, read: ConstInput): number[] {
  const size = read(1, "size");
  if (!size) throw new NodeError(node, "input 1 (size) is missing");
  return size;
}

const AffineGrid: OpImpl = {
  constInputs: [1],
  infer(ctx, inputs) {
    const { node } = ctx;
    const theta = required(node, inputs, 0, "theta");
    checkFloat(node, theta, "theta");
    const size = affineSize(node, fromInfos(node, inputs));
    attrBool(node, "align_corners");
    return [info(theta.dtype, onNode(node, () => affineGridShape(theta.shape, size)))];
  },
  cpu(ctx, inputs) {
    const { node } = ctx;
    const theta = required(node, inputs, 0, "theta");
    const size = affineSize(node, fromTensors(inputs));
    const align = attrBool(node, "align_corners");
    return [onNode(node, () => affineGridRef(theta, size, align))];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const theta = required(node, inputs, 0, "theta");
    const size = affineSize(node, fromInfos(node, ctx.inputInfos));
    const align = attrBool(node, "align_corners");
    return onNode(node, () => prepareAffineGrid(ctx.gpu, ctx, theta, size, outputs[0], align));
  },
};

// ---- RoiAlign (opsets 10 and 16) ----

function roiAlignOptions(ctx: OpContext): RoiAlignOptions {
  const { node, opset } = ctx;
  const mode = attrString(node, "mode", "avg");
  if (mode !== "avg" && mode !== "max") throw new NodeError(node, `unknown mode '${mode}'`);
  const outputHeight = attrInt(node, "output_height", 1);
  const outputWidth = attrInt(node, "output_width", 1);
  if (!(outputHeight >= 1 && outputWidth >= 1)) {
    throw new NodeError(node, `output_height and output_width must be >= 1`);
  }
  const samplingRatio = attrInt(node, "sampling_ratio", 0);
  if (!(samplingRatio >= 0)) throw new NodeError(node, "sampling_ratio must be >= 0");
  // Opset 10 had no coordinate_transformation_mode and behaved as output_half_pixel.
  const coord = opset >= 16
    ? attrString(node, "coordinate_transformation_mode", "half_pixel")
    : "output_half_pixel";
  if (coord !== "half_pixel" && coord !== "output_half_pixel") {
    throw new NodeError(node, `unknown coordinate_transformation_mode '${coord}'`);
  }
  return {
    mode,
    outputHeight,
    outputWidth,
    samplingRatio,
    spatialScale: attrFloat(node, "spatial_scale", 1),
    halfPixel: coord === "half_pixel",
  };
}

const RoiAlign: OpImpl = {
  infer(ctx, inputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const rois = required(node, inputs, 1, "rois");
    const indices = required(node, inputs, 2, "batch_indices");
    checkFloat(node, x, "X");
    checkFloat(node, rois, "rois");
    if (indices.dtype !== "int64" && indices.dtype !== "int32") {
      throw new NodeError(node, `batch_indices dtype ${indices.dtype} is not int64`);
    }
    const opts = roiAlignOptions(ctx);
    const shape = onNode(node, () => roiAlignShape(x.shape, rois.shape, indices.shape, opts));
    if (indices.value) {
      // Known indices are checked here; the kernel reports unknown ones (status slot).
      for (const b of indices.value.data) {
        if (!(b >= 0 && b < x.shape[0])) {
          throw new NodeError(node, `batch index ${b} is outside [0, ${x.shape[0]})`);
        }
      }
    }
    return [info(x.dtype, shape)];
  },
  cpu(ctx, inputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const rois = required(node, inputs, 1, "rois");
    const indices = required(node, inputs, 2, "batch_indices");
    const opts = roiAlignOptions(ctx);
    return [onNode(node, () => roiAlignRef(x, rois, indices, opts))];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const rois = required(node, inputs, 1, "rois");
    const indices = required(node, inputs, 2, "batch_indices");
    const opts = roiAlignOptions(ctx);
    const status = ctx.statusSlot?.((v) => `batch index ${v} is outside [0, ${x.shape[0]})`);
    return onNode(
      node,
      () => prepareRoiAlign(ctx.gpu, ctx, x, rois, indices, outputs[0], opts, status),
    );
  },
};

// ---- LRN ----

function lrnOptions(node: OnnxNode): LrnOptions {
  const size = attrInt(node, "size");
  if (!(size >= 1) || !Number.isInteger(size)) {
    throw new NodeError(node, `size must be a positive integer, not ${size}`);
  }
  return {
    size,
    alpha: attrFloat(node, "alpha", 1e-4),
    beta: attrFloat(node, "beta", 0.75),
    bias: attrFloat(node, "bias", 1),
  };
}

const LRN: OpImpl = {
  infer({ node }, inputs) {
    const x = required(node, inputs, 0, "X");
    checkFloat(node, x, "X");
    if (x.shape.length < 3) {
      throw new NodeError(node, `input X has rank ${x.shape.length}; needs N, C and spatial axes`);
    }
    lrnOptions(node);
    return [info(x.dtype, x.shape)];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0, "X");
    return [onNode(node, () => lrnRef(x, lrnOptions(node)))];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const opts = lrnOptions(node);
    return onNode(node, () => prepareLrn(ctx.gpu, ctx, x, outputs[0], opts));
  },
};

// ---- window attributes (LpPool, MaxUnpool) ----

function spatialRank(node: OnnxNode, x: Shaped): number {
  const rank = x.shape.length - 2;
  if (rank < 1) {
    throw new NodeError(node, `input X has rank ${x.shape.length}; needs N, C and spatial axes`);
  }
  if (rank > 3) {
    throw new UnsupportedFeatureError(node, `${rank} spatial axes (at most 3 are supported)`);
  }
  return rank;
}

/** A per-spatial-axis list attribute of `len` values that must be >= `min`. */
function axisList(node: OnnxNode, name: string, len: number, min: number, fallback?: number[]) {
  const list = attrInts(node, name, fallback);
  if (list.length !== len) {
    throw new NodeError(node, `${name} has ${list.length} values; expected ${len}`);
  }
  if (list.some((v) => !(v >= min) || !Number.isInteger(v))) {
    throw new NodeError(node, `${name} [${list}] must be integers >= ${min}`);
  }
  return list;
}

/** kernel_shape, strides, dilations and pads (auto_pad resolved to explicit pads, SAME_* putting
 * the odd extra at the end or the beginning), as conv.ts resolves them for MaxPool. */
function windowAttrs(node: OnnxNode, x: Shaped, withDilations: boolean): PoolAttrs {
  const rank = spatialRank(node, x);
  const inSpatial = x.shape.slice(2);
  const ones = Array<number>(rank).fill(1);
  const kernel = axisList(node, "kernel_shape", rank, 1);
  const strides = axisList(node, "strides", rank, 1, ones);
  const dilations = withDilations ? axisList(node, "dilations", rank, 1, ones) : ones;
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  let pads = Array<number>(2 * rank).fill(0);
  switch (autoPad) {
    case "NOTSET":
      pads = axisList(node, "pads", 2 * rank, 0, pads);
      break;
    case "VALID":
      break;
    case "SAME_UPPER":
    case "SAME_LOWER":
      for (let a = 0; a < rank; a++) {
        const out = Math.ceil(inSpatial[a] / strides[a]);
        const span = (kernel[a] - 1) * dilations[a] + 1;
        const total = Math.max(0, (out - 1) * strides[a] + span - inSpatial[a]);
        const small = Math.floor(total / 2);
        pads[a] = autoPad === "SAME_UPPER" ? small : total - small;
        pads[a + rank] = total - pads[a];
      }
      break;
    default:
      throw new NodeError(node, `unknown auto_pad '${autoPad}'`);
  }
  return { kernel, strides, dilations, pads };
}

// ---- LpPool ----

function lpPoolSettings(ctx: OpContext, x: Shaped): { attrs: PoolAttrs; p: number } {
  const { node, opset } = ctx;
  // Dilations and ceil_mode arrived in opset 18.
  const win = windowAttrs(node, x, opset >= 18);
  const ceilMode = opset >= 18 && attrBool(node, "ceil_mode");
  if (ceilMode && !["NOTSET", "VALID"].includes(attrString(node, "auto_pad", "NOTSET"))) {
    throw new NodeError(node, "ceil_mode cannot be combined with auto_pad SAME_*");
  }
  const p = attrInt(node, "p", 2);
  if (!(p > 0)) throw new NodeError(node, `p must be positive, not ${p}`);
  return { attrs: { ...win, ceilMode }, p };
}

const LpPool: OpImpl = {
  infer(ctx, inputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    checkFloat(node, x, "X");
    const { attrs } = lpPoolSettings(ctx, x);
    return [info(x.dtype, onNode(node, () => poolOutputShape(x.shape, attrs)))];
  },
  cpu(ctx, inputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const { attrs, p } = lpPoolSettings(ctx, x);
    return [onNode(node, () => lpPoolRef(x, attrs, p))];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const { attrs, p } = lpPoolSettings(ctx, x);
    return onNode(node, () => prepareLpPool(ctx.gpu, ctx, x, outputs[0], attrs, p));
  },
};

// ---- MaxUnpool ----

/** The shape the indices refer to and Y's shape: the output_shape input when given (the inferred
 * shape is then computed without pads, as the ONNX reference does, and sits at Y's origin), else
 * the inferred shape. */
function maxUnpoolShapes(
  node: OnnxNode,
  x: Shaped,
  read: ConstInput,
): { inferred: number[]; shape: number[] } {
  const rank = spatialRank(node, x);
  const kernel = axisList(node, "kernel_shape", rank, 1);
  const strides = axisList(node, "strides", rank, 1, Array<number>(rank).fill(1));
  let pads = axisList(node, "pads", 2 * rank, 0, Array<number>(2 * rank).fill(0));
  const given = read(2, "output_shape");
  if (given) pads = pads.map(() => 0);
  const inferred = onNode(node, () => maxUnpoolShape(x.shape, kernel, strides, pads));
  if (!given) return { inferred, shape: inferred };
  if (given.length !== x.shape.length) {
    throw new NodeError(node, `output_shape [${given}] must have X's rank ${x.shape.length}`);
  }
  if (given.some((d) => !(d >= 0) || !Number.isInteger(d))) {
    throw new NodeError(node, `output_shape [${given}] must be non-negative integers`);
  }
  if (given[0] !== x.shape[0] || given[1] !== x.shape[1]) {
    throw new NodeError(node, `output_shape [${given}] must keep X's N and C`);
  }
  if (given.some((d, a) => d < inferred[a])) {
    throw new NodeError(
      node,
      `output_shape [${given}] is smaller than the inferred shape [${inferred}]`,
    );
  }
  return { inferred, shape: given };
}

function checkIndices(node: OnnxNode, x: Shaped, indices: Shaped): void {
  if (indices.dtype !== "int64" && indices.dtype !== "int32") {
    throw new NodeError(node, `I dtype ${indices.dtype} is not int64`);
  }
  if (indices.shape.join() !== x.shape.join()) {
    throw new NodeError(node, `I [${indices.shape}] must have X's shape [${x.shape}]`);
  }
}

const MaxUnpool: OpImpl = {
  constInputs: [2],
  infer({ node }, inputs) {
    const x = required(node, inputs, 0, "X");
    const indices = required(node, inputs, 1, "I");
    checkIndices(node, x, indices);
    const { inferred, shape } = maxUnpoolShapes(node, x, fromInfos(node, inputs));
    if (indices.value) {
      // Known indices are checked here; the kernel reports unknown ones (status slot).
      const total = inferred.reduce((a, b) => a * b, 1);
      for (const i of indices.value.data) {
        if (!(i >= 0 && i < total)) {
          throw new NodeError(node, `index ${i} is outside the unpooled [${inferred}]`);
        }
      }
    }
    return [info(x.dtype, shape)];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0, "X");
    const indices = required(node, inputs, 1, "I");
    checkIndices(node, x, indices);
    const { inferred, shape } = maxUnpoolShapes(node, x, fromTensors(inputs));
    return [onNode(node, () => maxUnpoolRef(x, indices, inferred, shape))];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const indices = required(node, inputs, 1, "I");
    const { inferred } = maxUnpoolShapes(node, x, fromInfos(node, ctx.inputInfos));
    const status = ctx.statusSlot?.((v) => `index ${v} is outside the unpooled [${inferred}]`);
    return onNode(
      node,
      () => prepareMaxUnpool(ctx.gpu, ctx, x, indices, outputs[0], inferred, status),
    );
  },
};

// ---- CenterCropPad (opset 18) ----

/** Pads (negative: crops) per axis that centre X in the target shape: the odd element of a crop
 * or pad goes at the end, as the ONNX reference slices. */
function centerCropPads(
  node: OnnxNode,
  x: Shaped,
  read: ConstInput,
): { begin: number[]; end: number[] } {
  const rank = x.shape.length;
  const target = read(1, "shape");
  if (!target) throw new NodeError(node, "input 1 (shape) is missing");
  const axes = attrInts(node, "axes", [...Array(rank).keys()]).map((a) => normAxis(node, a, rank));
  if (new Set(axes).size !== axes.length) throw new NodeError(node, `repeated axes [${axes}]`);
  if (target.length !== axes.length) {
    throw new NodeError(node, `shape has ${target.length} values for ${axes.length} axes`);
  }
  const begin = Array<number>(rank).fill(0);
  const end = Array<number>(rank).fill(0);
  axes.forEach((axis, i) => {
    const t = target[i];
    if (!(t >= 0) || !Number.isInteger(t)) {
      throw new NodeError(node, `shape [${target}] must be non-negative integers`);
    }
    const diff = t - x.shape[axis];
    begin[axis] = diff >= 0 ? Math.floor(diff / 2) : -Math.floor(-diff / 2);
    end[axis] = diff - begin[axis];
  });
  return { begin, end };
}

const CenterCropPad: OpImpl = {
  constInputs: [1],
  infer({ node }, inputs) {
    const x = required(node, inputs, 0, "input_data");
    const { begin, end } = centerCropPads(node, x, fromInfos(node, inputs));
    return [info(x.dtype, x.shape.map((d, a) => d + begin[a] + end[a]))];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0, "input_data");
    const { begin, end } = centerCropPads(node, x, fromTensors(inputs));
    return [onNode(node, () => padRef(x, begin, end, "constant", 0))];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "input_data");
    const { begin, end } = centerCropPads(node, x, fromInfos(node, ctx.inputInfos));
    return onNode(
      node,
      () => preparePad(ctx.gpu, ctx, x, outputs[0], begin, end, "constant", 0, "center crop pad"),
    );
  },
};

// ---- Col2Im (opset 18) ----

function col2ImAttrs(node: OnnxNode, read: ConstInput): Col2ImAttrs {
  const image = read(1, "image_shape");
  const block = read(2, "block_shape");
  if (!image) throw new NodeError(node, "input 1 (image_shape) is missing");
  if (!block) throw new NodeError(node, "input 2 (block_shape) is missing");
  const rank = image.length;
  return {
    image,
    block,
    strides: axisList(node, "strides", rank, 1, Array<number>(rank).fill(1)),
    dilations: axisList(node, "dilations", rank, 1, Array<number>(rank).fill(1)),
    pads: axisList(node, "pads", 2 * rank, 0, Array<number>(2 * rank).fill(0)),
  };
}

const Col2Im: OpImpl = {
  constInputs: [1, 2],
  infer({ node }, inputs) {
    const x = required(node, inputs, 0, "input");
    checkFloat(node, x, "input");
    const attrs = col2ImAttrs(node, fromInfos(node, inputs));
    if (attrs.image.length > 3) {
      throw new UnsupportedFeatureError(
        node,
        `${attrs.image.length} image axes (at most 3 are supported)`,
      );
    }
    return [info(x.dtype, onNode(node, () => col2ImShape(x.shape, attrs)))];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0, "input");
    const attrs = col2ImAttrs(node, fromTensors(inputs));
    return [onNode(node, () => col2ImRef(x, attrs))];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "input");
    const attrs = col2ImAttrs(node, fromInfos(node, ctx.inputInfos));
    return onNode(node, () => prepareCol2Im(ctx.gpu, ctx, x, outputs[0], attrs));
  },
};

// ---- DeformConv (opset 19) ----

function deformConvAttrs(node: OnnxNode, x: Shaped, w: Shaped): DeformConvAttrs {
  if (x.shape.length !== 4) {
    // The ONNX reference implements 2-D only as well.
    throw new UnsupportedFeatureError(
      node,
      `X of rank ${x.shape.length} (only 2-D deformable convolution, 4-D X, is supported)`,
    );
  }
  if (w.shape.length !== 4) throw new NodeError(node, `W has rank ${w.shape.length}, expected 4`);
  const kernel = w.shape.slice(2);
  if (node.attrs.has("kernel_shape") && attrInts(node, "kernel_shape").join() !== kernel.join()) {
    throw new NodeError(
      node,
      `kernel_shape [${attrInts(node, "kernel_shape")}] does not match W's [${kernel}]`,
    );
  }
  const [s0, s1] = axisList(node, "strides", 2, 1, [1, 1]);
  const [d0, d1] = axisList(node, "dilations", 2, 1, [1, 1]);
  const [p0, p1, p2, p3] = axisList(node, "pads", 4, 0, [0, 0, 0, 0]);
  const group = attrInt(node, "group", 1);
  const offsetGroup = attrInt(node, "offset_group", 1);
  if (!(group >= 1) || !(offsetGroup >= 1)) {
    throw new NodeError(node, `group (${group}) and offset_group (${offsetGroup}) must be >= 1`);
  }
  return {
    strides: [s0, s1],
    dilations: [d0, d1],
    pads: [p0, p1, p2, p3],
    group,
    offsetGroup,
  };
}

const DeformConv: OpImpl = {
  infer({ node }, inputs) {
    const x = required(node, inputs, 0, "X");
    const w = required(node, inputs, 1, "W");
    const offset = required(node, inputs, 2, "offset");
    const [b, mask] = [inputs[3], inputs[4]];
    const named: [Shaped | undefined, string][] = [
      [x, "X"],
      [w, "W"],
      [offset, "offset"],
      [b, "B"],
      [mask, "mask"],
    ];
    for (const [t, what] of named) if (t) checkFloat(node, t, what);
    const attrs = deformConvAttrs(node, x, w);
    const shape = onNode(
      node,
      () => deformConvShape(x.shape, w.shape, offset.shape, attrs, b?.shape, mask?.shape),
    );
    return [info(x.dtype, shape)];
  },
  cpu({ node }, inputs) {
    const x = required(node, inputs, 0, "X");
    const w = required(node, inputs, 1, "W");
    const offset = required(node, inputs, 2, "offset");
    const attrs = deformConvAttrs(node, x, w);
    return [onNode(node, () => deformConvRef(x, w, offset, attrs, inputs[3], inputs[4]))];
  },
  gpu(ctx, inputs, outputs) {
    const { node } = ctx;
    const x = required(node, inputs, 0, "X");
    const w = required(node, inputs, 1, "W");
    const offset = required(node, inputs, 2, "offset");
    const attrs = deformConvAttrs(node, x, w);
    return onNode(
      node,
      () => prepareDeformConv(ctx.gpu, ctx, x, w, offset, outputs[0], attrs, inputs[3], inputs[4]),
    );
  },
};

export const visionOps: Record<string, OpImpl> = {
  GridSample,
  AffineGrid,
  RoiAlign,
  LRN,
  LpPool,
  MaxUnpool,
  CenterCropPad,
  Col2Im,
  DeformConv,
};
