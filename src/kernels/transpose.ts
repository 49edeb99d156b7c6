/** Transpose (and the block rearrangements built on it: DepthToSpace, SpaceToDepth).
 * A permutation is first reduced by merging axes that stay neighbours; when what remains is a
 * batched 2-D transpose, real GPUs get the tiled kernel (shaders/transpose.wgsl), otherwise and
 * on llvmpipe (where workgroup memory costs as much as a buffer load) the strided copy. */
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
import { type CopyRegion, prepareStridedCopy, simplifyRegion } from "./copy.ts";
import { contiguousStrides } from "./shape.ts";
import type { DepthToSpaceMode } from "./transpose_shape.ts";

const TILE = 32;

/** Which kernel a transpose uses: "auto" picks per adapter; the others force one (tests). */
export type TransposeVariant = "auto" | "tiled" | "strided";

/** Checks `perm` is a permutation of 0..rank-1. */
export function checkPerm(perm: readonly number[], rank: number, label = "transpose"): void {
  const seen = new Set(perm);
  if (perm.length !== rank || seen.size !== rank || perm.some((p) => !(p >= 0 && p < rank))) {
    throw new EngineError(`${label}: [${perm.join(",")}] is not a permutation of rank ${rank}`);
  }
}

/** The copy region of a transpose: walk the output, read input axis perm[d] for output axis d. */
export function transposeRegion(shape: readonly number[], perm: readonly number[]): CopyRegion {
  const inStrides = contiguousStrides(shape);
  const outShape = perm.map((p) => shape[p]);
  return {
    shape: outShape,
    srcOffset: 0,
    srcStrides: perm.map((p) => inStrides[p]),
    dstOffset: 0,
    dstStrides: contiguousStrides(outShape),
  };
}

/** [batch, rows, cols] when the (simplified) region is out[b, c, r] = in[b, r, c], else
 * undefined. */
function asBatched2d(r: CopyRegion): [number, number, number] | undefined {
  const rank = r.shape.length;
  if (rank !== 2 && rank !== 3) return undefined;
  const cols = r.shape[rank - 2]; // output rows are input columns
  const rows = r.shape[rank - 1];
  const s = r.srcStrides;
  if (s[rank - 2] !== 1 || s[rank - 1] !== cols) return undefined;
  if (rank === 3 && s[0] !== rows * cols) return undefined;
  return [rank === 3 ? r.shape[0] : 1, rows, cols];
}

/** out = x with axes permuted: output axis d is input axis perm[d]. */
export function prepareTranspose(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  perm: readonly number[],
  variant: TransposeVariant = "auto",
): Dispatch[] {
  checkPerm(perm, x.shape.length);
  const region = transposeRegion(x.shape, perm);
  if (region.shape.some((n, d) => n !== out.shape[d]) || out.shape.length !== perm.length) {
    throw new EngineError(
      `transpose: output ${shapeString(out.shape)} is not ${shapeString(region.shape)}`,
    );
  }
  const simple = simplifyRegion(region);
  if (!simple) return [];
  const batched = asBatched2d(simple);
  const useTiled = variant === "tiled" ||
    (variant === "auto" && !gpu.summary.isLlvmpipe && batched !== undefined);
  if (!useTiled || !batched) {
    if (variant === "tiled") {
      throw new EngineError(`transpose: perm [${perm}] of ${shapeString(x.shape)} is not 2-D`);
    }
    return prepareStridedCopy(gpu, owner, x, out, region, "transpose");
  }
  const [batch, rows, cols] = batched;
  const tilesR = Math.ceil(rows / TILE);
  const tilesC = Math.ceil(cols / TILE);
  const tiles = batch * tilesR * tilesC;
  const uniform = owner.own(createUniform(gpu, "transpose", {
    batch,
    rows,
    cols,
    tiles_r: tilesR,
    tiles_c: tilesC,
    tiles,
  }));
  return [prepareDispatch(gpu, { shader: "transpose" }, [x, out, uniform], tiles)];
}

/** x viewed with another shape of the same size (no copy). */
function view(x: GpuTensor, shape: number[]): GpuTensor {
  return { buffer: x.buffer, shape, dtype: x.dtype };
}

/** [N, C*b*b, H, W] -> [N, C, H*b, W*b] (see depthToSpaceRef for the channel order). */
export function prepareDepthToSpace(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  block: number,
  mode: DepthToSpaceMode,
): Dispatch[] {
  const [n, cIn, h, w] = x.shape;
  const c = cIn / (block * block);
  if (x.shape.length !== 4 || !Number.isInteger(c)) {
    throw new EngineError(`depthToSpace: ${shapeString(x.shape)} with block ${block}`);
  }
  const inner = mode === "DCR"
    ? { shape: [n, block, block, c, h, w], perm: [0, 3, 4, 1, 5, 2] }
    : { shape: [n, c, block, block, h, w], perm: [0, 1, 4, 2, 5, 3] };
  const out6 = inner.perm.map((p) => inner.shape[p]);
  return prepareTranspose(gpu, owner, view(x, inner.shape), view(out, out6), inner.perm);
}

/** [N, C, H*b, W*b] -> [N, C*b*b, H, W] (see spaceToDepthRef). */
export function prepareSpaceToDepth(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  block: number,
): Dispatch[] {
  const [n, c, h, w] = x.shape;
  if (x.shape.length !== 4 || h % block !== 0 || w % block !== 0) {
    throw new EngineError(`spaceToDepth: ${shapeString(x.shape)} with block ${block}`);
  }
  const shape6 = [n, c, h / block, block, w / block, block];
  const perm = [0, 3, 5, 1, 2, 4];
  const out6 = perm.map((p) => shape6[p]);
  return prepareTranspose(gpu, owner, view(x, shape6), view(out, out6), perm);
}
