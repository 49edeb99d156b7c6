/** Softmax / LogSoftmax along one axis (shaders/softmax.wgsl). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { chooseRowStrategy, ROW_WG, type RowStrategy } from "./reduce.ts";
import { normAxis, rowView } from "./reduce_shape.ts";

export interface SoftmaxOptions {
  /** LogSoftmax instead of Softmax. */
  log?: boolean;
  /** ONNX opset < 13: the input is coerced to 2-D at `axis` and each row of the flattened
   * trailing dims is normalised as a whole. */
  coerce2d?: boolean;
  /** Force a work split (tests); default chooses by size. */
  strategy?: RowStrategy;
}

/** out = softmax(x) along `axis` (negative counts from the end). Float dtypes only. */
export function prepareSoftmax(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  axis: number,
  options: SoftmaxOptions = {},
): Dispatch[] {
  const name = options.log ? "logsoftmax" : "softmax";
  const a = normAxis(x.shape, axis, name);
  if (x.dtype !== "float32" && x.dtype !== "float16") {
    throw new EngineError(`${name}: dtype ${x.dtype} is not a float type`);
  }
  if (sizeOf(out.shape) !== sizeOf(x.shape) || out.dtype !== x.dtype) {
    throw new EngineError(
      `${name}: output ${shapeString(out.shape)} ${out.dtype} differs from input`,
    );
  }
  const { outer, n, inner } = rowView(x.shape, a, options.coerce2d);
  const rows = outer * inner;
  if (rows === 0 || n === 0) return [];
  const strategy = options.strategy ?? chooseRowStrategy(gpu, rows, n);
  const uniform = owner.own(createUniform(gpu, "softmax", { rows, n, inner }, name));
  const spec = {
    shader: "softmax",
    entryPoint: strategy === "group" ? "per_group" : "per_thread",
    constants: {
      WG: ROW_WG,
      LOG: options.log ? 1 : 0,
      ROUND_F16: x.dtype === "float16" ? 1 : 0,
    },
  };
  const workgroups = strategy === "group" ? rows : Math.ceil(rows / ROW_WG);
  return [prepareDispatch(gpu, spec, [x, out, uniform], workgroups)];
}
