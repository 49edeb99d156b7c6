/** The AMU head's weight gradient fused with AdamW (`shaders/amu_update.wgsl`). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { checkVec4Buffer } from "./amu_logits.ts";
import type { AdamHyper } from "./amu_update_shape.ts";

export type { AdamHyper } from "./amu_update_shape.ts";

type Buf = GpuTensor | GPUBuffer;

/** Weights (classes x dims, square) updated by one invocation: the shader's written-out blocks. */
export type UpdateBlock = 4 | 8;

export interface UpdateArgs {
  /** Step state: batch rows and this step's AdamW scalars. */
  state: GPUBuffer;
  /** i32 order buffer. */
  order: Buf;
  /** f32 normalised features [N, D]. */
  x: Buf;
  /** f32 [maxRows, C]: gradient with respect to the head logits. */
  dz: Buf;
  /** f32 [C, D] weights, first and second moments (updated in place). */
  w: Buf;
  m: Buf;
  v: Buf;
  classes: number;
  dim: number;
  adam: AdamHyper;
  block?: UpdateBlock;
  workgroupSize?: number;
}

export function prepareAmuUpdate(gpu: Gpu, owner: ResourceOwner, args: UpdateArgs): Dispatch[] {
  for (const [t, what] of [[args.x, "features"], [args.dz, "dz"], [args.w, "weights"]] as const) {
    checkVec4Buffer(t, `amu update ${what}`);
  }
  checkVec4Buffer(args.m, "amu update exp_avg");
  checkVec4Buffer(args.v, "amu update exp_avg_sq");
  const block = args.block ?? 4;
  const wg = args.workgroupSize ?? 64;
  const classTiles = Math.ceil(args.classes / block);
  const dimTiles = Math.ceil(args.dim / block);
  const { beta1, beta2, eps } = args.adam;
  const uniform = owner.own(createUniform(gpu, "amu_update", {
    classes: args.classes,
    dim: args.dim,
    classTiles,
    dimTiles,
    beta1,
    beta2,
    oneMinusBeta1: 1 - beta1,
    oneMinusBeta2: 1 - beta2,
    eps,
  }));
  return [prepareDispatch(
    gpu,
    {
      shader: "amu_update",
      entryPoint: `main_${block}x${block}`,
      constants: {
        WG: wg,
        X_VEC: args.dim % 4 === 0 ? 1 : 0,
        DZ_VEC: args.classes % 4 === 0 ? 1 : 0,
      },
    },
    [args.state, args.order, args.x, args.dz, args.w, args.m, args.v, uniform],
    Math.ceil((classTiles * dimTiles) / wg),
  )];
}
