/** LayerNormalization over the trailing dims (shaders/layernorm.wgsl). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  STORAGE_USAGE,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { chooseRowStrategy, ROW_WG, type RowStrategy } from "./reduce.ts";
import { normAxis, rowView } from "./reduce_shape.ts";

export interface LayerNormOptions {
  /** First normalised dim (negative counts from the end); default -1. */
  axis?: number;
  /** Added to the variance; default 1e-5. */
  epsilon?: number;
  /** Receives each row's mean (x.shape[:axis] + 1s, float32). */
  mean?: GpuTensor;
  /** Receives each row's 1 / sqrt(var + epsilon). */
  invStdDev?: GpuTensor;
  /** Force a work split (tests); default chooses by size. */
  strategy?: RowStrategy;
}

/** `scale` / `bias` hold the normalised shape or a suffix of it (repeated along the row). */
function checkParam(x: GpuTensor, p: GpuTensor, axis: number, what: string): number {
  const normalised = x.shape.slice(axis);
  const shape = [...p.shape];
  while (shape.length > 0 && shape[0] === 1) shape.shift();
  const suffix = normalised.slice(normalised.length - shape.length);
  const count = sizeOf(p.shape);
  if (
    shape.length > normalised.length || shape.some((d, i) => d !== suffix[i]) || count === 0
  ) {
    throw new EngineError(
      `layernorm: ${what} ${shapeString(p.shape)} does not match the normalised shape ` +
        shapeString(normalised),
    );
  }
  return count;
}

/** out = LayerNorm(x) * scale + bias over dims axis..rank-1. Float dtypes. */
export function prepareLayerNorm(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  scale: GpuTensor,
  bias: GpuTensor | undefined,
  out: GpuTensor,
  options: LayerNormOptions = {},
): Dispatch[] {
  const axisIn = options.axis ?? -1;
  const axis = normAxis(x.shape, axisIn, "layernorm");
  if (x.dtype !== "float32" && x.dtype !== "float16") {
    throw new EngineError(`layernorm: dtype ${x.dtype} is not a float type`);
  }
  if (sizeOf(out.shape) !== sizeOf(x.shape)) {
    throw new EngineError(`layernorm: output ${shapeString(out.shape)} differs from input`);
  }
  const scaleCount = checkParam(x, scale, axis, "scale");
  const biasCount = bias ? checkParam(x, bias, axis, "bias") : 0;
  const { outer: rows, n } = rowView(x.shape, axis, true);
  for (const [stat, name] of [[options.mean, "mean"], [options.invStdDev, "invStdDev"]] as const) {
    if (stat && sizeOf(stat.shape) !== rows) {
      throw new EngineError(`layernorm: ${name} ${shapeString(stat.shape)} needs ${rows} values`);
    }
  }
  if (rows === 0 || n === 0) return [];
  // Bit 0: write the means, bit 1: the inverse deviations.
  const writeStats = (options.mean ? 1 : 0) | (options.invStdDev ? 2 : 0);
  // An unused statistics output still needs a binding: a small private buffer (never shared,
  // so no two writable bindings alias), which the kernel does not write.
  const dummy = () =>
    owner.own(gpu.device.createBuffer({ size: 16, usage: STORAGE_USAGE, label: "unused stats" }));
  const meanOut = options.mean?.buffer ?? dummy();
  const invOut = options.invStdDev?.buffer ?? dummy();
  const strategy = options.strategy ?? chooseRowStrategy(gpu, rows, n);
  // float32 rows of vec4s run shaders/layernorm_vec4.wgsl (4 values per buffer access, ~4x
  // fewer of llvmpipe's per-lane load loops); it needs every bound buffer in whole vec4s.
  const vec4Buffers = [x.buffer, scale.buffer, bias?.buffer ?? scale.buffer, out.buffer];
  const useVec4 = strategy === "thread" && x.dtype === "float32" && n % 4 === 0 &&
    scaleCount % 4 === 0 && biasCount % 4 === 0 &&
    vec4Buffers.every((b) => b.size >= 16 && b.size % 16 === 0);
  if (useVec4) {
    const uniform4 = owner.own(createUniform(gpu, "layernorm_vec4", {
      rows,
      n4: n / 4,
      scale_count4: scaleCount / 4,
      bias_count4: biasCount / 4,
      epsilon: options.epsilon ?? 1e-5,
      write_stats: writeStats,
    }, "layernorm vec4"));
    return [prepareDispatch(
      gpu,
      { shader: "layernorm_vec4", entryPoint: "per_thread", constants: { WG: ROW_WG } },
      [x, scale, bias ?? scale, out, meanOut, invOut, uniform4],
      Math.ceil(rows / ROW_WG),
    )];
  }
  const uniform = owner.own(createUniform(gpu, "layernorm", {
    rows,
    n,
    scale_count: scaleCount,
    bias_count: biasCount,
    epsilon: options.epsilon ?? 1e-5,
    write_stats: writeStats,
  }));
  const spec = {
    shader: "layernorm",
    entryPoint: strategy === "group" ? "per_group" : "per_thread",
    constants: { WG: ROW_WG, ROUND_F16: x.dtype === "float16" ? 1 : 0 },
  };
  const workgroups = strategy === "group" ? rows : Math.ceil(rows / ROW_WG);
  return [prepareDispatch(
    gpu,
    spec,
    [x, scale, bias ?? scale, out, meanOut, invOut, uniform],
    workgroups,
  )];
}
