/** Shared plumbing for the movement kernel tests (copy, transpose, gather, pad): random host
 * tensors, and running prepared dispatches on uploaded inputs. */
import { deepStrictEqual } from "node:assert/strict";
import {
  allocTensor,
  type Dispatch,
  downloadTensor,
  type Gpu,
  type GpuTensor,
  releaseTensor,
  ResourceScope,
  submitDispatches,
  uploadCpuTensor,
} from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor, type DType, sizeOf } from "../../src/util/tensor.ts";
import { randomFloats, rng } from "../helpers.ts";

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

/** Random integers in [lo, hi). */
export function randomInts(n: number, seed: number, lo: number, hi: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo)));
}

/** Uploads `inputs`, allocates outputs of `outShapes` (dtype of input 0), runs what `prepare`
 * records, and downloads the outputs. Outputs are pre-filled with garbage so a kernel that skips
 * an element fails. */
export async function runKernel(
  gpu: Gpu,
  inputs: readonly CpuTensor[],
  outShapes: readonly (readonly number[])[],
  prepare: (scope: ResourceScope, ins: GpuTensor[], outs: GpuTensor[]) => Dispatch[],
  outDtype: DType = inputs[0].dtype,
): Promise<CpuTensor[]> {
  const scope = new ResourceScope();
  const ins = inputs.map((t) => uploadCpuTensor(gpu, t));
  const outs = outShapes.map((s) => {
    const t = allocTensor(gpu, s, outDtype);
    const n = sizeOf(s);
    if (n > 0) gpu.device.queue.writeBuffer(t.buffer, 0, new Uint32Array(n).fill(0x7fc0dead));
    return t;
  });
  try {
    submitDispatches(gpu, prepare(scope, ins, outs));
    return await Promise.all(outs.map((t) => downloadTensor(gpu, t)));
  } finally {
    for (const t of [...ins, ...outs]) releaseTensor(gpu, t);
    scope.dispose();
    gpu.checkHealthy("movement test");
  }
}

/** Exact comparison of shape and values (movement copies bits: no tolerance). */
export function assertSameTensor(actual: CpuTensor, expected: CpuTensor, label: string): void {
  deepStrictEqual(
    { shape: [...actual.shape], dtype: actual.dtype },
    { shape: [...expected.shape], dtype: expected.dtype },
    `${label}: shape/dtype`,
  );
  const a = Array.from(actual.data);
  const e = Array.from(expected.data);
  for (let i = 0; i < e.length; i++) {
    if (!Object.is(a[i], e[i])) {
      throw new Error(`${label}: element ${i} is ${a[i]}, expected ${e[i]} (of ${e.length})`);
    }
  }
  deepStrictEqual(a.length, e.length, `${label}: length`);
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
