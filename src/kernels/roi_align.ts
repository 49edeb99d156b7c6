/** RoiAlign on the GPU (shaders/roi_align.wgsl); host reference in roi_align_ref.ts. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  statusOrSink,
  type StatusSlot,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { type RoiAlignOptions, roiAlignShape } from "./roi_align_shape.ts";

const WG = 64;

/** Records Y = RoiAlign(X, rois, batch_indices): X [N, C, H, W] float, rois [R, 4] float,
 * batch_indices [R] int32/int64, Y [R, C, output_height, output_width]. A batch index outside
 * [0, N) is reported in `status` (the offending value) and clamped. */
export function prepareRoiAlign(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  rois: GpuTensor,
  batchIndices: GpuTensor,
  y: GpuTensor,
  o: RoiAlignOptions,
  status?: StatusSlot,
): Dispatch[] {
  const label = `roi align ${shapeString(x.shape)} rois ${shapeString(rois.shape)}`;
  for (const t of [x, rois, y]) {
    if (t.dtype !== "float32" && t.dtype !== "float16") {
      throw new EngineError(`${label}: dtype ${t.dtype} is not a float type`);
    }
  }
  if (batchIndices.dtype !== "int32" && batchIndices.dtype !== "int64") {
    throw new EngineError(`${label}: batch_indices dtype ${batchIndices.dtype} is not an integer`);
  }
  let shape: number[];
  try {
    shape = roiAlignShape(x.shape, rois.shape, batchIndices.shape, o);
  } catch (e) {
    throw new EngineError(`${label}: ${(e as Error).message}`);
  }
  if (shapeString(shape) !== shapeString(y.shape)) {
    throw new EngineError(
      `${label}: output is ${shapeString(y.shape)}, expected ${shapeString(shape)}`,
    );
  }
  const count = sizeOf(shape);
  if (count === 0) return [];
  if (sizeOf(x.shape) === 0) throw new EngineError(`${label}: X is empty`);
  const slot = statusOrSink(gpu, owner, status, "roiAlign");
  const uniform = owner.own(createUniform(gpu, "roi_align", {
    size: x.shape,
    pooled: [o.outputHeight, o.outputWidth],
    count,
    sampling_ratio: o.samplingRatio,
    spatial_scale: o.spatialScale,
    status_slot: slot.slot,
  }, "roi align"));
  return [prepareDispatch(
    gpu,
    {
      shader: "roi_align",
      constants: {
        WG,
        MAX: o.mode === "max" ? 1 : 0,
        HALF_PIXEL: o.halfPixel ? 1 : 0,
        ROUND_F16: y.dtype === "float16" ? 1 : 0,
      },
    },
    [
      x,
      rois,
      batchIndices,
      y,
      uniform,
      { buffer: slot.buffer },
    ],
    Math.ceil(count / WG),
  )];
}
