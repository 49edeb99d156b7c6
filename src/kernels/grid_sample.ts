/** GridSample and AffineGrid on the GPU (shaders/grid_sample.wgsl, shaders/affine_grid.wgsl);
 * host references in grid_sample_ref.ts, shapes and options in grid_sample_shape.ts. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { affineGridShape, type GridSampleOptions, gridSampleShape } from "./grid_sample_shape.ts";
import { to3d } from "./shape.ts";

const WG = 64;
const MODES = { nearest: 0, linear: 1, cubic: 2 } as const;
const PADDINGS = { zeros: 0, border: 1, reflection: 2 } as const;

function checkFloat(label: string, ...ts: GpuTensor[]): void {
  for (const t of ts) {
    if (t.dtype !== "float32" && t.dtype !== "float16") {
      throw new EngineError(`${label}: dtype ${t.dtype} is not a float type`);
    }
  }
}

/** Records Y = GridSample(X, grid): X [N, C, ...spatial] (1-3 spatial axes), grid
 * [N, ...out, rank], Y [N, C, ...out]. */
export function prepareGridSample(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  grid: GpuTensor,
  y: GpuTensor,
  opts: GridSampleOptions,
): Dispatch[] {
  const label = `grid sample ${shapeString(x.shape)} at ${shapeString(grid.shape)}`;
  checkFloat(label, x, grid, y);
  let shape: number[];
  try {
    shape = gridSampleShape(x.shape, grid.shape);
  } catch (e) {
    throw new EngineError(`${label}: ${(e as Error).message}`);
  }
  if (shapeString(shape) !== shapeString(y.shape)) {
    throw new EngineError(
      `${label}: output is ${shapeString(y.shape)}, expected ${shapeString(shape)}`,
    );
  }
  const rank = x.shape.length - 2;
  if (rank > 3) throw new EngineError(`${label}: ${rank} spatial axes (at most 3 are supported)`);
  if (sizeOf(y.shape) === 0) return [];
  const inSize = to3d(x.shape.slice(2), 1);
  const outPlane = sizeOf(shape.slice(2));
  const work = shape[0] * outPlane;
  const uniform = owner.own(createUniform(gpu, "grid_sample", {
    in_size: [...inSize, sizeOf(inSize)],
    batch: shape[0],
    channels: shape[1],
    out_plane: outPlane,
    work,
  }, "grid sample"));
  return [prepareDispatch(
    gpu,
    {
      shader: "grid_sample",
      constants: {
        WG,
        MODE: MODES[opts.mode],
        PADDING: PADDINGS[opts.padding],
        ALIGN_CORNERS: opts.alignCorners ? 1 : 0,
        RANK: rank,
        ROUND_F16: y.dtype === "float16" ? 1 : 0,
      },
    },
    [x, grid, y, uniform],
    Math.ceil(work / WG),
  )];
}

/** Records grid = AffineGrid(theta, size): theta [N, 2, 3] or [N, 3, 4]; size [N, C, H, W] or
 * [N, C, D, H, W]. */
export function prepareAffineGrid(
  gpu: Gpu,
  owner: ResourceOwner,
  theta: GpuTensor,
  size: readonly number[],
  grid: GpuTensor,
  alignCorners: boolean,
): Dispatch[] {
  const label = `affine grid ${shapeString(theta.shape)} size [${size}]`;
  checkFloat(label, theta, grid);
  let shape: number[];
  try {
    shape = affineGridShape(theta.shape, size);
  } catch (e) {
    throw new EngineError(`${label}: ${(e as Error).message}`);
  }
  if (shapeString(shape) !== shapeString(grid.shape)) {
    throw new EngineError(
      `${label}: output is ${shapeString(grid.shape)}, expected ${shapeString(shape)}`,
    );
  }
  if (sizeOf(shape) === 0) return [];
  const rank = size.length - 2;
  const spatial = to3d(size.slice(2), 1);
  const work = size[0] * sizeOf(spatial);
  const uniform = owner.own(createUniform(gpu, "affine_grid", {
    size: [...spatial, sizeOf(spatial)],
    work,
  }, "affine grid"));
  return [prepareDispatch(
    gpu,
    {
      shader: "affine_grid",
      constants: {
        WG,
        RANK: rank,
        ALIGN_CORNERS: alignCorners ? 1 : 0,
        ROUND_F16: grid.dtype === "float16" ? 1 : 0,
      },
    },
    [theta, grid, uniform],
    Math.ceil(work / WG),
  )];
}
