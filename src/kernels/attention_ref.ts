/** CPU reference of the attention kernel (float64): softmax(scale * Q K^T + mask) V on logical
 * [batch, heads, rows, dim] tensors, the score matrix computed whole (the plain definition the
 * streaming kernel must agree with). */
import { type CpuTensor, cpuTensor, roundToF16, shapeString } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import { broadcastStrides } from "./shape.ts";

export interface AttentionRefOptions {
  /** Default 1 / sqrt(head dim). */
  scale?: number;
  /** Added to the scores; its shape broadcasts (numpy, right-aligned) to [B, H, Sq, Sk]. A bool
   * mask instead hides the keys where it is false. */
  mask?: CpuTensor;
  /** Key j is seen by query i only when j <= i + causalOffset. */
  causalOffset?: number;
  /** Round Q, K and V to float16 first (the kernel's `halves`). */
  halves?: boolean;
  /** Scores (after scale) become softcap * tanh(score / softcap) before the mask (when > 0). */
  softcap?: number;
  /** A row that sees no key gives 0 instead of NaN. */
  emptyRowsZero?: boolean;
}

/** Element strides of the mask's `shape` broadcast (right-aligned) to `target` (0 along
 * broadcast axes). */
function maskStrides(shape: readonly number[], target: readonly number[]): number[] {
  if (shape.length > target.length) {
    throw new EngineError(`mask ${shapeString(shape)} has more axes than ${shapeString(target)}`);
  }
  try {
    return broadcastStrides(shape, target);
  } catch {
    throw new EngineError(
      `mask ${shapeString(shape)} does not broadcast to ${shapeString(target)}`,
    );
  }
}

/** out[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:] + mask) v[b,h,j,:].
 * q [B, H, Sq, D], k [B, Hk, Sk, D], v [B, Hk, Sk, Dv] -> [B, H, Sq, Dv], dtype of q; Hk
 * divides H (grouped-query attention when smaller). */
export function attentionRef(
  q: CpuTensor,
  k: CpuTensor,
  v: CpuTensor,
  options: AttentionRefOptions = {},
): CpuTensor {
  const [b, h, sq, d] = q.shape;
  const [hk, sk] = [k.shape[1], k.shape[2]], dv = v.shape[3];
  if (
    q.shape.length !== 4 || k.shape.length !== 4 || v.shape.length !== 4 || k.shape[3] !== d ||
    v.shape[2] !== sk || k.shape[0] !== b || v.shape[0] !== b || h % hk !== 0 ||
    v.shape[1] !== hk
  ) {
    throw new EngineError(
      `attention: Q ${shapeString(q.shape)}, K ${shapeString(k.shape)}, V ${shapeString(v.shape)}`,
    );
  }
  const round = options.halves ? roundToF16 : (x: number) => x;
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const ms = options.mask ? maskStrides(options.mask.shape, [b, h, sq, sk]) : undefined;
  const out = new Float64Array(b * h * sq * dv);
  const scores = new Float64Array(sk);
  for (let bh = 0; bh < b * h; bh++) {
    const bi = Math.floor(bh / h), hi = bh % h;
    // The K/V head of query head hi (grouped-query attention: h / hk query heads share one).
    const kh = bi * hk + Math.floor(hi / (h / hk));
    for (let i = 0; i < sq; i++) {
      let m = -Infinity;
      for (let j = 0; j < sk; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) {
          s += round(q.data[((bh * sq) + i) * d + c]) * round(k.data[((kh * sk) + j) * d + c]);
        }
        // The products are scaled, as the kernel does (its operands are stored unscaled).
        s *= scale;
        const cap = options.softcap ?? 0;
        if (cap > 0) s = cap * Math.tanh(s / cap);
        if (options.mask && ms) {
          const mv = options.mask.data[bi * ms[0] + hi * ms[1] + i * ms[2] + j * ms[3]];
          if (options.mask.dtype === "bool") s = mv ? s : -Infinity;
          else s += mv;
        }
        if (options.causalOffset !== undefined && j > i + options.causalOffset) s = -Infinity;
        scores[j] = s;
        m = Math.max(m, s);
      }
      const o = (bh * sq + i) * dv;
      if (m === -Infinity && options.emptyRowsZero) continue;
      let sum = 0;
      for (let j = 0; j < sk; j++) sum += scores[j] = Math.exp(scores[j] - m);
      for (let j = 0; j < sk; j++) {
        const w = scores[j] / sum;
        for (let c = 0; c < dv; c++) out[o + c] += w * round(v.data[(kh * sk + j) * dv + c]);
      }
    }
  }
  return cpuTensor(q.dtype, [b, h, sq, dv], out);
}
