/** Geometry of Col2Im (the inverse of im2col), shared by the GPU binding (col2im.ts), its CPU
 * reference and the ONNX op. Pure TS. */
import { shapeString, sizeOf } from "../util/tensor.ts";
import { windowOutputSize } from "./shape.ts";

export interface Col2ImAttrs {
  readonly image: readonly number[];
  readonly block: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  /** [begin..., end...] */
  readonly pads: readonly number[];
}

/** Number of sliding blocks along each image axis. */
export function col2ImBlocks(a: Col2ImAttrs): number[] {
  const rank = a.image.length;
  return a.image.map((len, i) =>
    windowOutputSize(len, a.block[i], a.strides[i], a.dilations[i], a.pads[i], a.pads[i + rank])
  );
}

/** Y's shape [N, C, ...image] for input [N, C * prod(block), L]; throws a plain Error naming
 * what does not fit. */
export function col2ImShape(shape: readonly number[], a: Col2ImAttrs): number[] {
  const rank = a.image.length;
  if (shape.length !== 3) throw new Error(`input ${shapeString(shape)} must be [N, C*K, L]`);
  if (rank < 1) throw new Error("image_shape is empty");
  for (
    const [name, list, len] of [
      ["block_shape", a.block, rank],
      ["strides", a.strides, rank],
      ["dilations", a.dilations, rank],
      ["pads", a.pads, 2 * rank],
    ] as const
  ) {
    if (list.length !== len) throw new Error(`${name} needs ${len} values, got ${list.length}`);
  }
  if (a.image.some((d) => !(d >= 1)) || a.block.some((d) => !(d >= 1))) {
    throw new Error(`image_shape [${a.image}] and block_shape [${a.block}] must be >= 1`);
  }
  if (a.strides.some((d) => !(d >= 1)) || a.dilations.some((d) => !(d >= 1))) {
    throw new Error("strides and dilations must be >= 1");
  }
  if (a.pads.some((d) => !(d >= 0))) throw new Error("pads must be >= 0");
  const k = sizeOf(a.block);
  if (shape[1] % k !== 0) {
    throw new Error(`input axis 1 (${shape[1]}) is not a multiple of prod(block_shape) = ${k}`);
  }
  const blocks = col2ImBlocks(a);
  if (blocks.some((b) => b < 1) || sizeOf(blocks) !== shape[2]) {
    throw new Error(
      `input axis 2 (${shape[2]}) must be the number of sliding blocks [${blocks}] = ` +
        `${sizeOf(blocks)}`,
    );
  }
  return [shape[0], shape[1] / k, ...a.image];
}
