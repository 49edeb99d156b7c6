/** Group normalization (shaders/groupnorm.wgsl): the CPU reference against the definition's
 * invariants, and the GPU kernel against the reference at odd sizes, with rows split into chunks
 * of several sizes, parameters per channel and per group, host and GPU parameters, float16. */
import { deepStrictEqual, throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor, roundToF16, sizeOf } from "../../src/util/tensor.ts";
import { getGpu, type GpuTensor } from "../../src/gpu/mod.ts";
import { GROUPNORM_CHUNK, prepareGroupNorm } from "../../src/kernels/groupnorm.ts";
import { groupNormRef } from "../../src/kernels/groupnorm_ref.ts";
import { groupNormLayout, groupNormParamCount } from "../../src/kernels/groupnorm_shape.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

Deno.test("groupnorm ref: rows come out with mean 0 and variance var / (var + eps)", () => {
  const shape = [2, 6, 3, 5];
  const x = randomFloats(sizeOf(shape), 1, -3, 5);
  const layout = groupNormLayout(shape, 3, true);
  const eps = 0.25;
  const y = groupNormRef(x, layout, new Array(6).fill(1), new Array(6).fill(0), eps);
  const rowLen = 2 * 15;
  for (let row = 0; row < 6; row++) {
    const xs = Array.from(x.slice(row * rowLen, (row + 1) * rowLen));
    const ys = Array.from(y.slice(row * rowLen, (row + 1) * rowLen));
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const variance = (v: number[]) => mean(v.map((e) => (e - mean(v)) ** 2));
    assertClose([mean(ys)], [0], { atol: 1e-6 });
    const vx = variance(xs);
    assertClose([variance(ys)], [vx / (vx + eps)], { rtol: 1e-5 });
  }
  // Parameters per group: one scale/bias for all the group's channels.
  const perGroup = groupNormLayout(shape, 3, false);
  deepStrictEqual(groupNormParamCount(perGroup), 3);
  const z = groupNormRef(x, perGroup, [2, 2, 2], [1, 1, 1], eps);
  assertClose(z, y.map((v) => 2 * v + 1), { rtol: 1e-6, atol: 1e-6 });
  throws(() => groupNormLayout(shape, 4, true), /4 groups must divide the 6 channels/);
});

interface Case {
  shape: number[];
  groups: number;
  perChannel?: boolean;
  /** Values per invocation of the statistics pass. */
  chunk?: number;
  gpuParams?: boolean;
  f16?: boolean;
  /** Added to x: rows with |mean| >> std. */
  offset?: number;
  epsilon?: number;
}

let seed = 100;

async function check(cs: Case): Promise<void> {
  const gpu = await getGpu();
  const perChannel = cs.perChannel ?? true;
  const layout = groupNormLayout(cs.shape, cs.groups, perChannel);
  const count = groupNormParamCount(layout);
  const dtype = cs.f16 ? "float16" : "float32";
  const xv = randomFloats(sizeOf(cs.shape), seed++).map((v) => v + (cs.offset ?? 0));
  const x = cpuTensor(dtype, cs.shape, cs.f16 ? xv.map(roundToF16) : xv);
  const scale = cpuTensor("float32", [count], randomFloats(count, seed++, 0.5, 2));
  const bias = cpuTensor("float32", [count], randomFloats(count, seed++));
  const eps = cs.epsilon ?? 1e-5;
  const ref = groupNormRef(x.data, layout, scale.data, bias.data, eps);
  const inputs: CpuTensor[] = [x, ...(cs.gpuParams ? [scale, bias] : [])];
  const [got] = await runKernel(gpu, inputs, [cs.shape], (scope, ins, outs) => {
    const s: GpuTensor | CpuTensor = cs.gpuParams ? ins[1] : scale;
    const b: GpuTensor | CpuTensor = cs.gpuParams ? ins[2] : bias;
    return prepareGroupNorm(gpu, scope, ins[0], s, b, outs[0], layout, eps, cs.chunk);
  });
  const label = JSON.stringify(cs);
  if (cs.f16) {
    assertHalfValues(got, label);
    assertClose(got.data, ref.map(roundToF16), { rtol: 2e-3, atol: 2e-3, label });
  } else {
    assertClose(got.data, ref, { rtol: 1e-4, atol: 1e-4, label });
  }
}

Deno.test("groupnorm: chunked statistics, per channel and per group, odd sizes", async () => {
  const cases: Case[] = [
    { shape: [3, 4, 2, 2], groups: 2 },
    { shape: [2, 6, 7, 5], groups: 3, perChannel: false },
    { shape: [1, 5, 13], groups: 5 }, // instance norm, 1-D
    { shape: [2, 3, 3, 5, 7], groups: 1 }, // one group: layer norm over C and space
    { shape: [1, 32, 9, 11], groups: 8, perChannel: false, epsilon: 0.01 },
    { shape: [3, 7], groups: 7 }, // no spatial axes: every row is one value
    { shape: [1, 4, 301], groups: 2, offset: 100 }, // |mean| >> std
  ];
  for (const cs of cases) {
    // Chunks that split rows unevenly (7), one chunk per row (1000), one value per chunk.
    for (const chunk of [7, 1000, 1]) await check({ ...cs, chunk });
    await check(cs);
  }
});

Deno.test("groupnorm: GPU parameters, float16", async () => {
  await check({ shape: [2, 6, 5, 3], groups: 3, gpuParams: true });
  await check({ shape: [2, 6, 5, 3], groups: 2, perChannel: false, gpuParams: true });
  await check({ shape: [1, 4, 7, 9], groups: 4, f16: true });
  await check({ shape: [2, 8, 11], groups: 2, f16: true, gpuParams: true, chunk: 3 });
});

Deno.test("groupnorm: long rows, parameter checks", async () => {
  // Rows of many chunks (and a partial last one): 2 x 3 rows of 2 * 1000 values.
  await check({ shape: [2, 6, 40, 25], groups: 3, offset: 10 });
  // Far more chunks than the default's (a 600-value row of mean 100 in chunks of one value).
  await check({ shape: [1, 2, 301], groups: 1, offset: 100, chunk: 1 });
  deepStrictEqual(GROUPNORM_CHUNK, 256);
  const gpu = await getGpu();
  const x = cpuTensor("float32", [1, 4, 3], randomFloats(12, 5));
  const layout = groupNormLayout(x.shape, 2, true);
  await runKernel(gpu, [x], [x.shape], (scope, ins, outs) => {
    const two = cpuTensor("float32", [2], [1, 1]);
    throws(
      () => prepareGroupNorm(gpu, scope, ins[0], two, two, outs[0], layout, 1e-5),
      /scale has 2 values, expected 4/,
    );
    const four = cpuTensor("float32", [4], [1, 1, 1, 1]);
    return prepareGroupNorm(gpu, scope, ins[0], four, four, outs[0], layout, 1e-5);
  });
});
