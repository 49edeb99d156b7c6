/** Host reference for Col2Im (onnx/reference/ops/op_col2im.py): the inverse of im2col, summing
 * every column entry into the image position its block and kernel offset land on (positions in
 * the padding are dropped). Shared geometry with the GPU binding (col2im.ts). */
import { type CpuTensor, newCpuData, roundToF16, shapeString, sizeOf } from "../util/tensor.ts";

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
    Math.floor(
      (len + a.pads[i] + a.pads[i + rank] - a.dilations[i] * (a.block[i] - 1) - 1) / a.strides[i],
    ) + 1
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

export function col2ImRef(x: CpuTensor, a: Col2ImAttrs): CpuTensor {
  const shape = col2ImShape(x.shape, a);
  const rank = a.image.length;
  const blocks = col2ImBlocks(a);
  const k = sizeOf(a.block);
  const cols = sizeOf(blocks);
  const planes = shape[0] * shape[1];
  const plane = sizeOf(a.image);
  const sums = new Float64Array(planes * plane);
  const off = new Array<number>(rank);
  const blk = new Array<number>(rank);
  for (let p = 0; p < planes; p++) {
    for (let kk = 0; kk < k; kk++) {
      let r = kk;
      for (let i = rank - 1; i >= 0; i--) {
        off[i] = r % a.block[i];
        r = Math.floor(r / a.block[i]);
      }
      for (let col = 0; col < cols; col++) {
        r = col;
        for (let i = rank - 1; i >= 0; i--) {
          blk[i] = r % blocks[i];
          r = Math.floor(r / blocks[i]);
        }
        let at = 0;
        let inside = true;
        for (let i = 0; i < rank; i++) {
          const q = blk[i] * a.strides[i] - a.pads[i] + off[i] * a.dilations[i];
          if (q < 0 || q >= a.image[i]) inside = false;
          at = at * a.image[i] + q;
        }
        if (inside) sums[p * plane + at] += Number(x.data[(p * k + kk) * cols + col]);
      }
    }
  }
  const data = newCpuData(x.dtype, sums.length);
  sums.forEach((v, i) => data[i] = x.dtype === "float16" ? roundToF16(v) : v);
  return { dtype: x.dtype, shape, data };
}
