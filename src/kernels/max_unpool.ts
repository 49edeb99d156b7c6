/** MaxUnpool on the GPU (shaders/max_unpool.wgsl); host reference in max_unpool_ref.ts. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  statusOrSink,
  type StatusSlot,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString, sizeOf } from "../util/tensor.ts";
import { to3d } from "./shape.ts";
import { prepareFill } from "./fill.ts";

const WG = 64;

/** Records Y = MaxUnpool(X, I) into `y` (its shape is the output shape, at least `inferred` per
 * axis): X any dtype, I int32 or int64 of X's shape holding flat positions in a tensor of the
 * `inferred` shape, which Y holds at its origin. An index outside that tensor is skipped and
 * reported in `status`. */
export function prepareMaxUnpool(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  indices: GpuTensor,
  y: GpuTensor,
  inferred: readonly number[] = y.shape,
  status?: StatusSlot,
): Dispatch[] {
  const label = `max unpool ${shapeString(x.shape)} -> ${shapeString(y.shape)}`;
  if (x.dtype !== y.dtype) throw new EngineError(`${label}: X is ${x.dtype}, Y is ${y.dtype}`);
  if (indices.dtype !== "int32" && indices.dtype !== "int64") {
    throw new EngineError(`${label}: indices dtype ${indices.dtype} is not an integer`);
  }
  if (shapeString(indices.shape) !== shapeString(x.shape)) {
    throw new EngineError(`${label}: indices ${shapeString(indices.shape)} differ from X`);
  }
  const rank = y.shape.length - 2;
  if (
    rank < 1 || rank > 3 || inferred.length !== y.shape.length ||
    inferred.some((d, a) => d > y.shape[a] || (a < 2 && d !== y.shape[a]))
  ) {
    throw new EngineError(`${label}: inferred shape ${shapeString(inferred)} does not fit`);
  }
  const inCount = sizeOf(x.shape);
  const outCount = sizeOf(y.shape);
  if (outCount === 0) return [];
  const slot = statusOrSink(gpu, owner, status, "maxUnpool");
  const uniform = owner.own(createUniform(gpu, "max_unpool", {
    inferred: [...to3d(inferred.slice(2), 1), sizeOf(inferred)],
    shape: to3d(y.shape.slice(2), 1),
    in_count: inCount,
    status_slot: slot.slot,
  }, "max unpool"));
  // Zero words are 0 in every storage type.
  const dispatches = prepareFill(gpu, owner, y, 0);
  if (inCount > 0) {
    dispatches.push(prepareDispatch(
      gpu,
      { shader: "max_unpool", constants: { WG } },
      [x, indices, y, uniform, { buffer: slot.buffer }],
      Math.ceil(inCount / WG),
    ));
  }
  return dispatches;
}
