/** The one way kernel tests run a kernel: upload the host inputs, allocate the outputs pre-filled
 * with garbage (so a kernel that skips an element fails), run what `prepare` records, and read the
 * outputs back exactly as the GPU holds them (float16 outputs unrounded, so that a test can tell
 * whether the kernel rounded them to half precision). Plus the random tensors and comparisons
 * kernel tests share. */
import "../gpu_teardown.ts";
import { deepStrictEqual } from "node:assert/strict";
import {
  allocTensor,
  type Dispatch,
  fromGpuArray,
  type Gpu,
  type GpuTensor,
  readBuffer,
  readTensor,
  releaseTensor,
  ResourceScope,
  STATUS_WORDS,
  type StatusSlot,
  submitDispatches,
  uploadCpuTensor,
} from "../../src/gpu/mod.ts";
import {
  type CpuTensor,
  cpuTensor,
  type DType,
  intRange,
  roundToF16,
  sizeOf,
} from "../../src/util/tensor.ts";
import { assertClose, randomFloats, rng } from "../helpers.ts";

/** Written to every output word before the kernel runs: a NaN as f32, 2143346349 as i32, and
 * neither 0 nor 1 as bool (nor in range for int8/uint8, which `runKernel` checks word by word). */
export const GARBAGE_WORD = 0x7fc0dead;

/** One output of a kernel run: its shape (dtype: that of input 0), or its shape and dtype. */
export type OutputSpec =
  | readonly number[]
  | { readonly shape: readonly number[]; readonly dtype: DType };

/** Records the kernel's dispatches on the uploaded inputs and the garbage-filled outputs. */
export type Prepare = (scope: ResourceScope, ins: GpuTensor[], outs: GpuTensor[]) => Dispatch[];

/** Like `Prepare`, with the status slot the kernel reports out-of-range indices in. */
export type PrepareWithStatus = (
  scope: ResourceScope,
  ins: GpuTensor[],
  outs: GpuTensor[],
  status: StatusSlot,
) => Dispatch[];

function outputOf(spec: OutputSpec, inputs: readonly CpuTensor[]): {
  shape: readonly number[];
  dtype: DType;
} {
  if (!Array.isArray(spec)) return spec as { shape: readonly number[]; dtype: DType };
  if (inputs.length === 0) throw new Error("runKernel: an output without inputs needs a dtype");
  return { shape: spec as readonly number[], dtype: inputs[0].dtype };
}

/** The host tensor of what the GPU holds, without the rounding `downloadTensor` gives float16.
 * Integer words that no value of the dtype has (bool other than 0/1, int8/uint8 out of range)
 * fail here, before the typed array would wrap them into plausible values. */
export async function readOutput(gpu: Gpu, t: GpuTensor, label: string): Promise<CpuTensor> {
  const raw = await readTensor(gpu, t);
  if (t.dtype === "float16") {
    return { dtype: t.dtype, shape: [...t.shape], data: new Float32Array(raw.buffer) };
  }
  const range = t.dtype === "bool" ? { min: 0, max: 1 } : intRange(t.dtype);
  if (range && t.dtype !== "int32") {
    const words = new Int32Array(raw.buffer, raw.byteOffset, raw.length);
    const bad = words.findIndex((w) => w < range.min || w > range.max);
    if (bad >= 0) {
      throw new Error(
        `${label}: element ${bad} holds the word ${words[bad]}, not a ${t.dtype} value ` +
          `(left unwritten if it is ${GARBAGE_WORD})`,
      );
    }
  }
  return fromGpuArray(raw, t.shape, t.dtype);
}

const STATUS_BYTES = 4 * STATUS_WORDS * 2;

/** Runs the kernel; with `statusBuffer`, also reads back the words of its slot 1. */
async function execute(
  gpu: Gpu,
  inputs: readonly CpuTensor[],
  outputs: readonly OutputSpec[],
  prepare: Prepare,
  statusBuffer?: GPUBuffer,
): Promise<{ outputs: CpuTensor[]; status: number[] }> {
  const scope = new ResourceScope();
  const ins = inputs.map((t, i) => uploadCpuTensor(gpu, t, `input ${i}`));
  const outs = outputs.map((spec, k) => {
    const { shape, dtype } = outputOf(spec, inputs);
    const t = allocTensor(gpu, shape, dtype, `output ${k}`);
    const n = sizeOf(shape);
    if (n > 0) gpu.device.queue.writeBuffer(t.buffer, 0, new Uint32Array(n).fill(GARBAGE_WORD));
    return t;
  });
  try {
    submitDispatches(gpu, prepare(scope, ins, outs));
    const got = await Promise.all(outs.map((t, k) => readOutput(gpu, t, `output ${k}`)));
    if (!statusBuffer) return { outputs: got, status: [] };
    const words = new Int32Array(await readBuffer(gpu, statusBuffer, STATUS_BYTES));
    deepStrictEqual([words[0], words[1]], [0, 0], "status slot 0 untouched");
    return { outputs: got, status: [words[2], words[3]] };
  } finally {
    for (const t of [...ins, ...outs]) releaseTensor(gpu, t);
    scope.dispose();
    gpu.checkHealthy("kernel test");
  }
}

/** Uploads `inputs`, allocates `outputs` pre-filled with garbage, runs what `prepare` records and
 * reads the outputs back as the GPU holds them. */
export async function runKernel(
  gpu: Gpu,
  inputs: readonly CpuTensor[],
  outputs: readonly OutputSpec[],
  prepare: Prepare,
): Promise<CpuTensor[]> {
  return (await execute(gpu, inputs, outputs, prepare)).outputs;
}

/** `runKernel` for kernels that report through a status slot: also returns the slot's two words
 * (flag, offending value). The slot is slot 1 of a zeroed buffer, and slot 0 must stay zero, so
 * that a kernel writing the wrong slot is caught. */
export async function runKernelWithStatus(
  gpu: Gpu,
  inputs: readonly CpuTensor[],
  outputs: readonly OutputSpec[],
  prepare: PrepareWithStatus,
): Promise<{ outputs: CpuTensor[]; status: number[] }> {
  const buffer = gpu.device.createBuffer({
    size: STATUS_BYTES,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    label: "kernel test status",
  });
  try {
    const slot: StatusSlot = { buffer, slot: 1 };
    return await execute(
      gpu,
      inputs,
      outputs,
      (s, ins, outs) => prepare(s, ins, outs, slot),
      buffer,
    );
  } finally {
    buffer.destroy();
  }
}

/** Tolerances of a comparison with the reference; none given: bit-exact. */
export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/** Runs the kernel with outputs shaped and typed like `expected` and compares each with it:
 * exactly, or within `tol`; float16 outputs must also hold half-precision values. */
export async function checkKernel(
  gpu: Gpu,
  inputs: readonly CpuTensor[],
  expected: readonly CpuTensor[],
  prepare: Prepare,
  label: string,
  tol?: Tolerance,
): Promise<CpuTensor[]> {
  const got = await runKernel(gpu, inputs, expected, prepare);
  expected.forEach((want, k) => {
    const name = expected.length > 1 ? `${label} output ${k}` : label;
    if (tol) assertTensorClose(got[k], want, { ...tol, label: name });
    else assertSameTensor(got[k], want, name);
    if (want.dtype === "float16") assertHalfValues(got[k], name);
  });
  return got;
}

function assertSameLayout(actual: CpuTensor, expected: CpuTensor, label: string): void {
  deepStrictEqual(
    { shape: [...actual.shape], dtype: actual.dtype },
    { shape: [...expected.shape], dtype: expected.dtype },
    `${label}: shape/dtype`,
  );
}

/** Exact comparison of shape, dtype and values (NaN matches NaN; -0 does not match 0), naming
 * the first element that differs. */
export function assertSameTensor(actual: CpuTensor, expected: CpuTensor, label: string): void {
  assertSameLayout(actual, expected, label);
  const a = actual.data, e = expected.data;
  deepStrictEqual(a.length, e.length, `${label}: length`);
  for (let i = 0; i < e.length; i++) {
    if (!Object.is(a[i], e[i])) {
      throw new Error(`${label}: element ${i} is ${a[i]}, expected ${e[i]} (of ${e.length})`);
    }
  }
}

/** Shape and dtype equal, values within `rtol`/`atol` (see `assertClose`). */
export function assertTensorClose(
  actual: CpuTensor,
  expected: CpuTensor,
  opts: { rtol?: number; atol?: number; label: string },
): void {
  assertSameLayout(actual, expected, opts.label);
  assertClose(actual.data, expected.data, opts);
}

/** Every value is representable in half precision (NaN and infinities included). */
export function assertHalfValues(t: CpuTensor, label: string): void {
  const i = Array.from(t.data).findIndex((v) => !Number.isNaN(v) && v !== roundToF16(v));
  if (i >= 0) {
    throw new Error(`${label}: output ${t.data[i]} at index ${i} is not a half value`);
  }
}

/** A random tensor: floats in [-1, 1) or integers in [-1000, 1000) (bool: 0/1). */
export function randomTensor(dtype: DType, shape: readonly number[], seed: number): CpuTensor {
  const n = sizeOf(shape);
  if (dtype === "float32" || dtype === "float16") {
    return cpuTensor(dtype, shape, randomFloats(n, seed));
  }
  const r = rng(seed);
  const values = Array.from(
    { length: n },
    () => dtype === "bool" ? (r() < 0.5 ? 1 : 0) : Math.floor(r() * 2000) - 1000,
  );
  return cpuTensor(dtype, shape, values);
}

/** A float tensor of values uniform in [lo, hi) (rounded to half precision for float16). */
export function uniformTensor(
  dtype: "float32" | "float16",
  shape: readonly number[],
  seed: number,
  lo = -1,
  hi = 1,
): CpuTensor {
  return cpuTensor(dtype, shape, randomFloats(sizeOf(shape), seed, lo, hi));
}

/** A random int8 or uint8 tensor over the type's whole range. */
export function randomInt8s(
  dtype: "int8" | "uint8",
  shape: readonly number[],
  seed: number,
): CpuTensor {
  const lo = dtype === "int8" ? -128 : 0;
  return cpuTensor(dtype, shape, randomInts(sizeOf(shape), seed, lo, lo + 256));
}

/** Random integers in [lo, hi). */
export function randomInts(n: number, seed: number, lo: number, hi: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo)));
}

/** Every permutation of 0..n-1. */
export function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) {
    for (let i = 0; i <= p.length; i++) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  }
  return out;
}
