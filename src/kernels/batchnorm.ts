/** GPU binding of `shaders/batchnorm.wgsl`: inference batch normalization as an affine map. */
import { type CpuTensor, shapeString, sizeOf } from "../util/tensor.ts";
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  Params,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { type BatchNormLayout, foldBatchNorm } from "./batchnorm_ref.ts";

const WG = 64;
const RUN = 4;

/** The four parameter vectors: all host tensors (folded once on the CPU) or all GPU tensors
 * (folded by a first dispatch on every run). */
export type BatchNormParams =
  | { scale: CpuTensor; bias: CpuTensor; mean: CpuTensor; variance: CpuTensor }
  | { scale: GpuTensor; bias: GpuTensor; mean: GpuTensor; variance: GpuTensor };

function isHost(p: BatchNormParams): p is Extract<BatchNormParams, { scale: CpuTensor }> {
  return (p.scale as CpuTensor).data !== undefined;
}

/** Records Y = (X - mean) / sqrt(var + epsilon) * scale + bias with parameters mapped onto X by
 * `layout` (see batchnorm_ref.ts). X and Y have the same shape. */
export function prepareBatchNorm(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  y: GpuTensor,
  layout: BatchNormLayout,
  p: BatchNormParams,
  epsilon: number,
): Dispatch[] {
  if (shapeString(x.shape) !== shapeString(y.shape)) {
    throw new EngineError(
      `batchnorm: output ${shapeString(y.shape)} differs from input ${shapeString(x.shape)}`,
    );
  }
  const total = sizeOf(x.shape);
  for (const [name, t] of Object.entries(p) as [string, GpuTensor | CpuTensor][]) {
    if (sizeOf(t.shape) !== layout.params) {
      throw new EngineError(
        `batchnorm: ${name} has ${sizeOf(t.shape)} values, expected ${layout.params}`,
      );
    }
  }
  if (total === 0) return [];
  const dispatches: Dispatch[] = [];
  let affine: GPUBuffer;
  if (isHost(p)) {
    const f = foldBatchNorm(p.scale.data, p.bias.data, p.mean.data, p.variance.data, epsilon);
    const data = new Float32Array(2 * layout.params);
    data.set(f.scale);
    data.set(f.shift, layout.params);
    affine = owner.own(createStorageBuffer(gpu, data, "batchnorm affine"));
  } else {
    affine = owner.own(gpu.device.createBuffer({
      size: Math.max(16, 8 * layout.params),
      usage: GPUBufferUsage.STORAGE,
      label: "batchnorm affine",
    }));
    const fold = new Params().u32(layout.params).f32(epsilon);
    dispatches.push(prepareDispatch(
      gpu,
      { shader: "batchnorm", entryPoint: "fold", constants: { WG } },
      [
        p.scale,
        p.bias,
        p.mean,
        p.variance,
        affine,
        owner.own(createUniform(gpu, fold, "batchnorm fold")),
      ],
      Math.ceil(layout.params / WG),
    ));
  }
  const rows = total / layout.inner;
  const runsPerRow = Math.ceil(layout.inner / RUN);
  const params = new Params().u32(rows, layout.inner, layout.params, runsPerRow);
  dispatches.push(prepareDispatch(
    gpu,
    {
      shader: "batchnorm",
      entryPoint: "main",
      constants: { WG, ROUND_F16: y.dtype === "float16" ? 1 : 0 },
    },
    [x, affine, y, owner.own(createUniform(gpu, params, "batchnorm"))],
    Math.ceil((rows * runsPerRow) / WG),
  ));
  return dispatches;
}
