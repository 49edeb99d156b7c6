/** ONNX Resize (opsets 10, 11, 13, 18, 19) and Upsample (7, 9): turns the operator's inputs and
 * attributes into an output shape and ResizeOptions for the resize kernels. Scales, sizes and
 * roi must be known at plan time (constInputs). */
import type { CpuTensor, DType } from "../../util/tensor.ts";
import { prepareResize } from "../../kernels/resize.ts";
import { resizeRef } from "../../kernels/resize_ref.ts";
import {
  COORD_MODES,
  type CoordMode,
  NEAREST_MODES,
  type NearestMode,
  type ResizeMode,
  type ResizeOptions,
} from "../../kernels/resize_shape.ts";
import {
  attrFloat,
  attrFloats,
  attrInt,
  attrInts,
  attrString,
  constValues,
  NodeError,
  normAxis,
  type OnnxNode,
  type OpContext,
  type OpImpl,
  type TensorInfo,
} from "../types.ts";
import { onNode } from "./common.ts";

interface ResizePlan {
  outShape: number[];
  opts: ResizeOptions;
}

/** What a plan is computed from: X's shape and the values of the constant inputs (undefined
 * when the input is omitted or empty). */
interface ResizeArgs {
  shape: readonly number[];
  roi?: number[];
  scales?: number[];
  sizes?: number[];
}

function resizeMode(node: OnnxNode, fallback: string): ResizeMode {
  const mode = attrString(node, "mode", fallback);
  if (mode === "bilinear") return "linear"; // Upsample-1's name for linear
  if (mode !== "nearest" && mode !== "linear" && mode !== "cubic") {
    throw new NodeError(node, `unknown mode '${mode}'`);
  }
  return mode;
}

/** Resize-10 and Upsample: asymmetric coordinates, nearest rounds down when upsampling an axis
 * and up when downsampling it (onnxruntime's behaviour; the spec of these versions leaves it
 * open and the conformance data is integer-scale repeats). */
function legacyPlan(node: OnnxNode, args: ResizeArgs): ResizePlan {
  const mode = resizeMode(node, "nearest");
  if (mode === "cubic") throw new NodeError(node, "mode 'cubic' needs Resize opset 11 or later");
  const { shape, scales } = args;
  if (!scales) throw new NodeError(node, "scales are required");
  if (scales.length !== shape.length) {
    throw new NodeError(node, `${scales.length} scales for input of rank ${shape.length}`);
  }
  return {
    outShape: shape.map((d, i) => Math.floor(scales[i] * d)),
    opts: {
      mode,
      coordMode: "asymmetric",
      nearestMode: "simple",
      scales,
      scaledLengths: shape.map((d, i) => Math.fround(scales[i] * d)),
    },
  };
}

function resizePlan(ctx: OpContext, args: ResizeArgs): ResizePlan {
  const { node } = ctx;
  if (ctx.opset < 11) return legacyPlan(node, args);
  const { shape } = args;
  const rank = shape.length;
  const mode = resizeMode(node, "nearest");
  const coordMode = attrString(node, "coordinate_transformation_mode", "half_pixel");
  if (
    !(COORD_MODES as readonly string[]).includes(coordMode) ||
    (coordMode === "tf_half_pixel_for_nn" && ctx.opset >= 13)
  ) {
    throw new NodeError(node, `unknown coordinate_transformation_mode '${coordMode}'`);
  }
  const nearestMode = attrString(node, "nearest_mode", "round_prefer_floor");
  if (!(NEAREST_MODES as readonly string[]).includes(nearestMode) || nearestMode === "simple") {
    throw new NodeError(node, `unknown nearest_mode '${nearestMode}'`);
  }
  const antialias = attrInt(node, "antialias", 0) !== 0;
  if (antialias && mode === "nearest") {
    throw new NodeError(node, "antialias is only defined for modes linear and cubic");
  }
  const policy = attrString(node, "keep_aspect_ratio_policy", "stretch");
  if (policy !== "stretch" && policy !== "not_larger" && policy !== "not_smaller") {
    throw new NodeError(node, `unknown keep_aspect_ratio_policy '${policy}'`);
  }
  const axes = attrInts(node, "axes", [...Array(rank).keys()]).map((a) => normAxis(node, a, rank));
  if (new Set(axes).size !== axes.length) throw new NodeError(node, `repeated axes [${axes}]`);

  const { scales, sizes, roi } = args;
  if ((scales === undefined) === (sizes === undefined)) {
    throw new NodeError(node, "exactly one of 'scales' and 'sizes' must be given (non-empty)");
  }
  const outShape = [...shape];
  const fullScales = shape.map(() => 1);
  const scaledLengths = [...shape];
  if (scales) {
    if (scales.length !== axes.length) {
      throw new NodeError(node, `${scales.length} scales for ${axes.length} resized axes`);
    }
    axes.forEach((axis, i) => {
      const s = scales[i];
      if (!(s > 0)) throw new NodeError(node, `scale ${s} for axis ${axis} must be positive`);
      fullScales[axis] = s;
      // Output length: floor(input * scale) in float64 (the reference ignores roi here); the
      // real-valued length the coordinate transforms use is computed in float32 by numpy.
      outShape[axis] = Math.floor(s * shape[axis]);
      scaledLengths[axis] = Math.fround(s * shape[axis]);
    });
  } else if (sizes) {
    if (sizes.length !== axes.length) {
      throw new NodeError(node, `${sizes.length} sizes for ${axes.length} resized axes`);
    }
    if (sizes.some((s) => !(s >= 0) || !Number.isInteger(s))) {
      throw new NodeError(node, `sizes [${sizes}] must be non-negative integers`);
    }
    if (policy === "stretch") {
      axes.forEach((axis, i) => {
        fullScales[axis] = sizes[i] / shape[axis];
        outShape[axis] = sizes[i];
        scaledLengths[axis] = fullScales[axis] * shape[axis];
      });
    } else {
      const ratios = axes.map((axis, i) => sizes[i] / shape[axis]);
      const scale = policy === "not_larger" ? Math.min(...ratios) : Math.max(...ratios);
      for (const axis of axes) {
        fullScales[axis] = scale;
        outShape[axis] = Math.floor(scale * shape[axis] + 0.5);
        scaledLengths[axis] = scale * shape[axis];
      }
    }
  }
  let fullRoi: number[] | undefined;
  if (coordMode === "tf_crop_and_resize") {
    if (!roi) {
      throw new NodeError(node, "coordinate_transformation_mode tf_crop_and_resize needs roi");
    }
    if (roi.length !== 2 * axes.length) {
      throw new NodeError(node, `roi has ${roi.length} values, expected ${2 * axes.length}`);
    }
    fullRoi = [...shape.map(() => 0), ...shape.map(() => 1)];
    axes.forEach((axis, i) => {
      fullRoi![axis] = roi[i];
      fullRoi![rank + axis] = roi[axes.length + i];
    });
  }
  return {
    outShape,
    opts: {
      mode,
      coordMode: coordMode as CoordMode,
      nearestMode: nearestMode as NearestMode,
      cubicA: attrFloat(node, "cubic_coeff_a", -0.75),
      excludeOutside: attrInt(node, "exclude_outside", 0) !== 0,
      antialias,
      extrapolationValue: attrFloat(node, "extrapolation_value", 0),
      scales: fullScales,
      scaledLengths,
      roi: fullRoi,
    },
  };
}

function upsamplePlan(ctx: OpContext, args: ResizeArgs): ResizePlan {
  const scales = ctx.opset < 9 ? attrFloats(ctx.node, "scales") : args.scales;
  return legacyPlan(ctx.node, { ...args, scales });
}

/** Values of a constant input, or undefined when it is omitted or empty. */
function infoValues(ctx: OpContext, info: TensorInfo | undefined, what: string) {
  if (!info || info.shape.some((d) => d === 0)) return undefined;
  return constValues(ctx.node, info, what);
}

function cpuValues(t: CpuTensor | undefined): number[] | undefined {
  if (!t || t.data.length === 0) return undefined;
  return Array.from(t.data as ArrayLike<number>);
}

function checkInput(ctx: OpContext, dtype: DType | undefined): void {
  if (dtype === undefined) throw new NodeError(ctx.node, "missing input X");
  if (dtype === "bool") throw new NodeError(ctx.node, "Resize does not take bool tensors");
}

/** Builds Resize or Upsample from its plan function; `argIndex` locates roi/scales/sizes. */
function resizeOp(
  plan: (ctx: OpContext, args: ResizeArgs) => ResizePlan,
  argIndex: (opset: number) => { roi?: number; scales?: number; sizes?: number },
): OpImpl {
  const argsFromInfos = (ctx: OpContext, inputs: readonly (TensorInfo | undefined)[]) => {
    const at = argIndex(ctx.opset);
    return {
      shape: inputs[0]!.shape,
      roi: at.roi === undefined ? undefined : infoValues(ctx, inputs[at.roi], "roi"),
      scales: at.scales === undefined ? undefined : infoValues(ctx, inputs[at.scales], "scales"),
      sizes: at.sizes === undefined ? undefined : infoValues(ctx, inputs[at.sizes], "sizes"),
    };
  };
  return {
    constInputs: [1, 2, 3],
    infer(ctx, inputs) {
      checkInput(ctx, inputs[0]?.dtype);
      const { outShape } = plan(ctx, argsFromInfos(ctx, inputs));
      return [{ dtype: inputs[0]!.dtype, shape: outShape }];
    },
    cpu(ctx, inputs) {
      checkInput(ctx, inputs[0]?.dtype);
      const at = argIndex(ctx.opset);
      const x = inputs[0]!;
      const { outShape, opts } = plan(ctx, {
        shape: x.shape,
        roi: at.roi === undefined ? undefined : cpuValues(inputs[at.roi]),
        scales: at.scales === undefined ? undefined : cpuValues(inputs[at.scales]),
        sizes: at.sizes === undefined ? undefined : cpuValues(inputs[at.sizes]),
      });
      return [onNode(ctx.node, () => resizeRef(x, outShape, opts))];
    },
    gpu(ctx, inputs, outputs) {
      const { opts } = plan(ctx, argsFromInfos(ctx, ctx.inputInfos));
      return onNode(ctx.node, () => prepareResize(ctx.gpu, ctx, inputs[0]!, outputs[0], opts));
    },
  };
}

/** ONNX operators of the resize family, keyed by op type. */
export const resizeOps: Record<string, OpImpl> = {
  Resize: resizeOp(
    resizePlan,
    (opset) => opset < 11 ? { scales: 1 } : { roi: 1, scales: 2, sizes: 3 },
  ),
  Upsample: resizeOp(upsamplePlan, (opset) => opset < 9 ? {} : { scales: 1 }),
};
