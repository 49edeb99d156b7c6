import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import {
  allocTensor,
  type Dispatch,
  downloadTensor,
  getGpu,
  type Gpu,
  releaseTensor,
  ResourceScope,
  submitDispatches,
  uploadCpuTensor,
} from "../../src/gpu/mod.ts";
import {
  type AttentionProblem,
  contiguousStrides4 as contiguousStrides,
  prepareAttention,
  type PrepareAttentionOptions,
  type Strides4,
} from "../../src/kernels/attention.ts";
import { attentionRef, type AttentionRefOptions } from "../../src/kernels/attention_ref.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

interface Case {
  b: number;
  h: number;
  sq: number;
  sk: number;
  d: number;
  dv?: number;
  mask?: "full" | "keys";
  causal?: number;
  halves?: boolean;
  dtype?: "float32" | "float16";
}

function transpose0213(t: CpuTensor): CpuTensor {
  const [b, h, s, d] = t.shape;
  const out = new Float64Array(t.data.length);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      for (let si = 0; si < s; si++) {
        for (let di = 0; di < d; di++) {
          out[((bi * s + si) * h + hi) * d + di] = t.data[((bi * h + hi) * s + si) * d + di];
        }
      }
    }
  }
  return cpuTensor(t.dtype, [b, s, h, d], out);
}

/** Strides of the logical [B, H, S, D] view of a [B, S, H, D] tensor. */
function headsMiddle(b: number, s: number, h: number, d: number): Strides4 {
  void b;
  return [s * h * d, d, h * d, 1];
}

async function runCase(gpu: Gpu, c: Case, seed: number, layout: "bhsd" | "bshd") {
  const dv = c.dv ?? c.d;
  const dtype = c.dtype ?? "float32";
  const problem: AttentionProblem = {
    batch: c.b,
    heads: c.h,
    sq: c.sq,
    sk: c.sk,
    dqk: c.d,
    dv,
  };
  // Scores of a few units, so the softmax is far from flat and from one-hot.
  const q = cpuTensor(
    dtype,
    [c.b, c.h, c.sq, c.d],
    randomFloats(c.b * c.h * c.sq * c.d, seed, -2, 2),
  );
  const k = cpuTensor(
    dtype,
    [c.b, c.h, c.sk, c.d],
    randomFloats(c.b * c.h * c.sk * c.d, seed + 1, -2, 2),
  );
  const v = cpuTensor(dtype, [c.b, c.h, c.sk, dv], randomFloats(c.b * c.h * c.sk * dv, seed + 2));
  const refOptions: AttentionRefOptions = { causalOffset: c.causal, halves: c.halves };
  let mask: CpuTensor | undefined;
  let maskStrides: Strides4 = [0, 0, 0, 0];
  if (c.mask === "full") {
    // [Sq, Sk], broadcast over batch and heads, with some -inf (never a whole row).
    const values = randomFloats(c.sq * c.sk, seed + 3, -3, 3).map((x, idx) =>
      idx % c.sk !== 0 && (idx * 7) % 5 === 0 ? -Infinity : x
    );
    mask = cpuTensor(dtype, [c.sq, c.sk], values);
    maskStrides = [0, 0, c.sk, 1];
  } else if (c.mask === "keys") {
    // [B, 1, 1, Sk]: key padding per batch entry.
    mask = cpuTensor(dtype, [c.b, 1, 1, c.sk], randomFloats(c.b * c.sk, seed + 3, -3, 0));
    maskStrides = [c.sk, 0, 0, 1];
  }
  refOptions.mask = mask;
  const want = attentionRef(q, k, v, refOptions);
  const inputs = layout === "bhsd"
    ? [q, k, v]
    : [transpose0213(q), transpose0213(k), transpose0213(v)];
  const st = (s: number, d: number): Strides4 =>
    layout === "bhsd" ? contiguousStrides([c.b, c.h, s, d]) : headsMiddle(c.b, s, c.h, d);
  const outShape = layout === "bhsd" ? [c.b, c.h, c.sq, dv] : [c.b, c.sq, c.h, dv];
  const options: PrepareAttentionOptions = { causalOffset: c.causal, halves: c.halves };
  const [got] = await runKernel(
    gpu,
    mask ? [...inputs, mask] : inputs,
    [outShape],
    (scope, ins, outs) =>
      prepareAttention(
        gpu,
        scope,
        problem,
        { tensor: ins[0], strides: st(c.sq, c.d) },
        { tensor: ins[1], strides: st(c.sk, c.d) },
        { tensor: ins[2], strides: st(c.sk, dv) },
        { tensor: outs[0], strides: st(c.sq, dv) },
        { ...options, mask: mask ? { tensor: ins[3], strides: maskStrides } : undefined },
      ),
  );
  const expected = layout === "bhsd" ? want : transpose0213(want);
  assertEquals(got.shape, expected.shape);
  const label = `${JSON.stringify(c)} ${layout}`;
  const tol = dtype === "float16" ? { rtol: 2e-3, atol: 2e-3 } : { rtol: 1e-5, atol: 2e-6 };
  assertClose(got.data, expected.data, { ...tol, label });
  return got;
}

Deno.test("attention: odd sizes, head dims 32/64/80, against the float64 reference", async () => {
  const gpu = await getGpu();
  const cases: Case[] = [
    { b: 1, h: 1, sq: 1, sk: 1, d: 32 },
    { b: 2, h: 3, sq: 7, sk: 7, d: 32 },
    { b: 1, h: 2, sq: 50, sk: 50, d: 64 },
    { b: 3, h: 2, sq: 1, sk: 50, d: 64 },
    { b: 1, h: 3, sq: 77, sk: 77, d: 80 },
    { b: 2, h: 2, sq: 197, sk: 197, d: 64 },
    { b: 1, h: 1, sq: 13, sk: 29, d: 7, dv: 5 },
    { b: 1, h: 2, sq: 65, sk: 3, d: 33, dv: 17 },
  ];
  let seed = 1;
  for (const c of cases) await runCase(gpu, c, seed += 10, "bhsd");
});

Deno.test("attention: causal and additive masks, strided [B, S, H, D] operands", async () => {
  const gpu = await getGpu();
  const cases: Case[] = [
    { b: 2, h: 3, sq: 77, sk: 77, d: 64, causal: 0 },
    { b: 1, h: 2, sq: 7, sk: 7, d: 32, causal: 0 },
    { b: 1, h: 1, sq: 70, sk: 131, d: 32, causal: 61 },
    { b: 2, h: 2, sq: 77, sk: 77, d: 80, mask: "full" },
    { b: 3, h: 2, sq: 9, sk: 50, d: 64, mask: "keys" },
    { b: 1, h: 2, sq: 77, sk: 77, d: 32, mask: "full", causal: 0 },
  ];
  let seed = 100;
  for (const c of cases) {
    await runCase(gpu, c, seed += 10, "bhsd");
    await runCase(gpu, c, seed += 10, "bshd");
  }
});

Deno.test("attention: halves (f16 operands) and float16 tensors", async () => {
  const gpu = await getGpu();
  await runCase(gpu, { b: 2, h: 3, sq: 50, sk: 50, d: 64, halves: true }, 7, "bshd");
  await runCase(gpu, { b: 1, h: 2, sq: 77, sk: 77, d: 32, causal: 0, halves: true }, 8, "bhsd");
  const got = await runCase(
    gpu,
    { b: 1, h: 2, sq: 19, sk: 23, d: 32, dtype: "float16" },
    9,
    "bhsd",
  );
  assertHalfValues(got, "float16 attention");
});

Deno.test("attention: grouped-query heads, a bool mask, softcap, rows that see no key", async () => {
  const gpu = await getGpu();
  const [b, h, kvh, sq, sk, d] = [2, 6, 2, 19, 23, 32];
  const q = cpuTensor("float32", [b, h, sq, d], randomFloats(b * h * sq * d, 1, -2, 2));
  const k = cpuTensor("float32", [b, kvh, sk, d], randomFloats(b * kvh * sk * d, 2, -2, 2));
  const v = cpuTensor("float32", [b, kvh, sk, d], randomFloats(b * kvh * sk * d, 3));
  // [Sq, Sk] bool: row 5 sees nothing, the others about two thirds of the keys.
  const mask = cpuTensor(
    "bool",
    [sq, sk],
    Array.from({ length: sq * sk }, (_, i) => (Math.floor(i / sk) === 5 || i % 3 === 0 ? 0 : 1)),
  );
  const want = attentionRef(q, k, v, { mask, softcap: 2.5, emptyRowsZero: true });
  const st = (heads: number, s: number) => contiguousStrides([b, heads, s, d]);
  const [got] = await runKernel(
    gpu,
    [q, k, v, mask],
    [{ shape: [b, h, sq, d], dtype: "float32" }],
    (scope, ins, outs) =>
      prepareAttention(
        gpu,
        scope,
        { batch: b, heads: h, kvHeads: kvh, sq, sk, dqk: d, dv: d },
        { tensor: ins[0], strides: st(h, sq) },
        { tensor: ins[1], strides: st(kvh, sk) },
        { tensor: ins[2], strides: st(kvh, sk) },
        { tensor: outs[0], strides: st(h, sq) },
        {
          mask: { tensor: ins[3], strides: [0, 0, sk, 1] },
          softcap: 2.5,
          emptyRowsZero: true,
        },
      ),
  );
  assertClose(got.data, want.data, { rtol: 1e-5, atol: 2e-6, label: "gqa bool softcap" });
  assertEquals(got.data[5 * d], 0);
});

/** Runs a batch-1 attention over `heads` heads whose rows hold every head (the layout torch's
 * MultiheadAttention export hands over: [S, heads * D]) and returns the output and the
 * dispatches it ran. */
async function runRowsOfHeads(
  gpu: Gpu,
  heads: number,
  s: number,
  d: number,
  q: CpuTensor,
  k: CpuTensor,
  v: CpuTensor,
) {
  const st: Strides4 = [0, d, heads * d, 1];
  let dispatches: Dispatch[] = [];
  const [got] = await runKernel(
    gpu,
    [q, k, v],
    [[s, heads * d]],
    (scope, [tq, tk, tv], [o]) =>
      dispatches = prepareAttention(
        gpu,
        scope,
        { batch: 1, heads, sq: s, sk: s, dqk: d, dv: d },
        { tensor: tq, strides: st },
        { tensor: tk, strides: st },
        { tensor: tv, strides: st },
        { tensor: o, strides: st },
      ),
  );
  return { got, dispatches };
}

/** [S, heads, D] as the logical [1, heads, S, D] the reference takes. */
function headsFirst(t: CpuTensor, heads: number, s: number, d: number): CpuTensor {
  return transpose0213(cpuTensor(t.dtype, [1, s, heads, d], t.data));
}

Deno.test("attention: operands copied into their textures, and texture rows past the keys", async () => {
  const gpu = await getGpu();
  const [heads, d] = [6, 64];
  const operands = (s: number, seed: number) =>
    [0, 1, 2].map((i) =>
      cpuTensor("float32", [s, heads * d], randomFloats(s * heads * d, seed + i, -2, 2))
    );
  // 20 keys fill rows 0-19 of the 32-row texture band; V's rows 17-19 hold inf.
  const [q20, k20, v20] = operands(20, 40);
  for (let r = 17; r < 20; r++) v20.data.fill(Infinity, r * heads * d, (r + 1) * heads * d);
  await runRowsOfHeads(gpu, heads, 20, d, q20, k20, v20);
  // 17 keys share that texture (same size) and copy only rows 0-16: rows 17-19 still hold the
  // infs, which must not reach the output (0 * inf = NaN).
  const [q, k, v] = operands(17, 50);
  const { got, dispatches } = await runRowsOfHeads(gpu, heads, 17, d, q, k, v);
  // Rows of every head are one copy per operand, and nothing is packed.
  assertEquals(dispatches.map((x) => [x.label, x.copiesBefore?.length]), [["attention", 3]]);
  const want = attentionRef(
    headsFirst(q, heads, 17, d),
    headsFirst(k, heads, 17, d),
    headsFirst(v, heads, 17, d),
  );
  const wantRows = transpose0213(want);
  assertClose(got.data, wantRows.data, { rtol: 1e-5, atol: 2e-6, label: "copied operands" });
});

Deno.test("attention: copies stay in order when attentions sharing textures run in one submission", async () => {
  const gpu = await getGpu();
  const [heads, s, d] = [3, 21, 64];
  const st: Strides4 = [0, d, heads * d, 1];
  const problem = { batch: 1, heads, sq: s, sk: s, dqk: d, dv: d };
  const scope = new ResourceScope();
  try {
    // Two attentions of one size share their operand textures; each one's copies must run after
    // the other's product has read them (encodeDispatches splits the pass at each copy).
    const runs = [60, 70].map((seed) => {
      const host = [0, 1, 2].map((i) =>
        cpuTensor("float32", [s, heads * d], randomFloats(s * heads * d, seed + i, -2, 2))
      );
      const [q, k, v] = host;
      const gpuOperands = host.map((t) => uploadCpuTensor(gpu, t));
      const out = allocTensor(gpu, [s, heads * d], "float32");
      const dispatches = prepareAttention(
        gpu,
        scope,
        problem,
        { tensor: gpuOperands[0], strides: st },
        { tensor: gpuOperands[1], strides: st },
        { tensor: gpuOperands[2], strides: st },
        { tensor: out, strides: st },
      );
      const want = attentionRef(
        headsFirst(q, heads, s, d),
        headsFirst(k, heads, s, d),
        headsFirst(v, heads, s, d),
      );
      return { dispatches, out, want: transpose0213(want), release: [...gpuOperands, out] };
    });
    submitDispatches(gpu, runs.flatMap((r) => r.dispatches));
    for (const [i, r] of runs.entries()) {
      const got = await downloadTensor(gpu, r.out);
      assertClose(got.data, r.want.data, { rtol: 1e-5, atol: 2e-6, label: `attention ${i}` });
      for (const t of r.release) releaseTensor(gpu, t);
    }
  } finally {
    scope.dispose();
  }
});
