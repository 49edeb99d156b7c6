/** Resize on the GPU (shaders/resize.wgsl): ONNX Resize/Upsample in every mode and
 * torchvision/PIL-style antialiased image resampling. One pass per axis whose sampling is not the
 * identity; each pass reads a sampling table computed on the host at prepare time (see
 * resize_shape.ts), so the shader only gathers and accumulates. */
import {
  createStorageBuffer,
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
  STORAGE_USAGE,
  type StorageType,
  storageType,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { roundToF16, shapeString, sizeOf } from "../util/tensor.ts";
import {
  axisSpecs,
  type AxisTable,
  axisTable,
  checkResizeDtype,
  isGatherTable,
  isIdentityTable,
  type ResizeOptions,
} from "./resize_shape.ts";

const WG = 128;
/** Rows one invocation handles (LANES in resize.wgsl). */
const LANES = 4;
const NO_INDEX = 0xffffffff;

interface Pass {
  axis: number;
  table: AxisTable;
  gather: boolean;
}

/** Records the resize of `x` into `out` (same rank and dtype; `out.shape` gives the output
 * lengths). Everything the passes need (tables, uniforms, intermediate buffers) is created here
 * and handed to `owner`. */
export function prepareResize(
  gpu: Gpu,
  owner: ResourceOwner,
  x: GpuTensor,
  out: GpuTensor,
  opts: ResizeOptions,
): Dispatch[] {
  const label = `resize ${shapeString(x.shape)} -> ${shapeString(out.shape)}`;
  if (x.dtype !== out.dtype) {
    throw new EngineError(`${label}: input is ${x.dtype} but output is ${out.dtype}`);
  }
  let specs;
  try {
    checkResizeDtype(x.dtype);
    specs = axisSpecs(x.shape, out.shape, opts);
  } catch (e) {
    throw new EngineError(`${label}: ${(e as Error).message}`);
  }
  if (sizeOf(out.shape) === 0) return [];

  const passes: Pass[] = [];
  specs.forEach((spec, axis) => {
    const table = axisTable(spec, opts);
    if (!isIdentityTable(table)) passes.push({ axis, table, gather: isGatherTable(table) });
  });
  if (passes.length === 0) {
    // Nothing to resample: still one pass, a copy through an identity table.
    const table = axisTable(specs[0], { mode: "nearest", coordMode: "asymmetric" });
    passes.push({ axis: 0, table, gather: true });
  }
  const floatData = x.dtype === "float32" || x.dtype === "float16";
  if (!floatData && passes.some((p) => !p.gather)) {
    // Integer data that needs arithmetic: every pass accumulates in f32 and only the last one
    // truncates back to integers, as the reference truncates once at the end.
    for (const p of passes) p.gather = false;
  }
  // Shrinking passes first: later passes then touch fewer elements.
  passes.sort((a, b) =>
    a.table.outLen / a.table.inLen - b.table.outLen / b.table.inLen || a.axis - b.axis
  );
  if (x.dtype === "float16" && passes.some((p) => !p.gather)) {
    // Half-precision rounding happens once, in the last pass, so that pass must do arithmetic.
    passes[passes.length - 1].gather = false;
  }

  // Intermediate shapes, and two ping-pong buffers sized for the largest intermediate.
  const shape = [...x.shape];
  const shapes: number[][] = [];
  let scratchElements = 0;
  passes.forEach((p, i) => {
    shape[p.axis] = p.table.outLen;
    shapes.push([...shape]);
    if (i < passes.length - 1) scratchElements = Math.max(scratchElements, sizeOf(shape));
  });
  const scratch: GPUBuffer[] = [];
  const scratchCount = Math.min(passes.length - 1, 2);
  for (let i = 0; i < scratchCount; i++) {
    const bytes = Math.max(4, scratchElements * 4);
    if (bytes > gpu.limits.maxStorageBufferBindingSize) {
      throw new EngineError(
        `${label}: intermediate of ${bytes} bytes exceeds maxStorageBufferBindingSize ` +
          `(${gpu.limits.maxStorageBufferBindingSize})`,
      );
    }
    scratch.push(owner.own(
      gpu.device.createBuffer({ size: bytes, usage: STORAGE_USAGE, label: `${label} scratch` }),
    ));
  }

  const dispatches: Dispatch[] = [];
  let src: GPUBuffer = x.buffer;
  let srcType: StorageType = storageType(x.dtype);
  let srcShape: readonly number[] = x.shape;
  passes.forEach((p, i) => {
    const last = i === passes.length - 1;
    const dst = last ? out.buffer : scratch[i % 2];
    const dstType: StorageType = p.gather ? srcType : last ? storageType(out.dtype) : "f32";
    let outer = 1;
    for (let d = 0; d < p.axis; d++) outer *= srcShape[d];
    let inner = 1;
    for (let d = p.axis + 1; d < srcShape.length; d++) inner *= srcShape[d];
    const { tableWords, indexAt, weightAt } = packTable(p.table, p.gather, opts);
    const fill = opts.extrapolationValue ?? 0;
    const fillBits = fillWord(dstType, last && out.dtype === "float16" ? roundToF16(fill) : fill);
    const uniform = owner.own(createUniform(gpu, "resize", {
      lanes: outer * inner,
      inner,
      in_len: p.table.inLen,
      out_len: p.table.outLen,
      max_taps: p.table.taps,
      index_at: indexAt,
      weight_at: weightAt,
      fill_bits: fillBits,
    }));
    const tableBuffer = owner.own(createStorageBuffer(gpu, tableWords, `${label} table`));
    const items = Math.ceil((outer * inner) / LANES) * p.table.outLen;
    dispatches.push(prepareDispatch(
      gpu,
      {
        shader: "resize",
        entryPoint: p.gather ? "gather" : "interpolate",
        constants: p.gather ? { WG } : { WG, ROUND_F16: last && out.dtype === "float16" ? 1 : 0 },
        placeholders: p.gather ? { SRC: "u32", DST: "u32" } : { SRC: srcType, DST: dstType },
      },
      [src, dst, tableBuffer, uniform],
      Math.ceil(items / WG),
    ));
    src = dst;
    srcType = dstType;
    srcShape = shapes[i];
  });
  return dispatches;
}

/** The table of one pass in the layout resize.wgsl reads. */
function packTable(
  t: AxisTable,
  gather: boolean,
  opts: ResizeOptions,
): { tableWords: Uint32Array; indexAt: number; weightAt: number } {
  if (gather) {
    const words = new Uint32Array(t.outLen);
    for (let o = 0; o < t.outLen; o++) words[o] = t.fill[o] ? NO_INDEX : t.index[o * t.taps];
    return { tableWords: words, indexAt: 0, weightAt: 0 };
  }
  const n = t.outLen * t.taps;
  const indexAt = 2 * t.outLen;
  const weightAt = indexAt + n;
  const words = new Uint32Array(weightAt + n);
  const floats = new Float32Array(words.buffer);
  const fill = opts.extrapolationValue ?? 0;
  for (let o = 0; o < t.outLen; o++) {
    words[o] = t.count[o];
    floats[t.outLen + o] = t.fill[o] ? fill : 0;
  }
  for (let i = 0; i < n; i++) {
    words[indexAt + i] = t.index[i];
    floats[weightAt + i] = t.weight[i];
  }
  return { tableWords: words, indexAt, weightAt };
}

/** The 32-bit word of `value` in a buffer of storage type `type`. */
function fillWord(type: StorageType, value: number): number {
  const view = new DataView(new ArrayBuffer(4));
  if (type === "f32") view.setFloat32(0, value, true);
  else if (type === "i32") view.setInt32(0, Math.trunc(value), true);
  else view.setUint32(0, Math.trunc(value) >>> 0, true);
  return view.getUint32(0, true);
}
