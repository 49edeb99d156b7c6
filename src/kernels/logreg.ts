/** Multinomial logistic regression's per-row loss and gradients (`shaders/logreg.wgsl`). See
 * `logreg_ref.ts` for the same arithmetic on the host. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";

type Buf = GpuTensor | GPUBuffer;

const WG = 64;

export interface LogregRowsArgs {
  /** f32 [rows, K]: the logits in, softmax(z) - onehot(y) out. */
  z: Buf;
  /** i32 [rows]. */
  labels: Buf;
  /** f32 [rows], written: each row's cross-entropy. */
  rowLoss: Buf;
  rows: number;
  classes: number;
}

export function prepareLogregRows(gpu: Gpu, owner: ResourceOwner, a: LogregRowsArgs): Dispatch[] {
  const uniform = owner.own(
    createUniform(gpu, "logreg", { rows: a.rows, classes: a.classes, depth: 0 }, "logreg rows"),
  );
  return [prepareDispatch(
    gpu,
    { shader: "logreg", entryPoint: "rows", constants: { WG } },
    [a.z, a.labels, a.rowLoss, uniform],
    Math.ceil(a.rows / WG),
  )];
}

export interface LogregGradArgs {
  /** f32 [rows, K]: the logit gradients (`prepareLogregRows`' output). */
  g: Buf;
  /** f32 [rows, depth]: the features. */
  x: Buf;
  /** f32 [K, depth], written: g^T @ x. */
  grad: Buf;
  rows: number;
  classes: number;
  depth: number;
}

export function prepareLogregWeightGrad(
  gpu: Gpu,
  owner: ResourceOwner,
  a: LogregGradArgs,
): Dispatch[] {
  const uniform = owner.own(createUniform(
    gpu,
    "logreg",
    { rows: a.rows, classes: a.classes, depth: a.depth },
    "logreg weight_grad",
  ));
  return [prepareDispatch(
    gpu,
    { shader: "logreg", entryPoint: "weight_grad", constants: { WG } },
    [a.g, a.x, a.grad, uniform],
    Math.ceil((a.classes * a.depth) / WG),
  )];
}
