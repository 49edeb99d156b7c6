/** Host reference for LpPool: y = (sum of |x|^p over the window) ^ (1/p), padding counting as
 * zeros (onnxruntime's definition; the ONNX reference rescales an average instead, which is the
 * same except for ceil-mode windows that reach past the end padding). Window geometry is
 * pooling's (pool_shape.ts). */
import { type CpuTensor, newCpuData, roundToF16, sizeOf } from "../util/tensor.ts";
import { pool3d, type PoolAttrs, poolOutputShape } from "./pool_shape.ts";

export function lpPoolRef(x: CpuTensor, attrs: PoolAttrs, p: number): CpuTensor {
  const shape = poolOutputShape(x.shape, attrs);
  const g = pool3d(x.shape, shape, attrs);
  const [id, ih, iw] = g.inSize;
  const [od, oh, ow] = g.outSize;
  const planes = x.shape[0] * x.shape[1];
  const data = newCpuData(x.dtype, sizeOf(shape));
  let at = 0;
  for (let plane = 0; plane < planes; plane++) {
    const base = plane * id * ih * iw;
    for (let zd = 0; zd < od; zd++) {
      for (let zh = 0; zh < oh; zh++) {
        for (let zw = 0; zw < ow; zw++) {
          let sum = 0;
          for (let a = 0; a < g.kernel[0]; a++) {
            const d = zd * g.strides[0] - g.padBegin[0] + a * g.dilations[0];
            if (d < 0 || d >= id) continue;
            for (let b = 0; b < g.kernel[1]; b++) {
              const h = zh * g.strides[1] - g.padBegin[1] + b * g.dilations[1];
              if (h < 0 || h >= ih) continue;
              for (let c = 0; c < g.kernel[2]; c++) {
                const w = zw * g.strides[2] - g.padBegin[2] + c * g.dilations[2];
                if (w < 0 || w >= iw) continue;
                sum += Math.pow(Math.abs(Number(x.data[base + (d * ih + h) * iw + w])), p);
              }
            }
          }
          const v = Math.pow(sum, 1 / p);
          data[at++] = x.dtype === "float16" ? roundToF16(v) : v;
        }
      }
    }
  }
  return { dtype: x.dtype, shape, data };
}
