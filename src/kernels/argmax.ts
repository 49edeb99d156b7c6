/** ArgMax / ArgMin along one axis (shaders/argmax.wgsl). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  storageType,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { chooseRowStrategy, ROW_WG, type RowStrategy } from "./reduce.ts";
import { normAxis, rowView } from "./reduce_shape.ts";

export interface ArgOptions {
  /** ArgMin instead of ArgMax. */
  min?: boolean;
  /** On ties, the last index instead of the first (ONNX select_last_index). */
  selectLastIndex?: boolean;
  /** Force a work split (tests); default chooses by size. */
  strategy?: RowStrategy;
}

/** out (int32 or int64, one index per row; keepdims only changes its shape) = the index of
 * the largest (smallest) element of x along `axis`. */
export function prepareArgMax(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  axis: number,
  options: ArgOptions = {},
): Dispatch[] {
  const name = options.min ? "argmin" : "argmax";
  const a = normAxis(x.shape, axis, name);
  const { outer, n, inner } = rowView(x.shape, a);
  const rows = outer * inner;
  if (out.dtype !== "int64" && out.dtype !== "int32") {
    throw new EngineError(`${name}: output dtype ${out.dtype} is not an integer type`);
  }
  if (sizeOf(out.shape) !== rows) {
    throw new EngineError(`${name}: output ${shapeString(out.shape)} needs ${rows} values`);
  }
  if (rows === 0) return [];
  if (n === 0) {
    throw new EngineError(`${name}: axis ${axis} of ${shapeString(x.shape)} is empty`);
  }
  const strategy = options.strategy ?? chooseRowStrategy(gpu, rows, n);
  const uniform = owner.own(createUniform(gpu, "argmax", { rows, n, inner }, name));
  const spec = {
    shader: "argmax",
    entryPoint: strategy === "group" ? "per_group" : "per_thread",
    constants: {
      WG: ROW_WG,
      IS_MIN: options.min ? 1 : 0,
      SELECT_LAST: options.selectLastIndex ? 1 : 0,
      IS_FLOAT: storageType(x.dtype) === "f32" ? 1 : 0,
    },
    placeholders: { T: storageType(x.dtype) },
  };
  const workgroups = strategy === "group" ? rows : Math.ceil(rows / ROW_WG);
  return [prepareDispatch(gpu, spec, [x, out, uniform], workgroups)];
}
