/** Measured variant selection: the per-adapter cache, and tuning matmul/conv on the GPU (small
 * problems; the chosen variant must compute the right result). No timing assertions. */
import assert from "node:assert/strict";
import {
  allocTensor,
  type Dispatch,
  getGpu,
  type Gpu,
  releaseTensor,
  type ResourceScope,
  uploadTensor,
} from "../../src/gpu/mod.ts";
import { cpuTensor } from "../../src/util/tensor.ts";
import {
  cachedMatmulVariant,
  chooseMatmulVariant,
  MATMUL_VARIANTS,
  type MatmulProblem,
  matmulProblem,
  prepareMatmul,
} from "../../src/kernels/matmul.ts";
import {
  matmulCandidates,
  matmulProblemKey,
  tunedMatmulVariant,
  tuneMatmul,
} from "../../src/kernels/matmul_tune.ts";
import { convCandidates, tuneConv, tunedConvChannelBlocks } from "../../src/kernels/conv_tune.ts";
import { prepareConv } from "../../src/kernels/conv.ts";
import { convRef } from "../../src/kernels/conv_ref.ts";
import {
  adapterKey,
  problemKey,
  sliceDispatches,
  tuneVariants,
  VariantCache,
} from "../../src/kernels/variants.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { runKernel } from "./harness.ts";

function fakeGpu(description: string, f16 = true): Gpu {
  return {
    summary: { description, vendor: "v", architecture: "a" },
    hasF16: f16,
  } as unknown as Gpu;
}

Deno.test("variant cache: per adapter and problem, JSON and file round trip", () => {
  const cache = new VariantCache();
  const lavapipe = fakeGpu("llvmpipe"),
    gpu2 = fakeGpu("big gpu"),
    noF16 = fakeGpu("llvmpipe", false);
  assert.notEqual(adapterKey(lavapipe), adapterKey(noF16));
  cache.set(lavapipe, "matmul", problemKey(1, 64, 64, 64), "texture-16x16");
  cache.set(gpu2, "matmul", problemKey(1, 64, 64, 64), "shared-64");
  assert.equal(cache.get(lavapipe, "matmul", "1x64x64x64"), "texture-16x16");
  assert.equal(cache.get(gpu2, "matmul", "1x64x64x64"), "shared-64");
  assert.equal(cache.get(noF16, "matmul", "1x64x64x64"), undefined);
  assert.equal(cache.get(lavapipe, "conv", "1x64x64x64"), undefined);
  assert.equal(cache.size, 2);

  const copy = new VariantCache();
  copy.load(JSON.parse(JSON.stringify(cache.toJSON())));
  assert.equal(copy.get(gpu2, "matmul", "1x64x64x64"), "shared-64");
  copy.load("garbage");
  copy.load({ x: 3, y: { "k:p": 5 } });
  assert.equal(copy.size, 2);

  const path = Deno.makeTempFileSync({ suffix: ".json" });
  try {
    cache.saveFile(path);
    const fromFile = new VariantCache();
    fromFile.loadFile(path);
    assert.equal(fromFile.get(lavapipe, "matmul", "1x64x64x64"), "texture-16x16");
    fromFile.loadFile(`${path}.missing`); // absent file: unchanged
    assert.equal(fromFile.size, 2);
  } finally {
    Deno.removeSync(path);
  }

  // A save that fails (here the rename: the target is a folder; a full disk fails the write the
  // same way) is an error naming the file and leaves no temporary file behind.
  const dir = Deno.makeTempDirSync();
  try {
    const target = `${dir}/variant-cache.json`;
    Deno.mkdirSync(`${target}/occupied`, { recursive: true });
    assert.throws(
      () => cache.saveFile(target),
      (e: Error) => e.message.startsWith(`cannot save the variant cache ${target}: `),
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["variant-cache.json"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** What `matmulCandidates` reads of a hardware adapter (not llvmpipe). */
function hardwareGpu(f16: boolean, workgroupBytes = 16384, llvmpipe = false): Gpu {
  return {
    summary: { description: "big gpu", vendor: "v", architecture: "a", isLlvmpipe: llvmpipe },
    hasF16: f16,
    limits: {
      maxComputeWorkgroupStorageSize: workgroupBytes,
      maxComputeInvocationsPerWorkgroup: 256,
    },
  } as unknown as Gpu;
}

Deno.test("matmulCandidates on hardware: shared tiles; f16 tiles need shader-f16 and halves", () => {
  const problem: MatmulProblem = { batch: 1, m: 197, k: 768, n: 2304 };
  const halves = { ...problem, halvesAllowed: true };
  const names = (gpu: Gpu, p: MatmulProblem) => matmulCandidates(gpu, p).map((v) => v.name);
  const f32Tiles = ["shared-64", "shared-128", "shared-32x64", "shared-64x32"];
  const f16Tiles = ["shared-f16-64", "shared-f16-128"];
  for (const f16 of [true, false]) {
    const gpu = hardwareGpu(f16);
    for (const p of [problem, halves]) {
      const got = names(gpu, p);
      const label = `f16 ${f16}, halves ${!!p.halvesAllowed}: ${got}`;
      // The heuristic default first: a float32 shared tile on hardware.
      assert.equal(got[0], chooseMatmulVariant(gpu, p).name, label);
      assert.equal(MATMUL_VARIANTS[got[0]].family, "shared", label);
      assert.equal(new Set(got).size, got.length, label);
      for (const name of f32Tiles) assert.ok(got.includes(name), `${label}: ${name}`);
      const wantF16 = f16 && !!p.halvesAllowed;
      for (const name of f16Tiles) assert.equal(got.includes(name), wantF16, `${label}: ${name}`);
      // Half-precision textures need no shader feature, only the problem's consent.
      assert.equal(got.includes("texture-f16-16x16"), !!p.halvesAllowed, label);
      assert.ok(!got.includes("scalar-8x8"), label);
    }
  }
  // A device with less workgroup memory than the 32x64 / 64x32 tiles declare (13 KiB; WebGPU
  // guarantees 16 KiB, so this device is hypothetical) is not offered them.
  const small = names(hardwareGpu(true, 12 * 1024), halves);
  assert.ok(small.includes("shared-64") && small.includes("shared-f16-128"), `${small}`);
  assert.ok(!small.includes("shared-32x64") && !small.includes("shared-64x32"), `${small}`);
  // llvmpipe: no shared tiles at all, whatever the features.
  const cpu = matmulCandidates(hardwareGpu(true, 32768, true), halves);
  assert.ok(cpu.every((v) => v.family !== "shared"), `${cpu.map((v) => v.name)}`);
  // Defaults on hardware follow the product's shape.
  const hw = hardwareGpu(true);
  const pick = (m: number, n: number, batch = 1) =>
    chooseMatmulVariant(hw, { m, n, k: 768, batch }).name;
  assert.deepEqual(
    [pick(8, 3072), pick(3072, 16), pick(197, 768), pick(2048, 2048), pick(1, 768)],
    ["shared-32x64", "shared-64x32", "shared-64", "shared-128", "vec4-4x4"],
  );
  // A cached f16 tile is ignored on a device without shader-f16 (a hand-edited cache).
  const cache = new VariantCache();
  const noF16 = hardwareGpu(false);
  cache.set(noF16, "matmul", matmulProblemKey(halves), "shared-f16-64");
  assert.equal(cachedMatmulVariant(noF16, halves, cache), undefined);
  cache.set(hw, "matmul", matmulProblemKey(halves), "shared-f16-64");
  assert.equal(cachedMatmulVariant(hw, halves, cache)?.name, "shared-f16-64");
});

Deno.test("tuneMatmul picks a candidate that computes the right product, caches it", async () => {
  const gpu = await getGpu();
  const cache = new VariantCache();
  const problem = { batch: 1, m: 33, k: 20, n: 70 };
  const candidates = matmulCandidates(gpu, problem);
  assert.ok(candidates.length >= 2);
  assert.equal(new Set(candidates.map((v) => v.name)).size, candidates.length);
  // Half-precision storage rounds the operands: only a problem that allows it may get it.
  assert.ok(candidates.every((v) => !v.halves));
  assert.notEqual(
    matmulProblemKey(problem),
    matmulProblemKey({ ...problem, halvesAllowed: true }),
  );

  const first = await tuneMatmul(gpu, problem, { cache, targetMs: 2, batches: 1 });
  assert.equal(first.cached, false);
  assert.ok(candidates.some((v) => v.name === first.chosen));
  assert.equal(first.trials.length, candidates.length);
  assert.ok(first.trials.some((t) => t.name === first.chosen && t.ms! > 0));
  assert.equal(cache.get(gpu, "matmul", matmulProblemKey(problem)), first.chosen);
  assert.equal(tunedMatmulVariant(gpu, problem, cache)?.name, first.chosen);

  const again = await tuneMatmul(gpu, problem, { cache });
  assert.equal(again.cached, true);
  assert.equal(again.chosen, first.chosen);
  assert.deepEqual(again.trials, []);

  const { m, k, n } = problem;
  const a = randomFloats(m * k, 1), b = randomFloats(k * n, 2);
  const [got] = await runKernel(
    gpu,
    [cpuTensor("float32", [m, k], a), cpuTensor("float32", [k, n], b)],
    [[m, n]],
    (scope, [ta, tb], [tc]) => prepareMatmul(gpu, scope, ta, tb, tc, { variant: first.variant }),
  );
  const want = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      for (let p = 0; p < k; p++) want[i * n + j] += a[i * k + p] * b[p * n + j];
    }
  }
  assertClose(got.data, want, { rtol: 1e-5, atol: 1e-5, label: first.chosen });
});

Deno.test("tuneVariants: failing candidates are reported, all failing throws", async () => {
  const gpu = await getGpu();
  const cache = new VariantCache();
  const problem = { batch: 1, m: 8, k: 8, n: 8 };
  const good = MATMUL_VARIANTS[matmulCandidates(gpu, problem)[0].name];
  const a = uploadTensor(gpu, new Float32Array(64).fill(1), [8, 8], "float32");
  const out = allocTensor(gpu, [8, 8], "float32");
  try {
    const result = await tuneVariants(gpu, "test", "p", [
      {
        name: "broken",
        prepare: () => {
          throw new Error("cannot build");
        },
      },
      { name: "good", prepare: (owner) => prepareMatmul(gpu, owner, a, a, out, { variant: good }) },
    ], { cache, targetMs: 1, batches: 1 });
    assert.equal(result.chosen, "good");
    assert.deepEqual(result.trials[0], { name: "broken", error: "cannot build" });
    await assert.rejects(
      tuneVariants(gpu, "test", "q", [{
        name: "broken",
        prepare: () => {
          throw new Error("nope");
        },
      }], { cache }),
      /no variant ran.*broken: nope/,
    );
  } finally {
    releaseTensor(gpu, a);
    releaseTensor(gpu, out);
  }
});

Deno.test("tuneVariants keeps the default (first) trial unless clearly beaten", async () => {
  const gpu = await getGpu();
  // Big enough (a few ms) that four times the work shows over the ~11 ms fence of a batch.
  const problem = { batch: 1, m: 256, k: 256, n: 256 };
  const variant = MATMUL_VARIANTS[matmulCandidates(gpu, problem)[0].name];
  const a = uploadTensor(gpu, new Float32Array(256 * 256).fill(1), [256, 256], "float32");
  const out = allocTensor(gpu, [256, 256], "float32");
  // `times` runs of the same product: the work of a candidate, in whole multiples.
  const trial = (name: string, times: number) => ({
    name,
    prepare: (owner: ResourceScope) => {
      const once = prepareMatmul(gpu, owner, a, a, out, { variant });
      return Array.from({ length: times }, () => once).flat();
    },
  });
  const options = { targetMs: 20, batches: 2 };
  try {
    // Equal work: the default stays, whichever measured a little faster.
    const tie = await tuneVariants(gpu, "test", "tie", [trial("default", 1), trial("other", 1)], {
      ...options,
      cache: new VariantCache(),
      keepDefaultWithin: 0.5,
    });
    assert.equal(tie.chosen, "default");
    // Four times the work: beaten by far more than the margin.
    const slow = await tuneVariants(gpu, "test", "slow", [trial("default", 4), trial("other", 1)], {
      ...options,
      cache: new VariantCache(),
    });
    assert.equal(slow.chosen, "other");
  } finally {
    releaseTensor(gpu, a);
    releaseTensor(gpu, out);
  }
});

Deno.test("tuneConv picks a register tile that computes the right convolution", async () => {
  const gpu = await getGpu();
  const cache = new VariantCache();
  const xShape = [1, 5, 9, 9], wShape = [12, 5, 3, 3];
  const attrs = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 };
  // 12 channels: at most 3 blocks of 4; a 3x3 convolution is not a plain matmul.
  const candidates = convCandidates(xShape, wShape, attrs);
  assert.deepEqual(candidates, ["12ch", "8ch", "4ch"]);
  // From 16 channels a 3-wide kernel row at stride 1 also tries the wide tile.
  assert.deepEqual(convCandidates(xShape, [16, 5, 3, 3], attrs), ["8px16ch", "16ch", "8ch", "4ch"]);
  const tuned = await tuneConv(gpu, xShape, wShape, attrs, { cache, targetMs: 2, batches: 1 });
  assert.ok(candidates.includes(tuned.chosen));
  assert.equal(tunedConvChannelBlocks(gpu, xShape, wShape, attrs, cache), tuned.channelBlocks);

  const x = cpuTensor("float32", xShape, randomFloats(5 * 81, 3));
  const w = cpuTensor("float32", wShape, randomFloats(12 * 45, 4));
  const [got] = await runKernel(
    gpu,
    [x],
    [[1, 12, 9, 9]],
    (scope, [tx], [ty]) =>
      prepareConv(gpu, scope, tx, w, undefined, ty, attrs, tuned.channelBlocks),
  );
  const want = convRef(x.data, xShape, w.data, wShape, undefined, attrs);
  assertClose(got.data, want.data, { rtol: 1e-4, atol: 1e-5 });
});

Deno.test("tuneConv: pointwise convolutions also try the matmul, and prepareConv follows", async () => {
  const gpu = await getGpu();
  const cache = new VariantCache();
  const xShape = [2, 6, 5, 7], wShape = [9, 6, 1, 1];
  const attrs = { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 };
  assert.deepEqual(convCandidates(xShape, wShape, attrs), ["gemm", "12ch", "8ch", "4ch"]);
  // The default comes first: the matmul when the plane is a whole number of vec4 (28 pixels),
  // the wide tile when it is not (49) and the tile applies (16+ channels).
  const wide16 = [16, 6, 1, 1];
  const rest = ["16ch", "8ch", "4ch"];
  assert.deepEqual(convCandidates([1, 6, 4, 7], wide16, attrs), ["gemm", "8px16ch", ...rest]);
  assert.deepEqual(convCandidates([1, 6, 7, 7], wide16, attrs), ["8px16ch", "gemm", ...rest]);
  // Strided or padded 1x1 convolutions are not plain matmuls.
  assert.ok(!convCandidates(xShape, wShape, { ...attrs, strides: [2, 2] }).includes("gemm"));
  assert.ok(!convCandidates(xShape, wShape, { ...attrs, pads: [1, 1, 1, 1] }).includes("gemm"));
  const x = cpuTensor("float32", xShape, randomFloats(2 * 6 * 35, 5));
  const w = cpuTensor("float32", wShape, randomFloats(54, 6));
  const want = convRef(x.data, xShape, w.data, wShape, undefined, attrs);
  for (const candidate of ["gemm", "4ch"]) {
    // Force each winner in turn: prepareConv reads the choice from the cache.
    const c = new VariantCache();
    const r = await tuneConv(gpu, xShape, wShape, attrs, {
      cache: c,
      candidates: [candidate],
      targetMs: 2,
      batches: 1,
    });
    assert.equal(r.chosen, candidate);
    const [got] = await runKernel(
      gpu,
      [x],
      [[2, 9, 5, 7]],
      (scope, [tx], [ty]) =>
        prepareConv(gpu, scope, tx, w, undefined, ty, attrs, { variantCache: c }),
    );
    assertClose(got.data, want.data, { rtol: 1e-4, atol: 1e-5, label: candidate });
  }
  const tuned = await tuneConv(gpu, xShape, wShape, attrs, { cache, targetMs: 2, batches: 1 });
  assert.ok(convCandidates(xShape, wShape, attrs).includes(tuned.chosen));
});

Deno.test("sliceDispatches cuts every grid's longest axis", () => {
  const d = (label: string, workgroups: [number, number, number]) =>
    ({ label, workgroups }) as unknown as Dispatch;
  const [pack, main] = sliceDispatches([d("pack", [4, 1, 1]), d("main", [10, 300, 2])], 7);
  assert.deepEqual(pack.workgroups, [1, 1, 1]);
  assert.deepEqual(main.workgroups, [10, 43, 2]);
  assert.deepEqual(sliceDispatches([d("one", [3, 1, 1])], 50)[0].workgroups, [1, 1, 1]);
  assert.deepEqual(sliceDispatches([d("one", [3, 1, 1])], 1)[0].workgroups, [3, 1, 1]);
});

/** Full-problem times of the candidates, by name (pruned or failed ones absent). */
function timesOf(r: { trials: readonly { name: string; ms?: number }[] }): Map<string, number> {
  return new Map(r.trials.filter((t) => t.ms !== undefined).map((t) => [t.name, t.ms!]));
}

Deno.test("a large problem timed on a slice picks a variant as good as timing it whole (benchmark shapes)", async () => {
  const gpu = await getGpu();
  // A ViT-B/16 MLP projection and a ResNet-50 stage-1 3x3 convolution.
  const problem = matmulProblem([197, 768], [768, 3072], {}, false, { b: true });
  const whole = await tuneMatmul(gpu, problem, {
    cache: new VariantCache(),
    sliceAboveMs: Infinity,
  });
  const sliced = await tuneMatmul(gpu, problem, { cache: new VariantCache(), sliceAboveMs: 4 });
  assert.ok((sliced.slice ?? 1) > 1, "the slice was used");
  const times = timesOf(whole);
  const best = Math.min(...times.values());
  assert.ok(
    (times.get(sliced.chosen) ?? Infinity) <= best * 1.5,
    `sliced pick ${sliced.chosen} vs whole ${whole.chosen}: ${JSON.stringify([...times])}`,
  );
  const x = [1, 64, 56, 56], w = [64, 64, 3, 3];
  const attrs = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 };
  const convWhole = await tuneConv(gpu, x, w, attrs, {
    cache: new VariantCache(),
    sliceAboveMs: Infinity,
  });
  const convSliced = await tuneConv(gpu, x, w, attrs, {
    cache: new VariantCache(),
    sliceAboveMs: 4,
  });
  assert.ok((convSliced.slice ?? 1) > 1, "the slice was used");
  const convTimes = timesOf(convWhole);
  const convBest = Math.min(...convTimes.values());
  assert.ok(
    (convTimes.get(convSliced.chosen) ?? Infinity) <= convBest * 1.5,
    `sliced pick ${convSliced.chosen} vs whole ${convWhole.chosen}: ${
      JSON.stringify([...convTimes])
    }`,
  );
});
