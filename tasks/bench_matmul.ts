/** Times the matmul variants at square, ViT-B/16 linear and attention shapes; prints GFLOP/s.
 *
 *   deno run -A tasks/bench_matmul.ts [--filter TEXT] [--variants a,b|all] [--runs N]
 *
 * Without --variants it times the variant `prepareMatmul` picks for each shape on this adapter
 * ("auto") beside the main alternatives. Each (shape, variant) result is first checked against
 * float64 dot products at sampled output positions (error relative to the sum of |products|,
 * the scale rounding errors grow with); a wrong result is printed as such and not timed. A run
 * submits 5 dispatches in one command buffer and waits for the queue; the median of the runs
 * after a warm-up counts. Beside wall-clock GFLOP/s it prints GFLOP per CPU-second of this
 * process: on a CPU adapter (llvmpipe runs kernels on this process's threads) that figure stays
 * meaningful when other processes share the cores. */
import process from "node:process";
import {
  allocTensor,
  getGpu,
  readTensor,
  releaseTensor,
  ResourceScope,
  submitDispatches,
  uploadTensor,
} from "../src/gpu/mod.ts";
import { MATMUL_VARIANTS, planMatmul, prepareMatmul } from "../src/kernels/matmul.ts";

interface Shape {
  name: string;
  batch: number;
  m: number;
  k: number;
  n: number;
  /** B stored [N, K] (weights of a Linear layer, keys in attention). */
  transB: boolean;
}

const shape = (name: string, batch: number, m: number, k: number, n: number, transB = false) => ({
  name,
  batch,
  m,
  k,
  n,
  transB,
});

// ViT-B/16 at batch 8: 197 tokens x 8 images, width 768, 12 heads of 64, MLP 3072.
const SHAPES: Shape[] = [
  shape("matmul-256", 1, 256, 256, 256),
  shape("matmul-512", 1, 512, 512, 512),
  shape("matmul-1024", 1, 1024, 1024, 1024),
  shape("vit-b8-qkv", 1, 1576, 768, 2304, true),
  shape("vit-b8-out", 1, 1576, 768, 768, true),
  shape("vit-b8-mlp1", 1, 1576, 768, 3072, true),
  shape("vit-b8-mlp2", 1, 1576, 3072, 768, true),
  shape("vit-b8-attn-qk", 96, 197, 64, 197, true),
  shape("vit-b8-attn-av", 96, 197, 197, 64),
];

const DEFAULT_VARIANTS = ["auto", "vec4-8x8", "vec4-16x16", "texture-16x16", "texture-f16-16x16"];

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

const filter = flag("--filter");
const variantFlag = flag("--variants");
const variantNames = variantFlag === "all"
  ? ["auto", ...Object.keys(MATMUL_VARIANTS)]
  : variantFlag?.split(",") ?? DEFAULT_VARIANTS;
const runs = Number(flag("--runs") ?? 5);
const DISPATCHES_PER_RUN = 5;
const SAMPLES = 256;

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function randomArray(n: number, seed: number): Float32Array {
  const r = seeded(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r() * 2 - 1;
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)];
}

const gpu = await getGpu();
console.log(`adapter: ${gpu.describe()}`);
console.log(`${runs} runs of ${DISPATCHES_PER_RUN} dispatches after a warm-up; median`);
console.log(
  "shape            variant                  GFLOP/s  ms/matmul  GFLOP/cpu-s  max error (sampled)",
);

for (const s of SHAPES) {
  if (filter && !s.name.includes(filter)) continue;
  const { batch, m, k, n, transB } = s;
  const a = randomArray(batch * m * k, 1);
  const b = randomArray(batch * k * n, 2);
  const ta = uploadTensor(gpu, a, batch > 1 ? [batch, m, k] : [m, k], "float32", "A");
  const bMat = transB ? [n, k] : [k, n];
  const tb = uploadTensor(gpu, b, batch > 1 ? [batch, ...bMat] : bMat, "float32", "B");
  const to = allocTensor(gpu, batch > 1 ? [batch, m, n] : [m, n], "float32", "out");
  // [index into out, float64 value, sum of |products| (the scale rounding errors grow with)]
  const pick = seeded(3);
  const samples: [number, number, number][] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const z = Math.floor(pick() * batch);
    const r = Math.floor(pick() * m), c = Math.floor(pick() * n);
    let acc = 0, scale = 0;
    for (let p = 0; p < k; p++) {
      const bv = transB ? b[(z * n + c) * k + p] : b[(z * k + p) * n + c];
      const prod = a[(z * m + r) * k + p] * bv;
      acc += prod;
      scale += Math.abs(prod);
    }
    samples.push([(z * m + r) * n + c, acc, scale]);
  }
  for (const name of variantNames) {
    const variant = name === "auto"
      ? planMatmul(gpu, ta, tb, to, { transB }).variant
      : MATMUL_VARIANTS[name];
    if (!variant) throw new Error(`unknown variant ${name}`);
    const label = `${s.name.padEnd(16)} ${
      (name === "auto" ? `auto (${variant.name})` : name).padEnd(23)
    }`;
    const scope = new ResourceScope();
    const dispatches = prepareMatmul(gpu, scope, ta, tb, to, { variant, transB });
    submitDispatches(gpu, dispatches);
    const got = await readTensor(gpu, to);
    let maxErr = 0;
    for (const [i, ref, scale] of samples) {
      maxErr = Math.max(maxErr, Math.abs(got[i] - ref) / scale);
    }
    // float32 operands: accumulation error only; halves: each operand rounded (2^-11 relative).
    const tolerance = variant.halves ? 2e-3 : 1e-5;
    if (!(maxErr < tolerance)) {
      console.log(`${label}  WRONG RESULT (max error ${maxErr.toExponential(2)})`);
      scope.dispose();
      continue;
    }
    const repeated = Array.from({ length: DISPATCHES_PER_RUN }, () => dispatches).flat();
    submitDispatches(gpu, repeated); // warm-up
    await gpu.sync("bench warm-up");
    const times: number[] = [];
    const cpuTimes: number[] = [];
    for (let r = 0; r < runs; r++) {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      submitDispatches(gpu, repeated);
      await gpu.device.queue.onSubmittedWorkDone();
      times.push((performance.now() - t0) / DISPATCHES_PER_RUN);
      const cpu = process.cpuUsage(cpu0);
      cpuTimes.push((cpu.user + cpu.system) / 1000 / DISPATCHES_PER_RUN);
    }
    const ms = median(times);
    const flop = 2 * batch * m * n * k;
    console.log(
      `${label}  ${(flop / (ms * 1e6)).toFixed(2).padStart(7)}  ${ms.toFixed(1).padStart(9)}  ` +
        `${(flop / (median(cpuTimes) * 1e6)).toFixed(2).padStart(11)}  ${maxErr.toExponential(2)}`,
    );
    scope.dispose();
  }
  releaseTensor(gpu, ta);
  releaseTensor(gpu, tb);
  releaseTensor(gpu, to);
}
gpu.checkHealthy("bench");
