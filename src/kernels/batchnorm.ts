/** GPU binding of `shaders/batchnorm.wgsl`: inference batch normalization as an affine map. */
import { type CpuTensor, shapeString, sizeOf } from "../util/tensor.ts";
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import type { BatchNormLayout } from "./batchnorm_shape.ts";

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

/** Folds constant parameter vectors on the host into Y = X * scale' + shift' (float64
 * arithmetic, as batchnorm_fold.wgsl does on the GPU in float32). */
function foldBatchNorm(
  scale: ArrayLike<number>,
  bias: ArrayLike<number>,
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  epsilon: number,
): { scale: Float32Array; shift: Float32Array } {
  const n = scale.length;
  const s = new Float32Array(n), t = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = scale[i] / Math.sqrt(variance[i] + epsilon);
    s[i] = a;
    t[i] = bias[i] - mean[i] * a;
  }
  return { scale: s, shift: t };
}

/** Records Y = (X - mean) / sqrt(var + epsilon) * scale + bias with parameters mapped onto X by
 * `layout` (see batchnorm_shape.ts). X and Y have the same shape. */
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
    const fold = owner.own(
      createUniform(gpu, "batchnorm_fold", { count: layout.params, epsilon }, "batchnorm fold"),
    );
    dispatches.push(prepareDispatch(
      gpu,
      { shader: "batchnorm_fold", constants: { WG } },
      [
        p.scale,
        p.bias,
        p.mean,
        p.variance,
        affine,
        fold,
      ],
      Math.ceil(layout.params / WG),
    ));
  }
  const rows = total / layout.inner;
  const runsPerRow = Math.ceil(layout.inner / RUN);
  const uniform = owner.own(createUniform(gpu, "batchnorm", {
    rows,
    inner: layout.inner,
    params: layout.params,
    runs_per_row: runsPerRow,
  }));
  dispatches.push(prepareDispatch(
    gpu,
    {
      shader: "batchnorm",
      entryPoint: "main",
      constants: { WG, ROUND_F16: y.dtype === "float16" ? 1 : 0 },
    },
    [x, affine, y, uniform],
    Math.ceil((rows * runsPerRow) / WG),
  ));
  return dispatches;
}
