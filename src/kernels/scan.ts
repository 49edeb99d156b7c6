/** CumSum and Hardmax (shaders/scan.wgsl): one invocation walks each line along the axis. */
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
import { sizeOf } from "../util/tensor.ts";

const WG = 64;

function prepareLines(
  gpu: Gpu,
  owner: ResourceOwner,
  entryPoint: "cumsum" | "hardmax",
  x: GpuTensor,
  out: GpuTensor,
  axis: number,
  constants: Record<string, number>,
): Dispatch[] {
  if (x.shape.length !== out.shape.length || x.shape.some((n, d) => n !== out.shape[d])) {
    throw new EngineError(`${entryPoint}: output shape differs from the input's`);
  }
  if (x.dtype === "bool") throw new EngineError(`${entryPoint}: bool input is not supported`);
  const n = x.shape[axis];
  const lines = sizeOf(x.shape) / Math.max(n, 1);
  if (sizeOf(x.shape) === 0) return [];
  const uniform = owner.own(createUniform(gpu, "scan", {
    lines,
    n,
    inner: sizeOf(x.shape.slice(axis + 1)),
  }, entryPoint));
  return [prepareDispatch(
    gpu,
    {
      shader: "scan",
      entryPoint,
      constants: { WG, ROUND_F16: x.dtype === "float16" ? 1 : 0, ...constants },
      placeholders: { T: storageType(x.dtype) },
    },
    [x, out, uniform],
    Math.ceil(lines / WG),
  )];
}

/** out = running sums of x along `axis` (non-negative). */
export function prepareCumSum(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  axis: number,
  exclusive: boolean,
  reverse: boolean,
): Dispatch[] {
  return prepareLines(gpu, owner, "cumsum", x, out, axis, {
    EXCLUSIVE: exclusive ? 1 : 0,
    REVERSE: reverse ? 1 : 0,
  });
}

/** out = 1 at the first maximum of each line of x along `axis`, 0 elsewhere. */
export function prepareHardmax(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  axis: number,
): Dispatch[] {
  return prepareLines(gpu, owner, "hardmax", x, out, axis, {});
}
