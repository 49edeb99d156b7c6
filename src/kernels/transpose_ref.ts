/** Host references for Transpose, DepthToSpace and SpaceToDepth. The block rearrangements are
 * written with their direct index formulas (not as reshape + transpose, which the GPU path
 * uses) so the tests compare two derivations. */
import type { CpuTensor } from "../util/tensor.ts";
import { gatherElements } from "./copy_ref.ts";
import { contiguousStrides } from "./shape.ts";
import type { DepthToSpaceMode } from "./transpose_shape.ts";

/** out[i_0, ..., i_r-1] = x[j] where j[perm[d]] = i_d (output axis d is input axis perm[d]). */
export function transposeRef(x: CpuTensor, perm: readonly number[]): CpuTensor {
  const strides = contiguousStrides(x.shape);
  const shape = perm.map((p) => x.shape[p]);
  return gatherElements(x, shape, (idx) => {
    let j = 0;
    for (let d = 0; d < idx.length; d++) j += idx[d] * strides[perm[d]];
    return j;
  });
}

/** [N, C*b*b, H, W] -> [N, C, H*b, W*b]: out[n, c, h*b+i, w*b+j] takes input channel
 * (i*b + j)*C + c in DCR mode (depth-column-row) or c*b*b + i*b + j in CRD mode. */
export function depthToSpaceRef(x: CpuTensor, block: number, mode: DepthToSpaceMode): CpuTensor {
  const [n, cIn, h, w] = x.shape;
  const c = cIn / (block * block);
  const s = contiguousStrides(x.shape);
  return gatherElements(x, [n, c, h * block, w * block], ([b, ch, y, xx]) => {
    const i = y % block, j = xx % block;
    const src = mode === "DCR" ? (i * block + j) * c + ch : ch * block * block + i * block + j;
    return b * s[0] + src * s[1] + Math.floor(y / block) * s[2] + Math.floor(xx / block) * s[3];
  });
}

/** [N, C, H*b, W*b] -> [N, C*b*b, H, W]: out[n, (i*b + j)*C + c, h, w] = x[n, c, h*b+i, w*b+j]. */
export function spaceToDepthRef(x: CpuTensor, block: number): CpuTensor {
  const [n, c, h, w] = x.shape;
  const s = contiguousStrides(x.shape);
  return gatherElements(x, [n, c * block * block, h / block, w / block], ([b, ch, y, xx]) => {
    const cIn = ch % c;
    const ij = Math.floor(ch / c);
    const i = Math.floor(ij / block), j = ij % block;
    return b * s[0] + cIn * s[1] + (y * block + i) * s[2] + (xx * block + j) * s[3];
  });
}
