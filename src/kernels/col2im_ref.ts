/** Host reference for Col2Im (onnx/reference/ops/op_col2im.py): the inverse of im2col, summing
 * every column entry into the image position its block and kernel offset land on (positions in
 * the padding are dropped). The geometry, shared with the GPU binding, is in col2im_shape.ts. */
import { type CpuTensor, newCpuData, roundToF16, sizeOf } from "../util/tensor.ts";
import { type Col2ImAttrs, col2ImBlocks, col2ImShape } from "./col2im_shape.ts";

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
