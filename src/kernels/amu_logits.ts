/** Batch logits against a class matrix (`shaders/amu_logits.wgsl`): the AMU head's
 * z = x[batch] @ W^T with the batch gathered through the order buffer, and CLIP's
 * 100 * clip_f @ clip_weights. Rows come from a step-state buffer (see `amu_step.ts`). */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString } from "../util/tensor.ts";
import type { ClassMatrixLayout } from "./amu_logits_shape.ts";

export type { ClassMatrixLayout } from "./amu_logits_shape.ts";

/** Rows x classes computed by one invocation: the shader's written-out blocks. */
export type LogitsBlock = 4 | 8 | 16;

/** Block for `maxRows` batch rows: on llvmpipe, where loads are the cost, the largest block the
 * batch fills (16 x 16 for big matrices); on GPUs, 4 x 4 (more invocations, fewer registers). */
export function chooseLogitsBlock(gpu: Gpu, maxRows: number): LogitsBlock {
  if (!gpu.summary.isLlvmpipe) return 4;
  if (maxRows >= 64) return 16;
  return maxRows >= 8 ? 8 : 4;
}

/** Buffers the vec4 kernels read must hold whole vec4s. */
export function checkVec4Buffer(t: GpuTensor | GPUBuffer, what: string): void {
  const size = t instanceof GPUBuffer ? t.size : t.buffer.size;
  if (size % 16 !== 0) {
    throw new EngineError(
      `${what}: buffer of ${size} bytes is not a multiple of 16 bytes ` +
        `(AMU kernels read vec4s; allocate with padding)`,
    );
  }
}

export interface LogitsArgs {
  /** Step state (rowStart, rowCount): a training step's, or a fixed one. */
  state: GPUBuffer;
  /** i32 row indices; rows are `order[rowStart + r]` when given, else `rowStart + r`. */
  order?: GpuTensor | GPUBuffer;
  /** Features [anyRows, depth] float32 (buffer a multiple of 16 bytes). */
  a: GpuTensor;
  /** Class matrix, [C, depth] ("classes-major") or [depth, C] ("depth-major"). */
  b: GpuTensor;
  layout: ClassMatrixLayout;
  /** Output [>= maxRows, C] float32: row r of the batch goes to out[r]. */
  out: GpuTensor;
  /** Most rows any step has (the dispatch size). */
  maxRows: number;
  scale?: number;
  block?: LogitsBlock;
  workgroupSize?: number;
}

export function prepareAmuLogits(gpu: Gpu, owner: ResourceOwner, args: LogitsArgs): Dispatch[] {
  const { a, b, out, layout, maxRows } = args;
  const depth = a.shape[1];
  const classes = layout === "classes-major" ? b.shape[0] : b.shape[1];
  const bDepth = layout === "classes-major" ? b.shape[1] : b.shape[0];
  if (a.shape.length !== 2 || b.shape.length !== 2 || bDepth !== depth) {
    throw new EngineError(
      `amu logits: features ${shapeString(a.shape)} do not match ${layout} class matrix ` +
        `${shapeString(b.shape)}`,
    );
  }
  if (out.shape[out.shape.length - 1] !== classes || out.shape[0] < maxRows) {
    throw new EngineError(
      `amu logits: output ${shapeString(out.shape)} cannot hold ${maxRows} x ${classes}`,
    );
  }
  checkVec4Buffer(a, "amu logits features");
  checkVec4Buffer(b, "amu logits class matrix");
  const block = args.block ?? chooseLogitsBlock(gpu, maxRows);
  const wg = args.workgroupSize ?? 64;
  const classTiles = Math.ceil(classes / block);
  const rowTiles = Math.ceil(maxRows / block);
  const bMode = layout === "classes-major"
    ? (depth % 4 === 0 ? 0 : 2)
    : (classes % 4 === 0 ? 1 : 3);
  const uniform = owner.own(createUniform(gpu, "amu_logits", {
    classes,
    depth,
    classTiles,
    rowTiles,
    scale: args.scale ?? 1,
  }));
  // Without GATHER the order binding is never read, but it must exist: bind the features.
  const order = args.order ?? a;
  return [prepareDispatch(
    gpu,
    {
      shader: "amu_logits",
      entryPoint: `main_${block}x${block}`,
      constants: {
        WG: wg,
        GATHER: args.order ? 1 : 0,
        A_VEC: depth % 4 === 0 ? 1 : 0,
        B_MODE: bMode,
      },
    },
    [args.state, order, a, b, out, uniform],
    Math.ceil((classTiles * rowTiles) / wg),
  )];
}
