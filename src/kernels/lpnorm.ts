/** LpNormalization (p = 1 or 2) along one axis (shaders/lpnorm.wgsl). */
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

/** out = x / ||x||_p along `axis` (negative counts from the end). Float dtypes. */
export function prepareLpNorm(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  axis: number,
  p: 1 | 2,
  options: { strategy?: RowStrategy } = {},
): Dispatch[] {
  const a = normAxis(x.shape, axis, "lpnorm");
  if (p !== 1 && p !== 2) throw new EngineError(`lpnorm: p must be 1 or 2, not ${p}`);
  if (x.dtype !== "float32" && x.dtype !== "float16") {
    throw new EngineError(`lpnorm: dtype ${x.dtype} is not a float type`);
  }
  if (sizeOf(out.shape) !== sizeOf(x.shape)) {
    throw new EngineError(`lpnorm: output ${shapeString(out.shape)} differs from input`);
  }
  const { outer, n, inner } = rowView(x.shape, a);
  const rows = outer * inner;
  if (rows === 0 || n === 0) return [];
  const strategy = options.strategy ?? chooseRowStrategy(gpu, rows, n);
  const uniform = owner.own(createUniform(gpu, "lpnorm", { rows, n, inner }));
  const spec = {
    shader: "lpnorm",
    entryPoint: strategy === "group" ? "per_group" : "per_thread",
    constants: { WG: ROW_WG, P: p, ROUND_F16: x.dtype === "float16" ? 1 : 0 },
  };
  const workgroups = strategy === "group" ? rows : Math.ceil(rows / ROW_WG);
  return [prepareDispatch(gpu, spec, [x, out, uniform], workgroups)];
}
