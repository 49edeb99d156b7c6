import { deepStrictEqual as assertEquals, rejects, throws } from "node:assert/strict";
import { allocTensor, getGpu, type Gpu, releaseTensor, ResourceScope } from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import {
  chooseMatmulVariant,
  MATMUL_VARIANTS,
  matmulLayout,
  planMatmul,
  prepareMatmul,
  type PrepareMatmulOptions,
} from "../../src/kernels/matmul.ts";
import { EngineError } from "../../src/util/errors.ts";
import { matmulRef } from "../../src/kernels/matmul_ref.ts";
import type { MatmulOptions } from "../../src/kernels/matmul_shape.ts";
import { erf } from "../../src/util/math.ts";
import { matmulOps } from "../../src/onnx/ops/matmul.ts";
import type { BuilderAttr } from "../../src/onnx/builder.ts";
import { assertClose } from "../helpers.ts";
import { assertHalfValues, assertTensorClose, runKernel, uniformTensor } from "./harness.ts";
import { opNode, runNode } from "../onnx/harness.ts";

let seed = 1;
function randomTensor(shape: number[], dtype: "float32" | "float16" = "float32"): CpuTensor {
  return uniformTensor(dtype, shape, seed++);
}

interface Case {
  a: CpuTensor;
  b: CpuTensor;
  bias?: CpuTensor;
  options?: MatmulOptions;
}

/** Runs `prepareMatmul` on the GPU and compares with `matmulRef`. */
async function check(
  gpu: Gpu,
  c: Case,
  variant?: string,
  extra: Partial<PrepareMatmulOptions> = {},
): Promise<void> {
  // Half-precision operand variants round A and B to float16 first: compare with a reference
  // on the rounded values, so the check stays as tight as for float32.
  const halves = MATMUL_VARIANTS[variant ?? ""]?.halves || extra.precision === "f16";
  const rounded = (t: CpuTensor) =>
    halves && t.dtype === "float32"
      ? cpuTensor("float32", t.shape, Array.from(t.data as Float32Array, roundToF16))
      : t;
  const expected = matmulRef(rounded(c.a), rounded(c.b), { ...c.options, bias: c.bias });
  const [got] = await runKernel(
    gpu,
    c.bias ? [c.a, c.b, c.bias] : [c.a, c.b],
    [expected],
    (scope, [ta, tb, tbias], [out]) =>
      prepareMatmul(gpu, scope, ta, tb, out, { ...c.options, bias: tbias, variant, ...extra }),
  );
  const k = c.options?.transA ? c.a.shape[c.a.shape.length - 2] : c.a.shape[c.a.shape.length - 1];
  const label = `${variant ?? "default"}: A ${c.a.shape} B ${c.b.shape}` +
    ` bias ${c.bias?.shape} ${JSON.stringify(c.options ?? {})}`;
  const f16 = expected.dtype === "float16";
  assertTensorClose(got, expected, {
    rtol: f16 ? 2e-3 : 1e-4,
    atol: f16 ? 2e-3 : 1e-6 * Math.max(1, k),
    label,
  });
  if (f16) assertHalfValues(got, label);
}

/** The shared-memory family (hardware GPUs; never the default on llvmpipe, so forced here). */
const SHARED_VARIANTS = Object.values(MATMUL_VARIANTS).filter((v) => v.family === "shared")
  .map((v) => v.name);

/** `t` rounded to float16 values where a half-precision variant stores its operands as halves. */
function roundedFor(variant: string, t: CpuTensor): CpuTensor {
  return MATMUL_VARIANTS[variant].halves
    ? cpuTensor("float32", t.shape, Array.from(t.data as Float32Array, roundToF16))
    : t;
}

function plain(m: number, k: number, n: number, transA = false, transB = false): Case {
  return {
    a: randomTensor(transA ? [k, m] : [m, k]),
    b: randomTensor(transB ? [n, k] : [k, n]),
    options: { transA, transB },
  };
}

Deno.test("matmul ref: small product by hand, bias broadcast, 1-D ONNX operands", () => {
  const a = cpuTensor("float32", [2, 3], [1, 2, 3, 4, 5, 6]);
  const b = cpuTensor("float32", [3, 2], [7, 8, 9, 10, 11, 12]);
  // [[1*7+2*9+3*11, 1*8+2*10+3*12], [4*7+5*9+6*11, 4*8+5*10+6*12]]
  assertEquals(Array.from(matmulRef(a, b).data), [58, 64, 139, 154]);
  const bias = cpuTensor("float32", [2], [1, -1]);
  const r = matmulRef(a, b, { alpha: 2, beta: 3, bias });
  assertEquals(Array.from(r.data), [119, 125, 281, 305]);
  const bt = cpuTensor("float32", [2, 3], [7, 9, 11, 8, 10, 12]);
  assertEquals(Array.from(matmulRef(a, bt, { transB: true }).data), [58, 64, 139, 154]);
  const v = cpuTensor("float32", [3], [1, 0, -1]);
  const ctx = { node: opNode("MatMul"), opset: 13 };
  const [av] = matmulOps.MatMul.cpu(ctx, [a, v]);
  assertEquals(av.shape, [2]);
  assertEquals(Array.from(av.data), [-2, -2]);
  const [vv] = matmulOps.MatMul.cpu(ctx, [v, v]);
  assertEquals(vv.shape, []);
  assertEquals(Array.from(vv.data), [2]);
  assertClose([erf(0.5), erf(-2), erf(3)], [
    0.5204998778130465,
    -0.9953222650189527,
    0.9999779095030014,
  ], {
    rtol: 1e-12,
  });
});

Deno.test("matmul: batch axes fold into M when the operands allow it", () => {
  const linear = matmulLayout([8, 197, 768], [2304, 768], [2304], false, true);
  assertEquals([linear.m, linear.n, linear.k, linear.batchShape], [1576, 2304, 768, []]);
  // A [M, N] bias differs per row of each batch entry: no folding.
  const rowBias = matmulLayout([4, 5, 6], [6, 7], [5, 7], false, false);
  assertEquals([rowBias.m, rowBias.batchShape], [5, [4]]);
  // Broadcast batch axes keep stride 0; size-1 axes vanish; contiguous ones merge.
  // B is the same for A's innermost batch axis, which therefore folds into M (3 x 5 rows).
  const bcast = matmulLayout([2, 1, 3, 5, 6], [1, 4, 1, 6, 7], undefined, false, false);
  assertEquals([bcast.m, bcast.batchShape, bcast.aBatch, bcast.bBatch], [15, [2, 4], [90, 0], [
    0,
    42,
  ]]);
  const transposed = matmulLayout([2, 1, 3, 5, 6], [1, 4, 1, 5, 7], undefined, true, false);
  assertEquals([transposed.m, transposed.batchShape], [6, [2, 4, 3]]);
  throws(() => matmulLayout([2, 3], [4, 5], undefined, false, false), /inner dimensions/);
});

Deno.test("matmul: every variant matches the reference at odd and aligned shapes", async () => {
  const gpu = await getGpu();
  // Vec4 load modes: (1, 1, 1) and 33x17x65 one value at a time, 20x24x36 transposed vec4.
  const cases = [plain(1, 1, 1), plain(33, 17, 65), plain(20, 24, 36, true, true)];
  for (const variant of Object.keys(MATMUL_VARIANTS)) {
    for (const c of cases) await check(gpu, c, variant);
  }
});

Deno.test("matmul: transposes in every load mode (vec4, one-at-a-time) per family", async () => {
  const gpu = await getGpu();
  // Entry points of one family share their load helpers: one per family covers the modes.
  for (const variant of ["scalar-8x8", "vec4-8x8", "shared-64", "texture-8x8"]) {
    for (const [m, k, n] of [[7, 13, 5], [36, 24, 20]]) {
      for (const [ta, tb] of [[true, false], [false, true], [true, true]]) {
        await check(gpu, plain(m, k, n, ta, tb), variant);
      }
    }
  }
});

Deno.test("matmul: batched with broadcast, bias broadcast, alpha/beta, activations", async () => {
  const gpu = await getGpu();
  const batched: Case = {
    a: randomTensor([2, 1, 5, 6]),
    b: randomTensor([3, 7, 6]),
    bias: randomTensor([3, 1, 7]),
    options: { transB: true, alpha: 0.5, beta: -2 },
  };
  const folded: Case = {
    a: randomTensor([4, 9, 12]),
    b: randomTensor([12, 10]),
    bias: randomTensor([10]),
    options: { activation: "gelu" },
  };
  const rowBias: Case = {
    a: randomTensor([3, 9, 12]),
    b: randomTensor([12, 10]),
    bias: randomTensor([9, 10]),
    options: { activation: "quick_gelu", alpha: 1.5 },
  };
  const transA: Case = {
    a: randomTensor([2, 12, 9]),
    b: randomTensor([1, 12, 8]),
    bias: randomTensor([1]),
    options: { transA: true, activation: "relu", beta: 0.25 },
  };
  const variants = ["scalar-8x8", "vec4-4x4", "shared-64", "shared-128", "shared-f16-64"];
  for (const variant of [...variants, "texture-8x8"]) {
    for (const c of [batched, folded, rowBias, transA]) await check(gpu, c, variant);
  }
});

Deno.test("matmul: shared tiles at sizes off the tile, in every staging mode", async () => {
  const gpu = await getGpu();
  const cases: Case[] = [
    // One value at a time: a batch-1 product with odd K and N, odd transposes, K = 1.
    plain(1, 257, 129),
    plain(33, 19, 65, true, true),
    plain(130, 1, 3),
    // vec4 along k for A; along n (B row-major) or along k (B stored [N, K]) for B.
    plain(7, 64, 132),
    plain(34, 128, 68, false, true),
    // vec4 along m for a transposed A, several slices of k.
    plain(132, 36, 68, true, false),
    // Float16 output: rounded in the epilogue.
    { a: randomTensor([9, 40], "float16"), b: randomTensor([40, 65], "float16") },
  ];
  for (const variant of SHARED_VARIANTS) {
    for (const c of cases) await check(gpu, c, variant);
  }
});

Deno.test("matmul: shared tiles read operands from buffers that are not whole vec4", async () => {
  const gpu = await getGpu();
  // 3x5 @ 5x7 in 60- and 140-byte buffers (one value at a time, up to the last); 5x8 @ 8x12 in
  // buffers 4 bytes longer than the data (read as vec4: the rows are, the binding is not).
  const cases: [Case, number][] = [[plain(3, 5, 7), 0], [plain(5, 8, 12), 4]];
  for (const variant of SHARED_VARIANTS) {
    for (const [c, extra] of cases) {
      const expected = matmulRef(roundedFor(variant, c.a), roundedFor(variant, c.b));
      const buffers: GPUBuffer[] = [];
      const exact = (t: CpuTensor) => {
        const data = new Float32Array(t.data);
        const buffer = gpu.device.createBuffer({
          size: data.byteLength + extra,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
        });
        gpu.device.queue.writeBuffer(buffer, 0, data);
        buffers.push(buffer);
        return { buffer, shape: t.shape, dtype: t.dtype };
      };
      try {
        const [got] = await runKernel(gpu, [], [{ shape: expected.shape, dtype: "float32" }], (
          scope,
          _,
          [out],
        ) => prepareMatmul(gpu, scope, exact(c.a), exact(c.b), out, { variant }));
        assertTensorClose(got, expected, {
          rtol: 1e-5,
          atol: 1e-6,
          label: `${variant}: ${c.a.shape} @ ${c.b.shape}, ${extra} bytes past the data`,
        });
      } finally {
        for (const buffer of buffers) buffer.destroy();
      }
    }
  }
});

Deno.test("matmul: half-precision tiles read host constants from a float16 copy", async () => {
  const gpu = await getGpu();
  const cases: [Case, "a" | "b" | "ab"][] = [
    // A pointwise convolution's weight (odd K: halves one at a time), shared by the batch.
    [{ a: randomTensor([13, 7]), b: randomTensor([3, 7, 29]), bias: randomTensor([13, 1]) }, "a"],
    // A Linear layer's weight stored [N, K] (vec4 of halves along k), batch folded into M.
    [{ a: randomTensor([2, 9, 32]), b: randomTensor([20, 32]), options: { transB: true } }, "b"],
    // A batch-1 product with K off the tile (vec4 of halves along n).
    [
      { a: randomTensor([1, 257]), b: randomTensor([257, 68]), options: { activation: "gelu" } },
      "b",
    ],
    // Constants that differ per batch entry, transposed A, activation.
    [{
      a: randomTensor([2, 12, 5]),
      b: randomTensor([2, 12, 8]),
      options: { transA: true, activation: "relu" },
    }, "ab"],
  ];
  for (const variant of SHARED_VARIANTS.filter((v) => MATMUL_VARIANTS[v].needsShaderF16)) {
    for (const [c, which] of cases) {
      // The GPU operands hold zeros: a right answer shows the host constants were read.
      const constants = {
        a: which.includes("a") ? c.a : undefined,
        b: which.includes("b") ? c.b : undefined,
      };
      const zeros = (t: CpuTensor) => cpuTensor("float32", t.shape);
      const a = constants.a ? zeros(c.a) : c.a;
      const b = constants.b ? zeros(c.b) : c.b;
      const expected = matmulRef(roundedFor(variant, c.a), roundedFor(variant, c.b), {
        ...c.options,
        bias: c.bias,
      });
      const [got] = await runKernel(
        gpu,
        c.bias ? [a, b, c.bias] : [a, b],
        [{ shape: expected.shape, dtype: "float32" }],
        (scope, [ta, tb, tbias], [out]) => {
          const dispatches = prepareMatmul(gpu, scope, ta, tb, out, {
            ...c.options,
            bias: tbias,
            variant,
            constants,
          });
          assertEquals(dispatches.length, 1, `${variant} ${which}: one dispatch`);
          return dispatches;
        },
      );
      assertTensorClose(got, expected, {
        rtol: 1e-4,
        atol: 1e-5,
        label: `${variant}: constant ${which}, A ${c.a.shape} B ${c.b.shape}`,
      });
    }
  }
});

Deno.test("matmul: a variant the device cannot run is refused by name", async () => {
  const gpu = await getGpu();
  // The same device, seen without shader-f16.
  const noF16 = Object.create(gpu, { hasF16: { value: false } }) as typeof gpu;
  const scope = new ResourceScope();
  const a = allocTensor(gpu, [8, 8], "float32");
  const out = allocTensor(gpu, [8, 8], "float32");
  try {
    throws(
      () => prepareMatmul(noF16, scope, a, a, out, { variant: "shared-f16-64", label: "fc" }),
      (e: Error) =>
        e instanceof EngineError &&
        /^fc: matmul variant 'shared-f16-64' needs the shader-f16 feature/.test(e.message),
    );
    // Without a request, half-precision operands allowed: a variant that can run.
    const plan = planMatmul(noF16, a, a, out, { precision: "f16" });
    assertEquals(plan.variant.needsShaderF16 ?? false, false);
  } finally {
    for (const t of [a, out]) releaseTensor(gpu, t);
    scope.dispose();
  }
});

Deno.test("matmul: texture products with N % 4 == 0 store vec4 rows, with every bias form", async () => {
  const gpu = await getGpu();
  // N = 12 and 20: whole vec4 rows, blocks (8 or 16 columns) that run past N; M = 13 and 21:
  // blocks that run past M. The same shapes with N = 13 take the one-output-at-a-time store.
  const cases: Case[] = [];
  for (const n of [12, 20, 13]) {
    cases.push(
      { a: randomTensor([13, 9]), b: randomTensor([9, n]) },
      // A Linear layer's bias (one per column), GELU.
      {
        a: randomTensor([2, 21, 9]),
        b: randomTensor([9, n]),
        bias: randomTensor([n]),
        options: { activation: "gelu" },
      },
      // A convolution's bias (one per output row), ReLU, alpha and beta.
      {
        a: randomTensor([21, 9]),
        b: randomTensor([2, 9, n]),
        bias: randomTensor([21, 1]),
        options: { activation: "relu", alpha: 0.5, beta: 2 },
      },
      // A full bias that differs per batch entry, QuickGELU.
      {
        a: randomTensor([2, 13, 9]),
        b: randomTensor([2, 9, n]),
        bias: randomTensor([2, 13, n]),
        options: { activation: "quick_gelu" },
      },
      // Float16 output: rounded in the same epilogue.
      { a: randomTensor([13, 9], "float16"), b: randomTensor([9, n], "float16") },
    );
  }
  for (const variant of ["texture-8x8", "texture-16x16", "texture-f16-16x16"]) {
    for (const c of cases) await check(gpu, c, variant);
  }
});

Deno.test("matmul: default choice at larger odd sizes, long K, float16 output", async () => {
  const gpu = await getGpu();
  await check(gpu, plain(257, 9, 31));
  await check(gpu, plain(130, 1000, 7, false, true));
  await check(gpu, plain(100, 64, 100, false, true));
  await check(gpu, plain(128, 64, 128));
  const half: Case = { a: randomTensor([9, 40], "float16"), b: randomTensor([40, 11], "float16") };
  await check(gpu, half);
  await check(gpu, half, "texture-8x8");
  // float16 operands (or precision "f16") may use half-precision texture operands.
  const halfOperands = {
    a: randomTensor([100, 40], "float16"),
    b: randomTensor([40, 97], "float16"),
  };
  await check(gpu, halfOperands);
  await check(gpu, plain(97, 33, 101, false, true), undefined, { precision: "f16" });
  if (gpu.summary.isLlvmpipe) {
    const a = allocTensor(gpu, [97, 33], "float32");
    const b = allocTensor(gpu, [101, 33], "float32");
    const out = allocTensor(gpu, [97, 101], "float32");
    const plan = (o: PrepareMatmulOptions) => planMatmul(gpu, a, b, out, o).variant.name;
    assertEquals(plan({ transB: true, precision: "f16" }), "texture-f16-16x16");
    assertEquals(plan({ transB: true }), "texture-16x16");
    for (const t of [a, b, out]) releaseTensor(gpu, t);
  }
  const v = chooseMatmulVariant(gpu, { m: 1024, n: 1024, k: 1024, batch: 1 });
  if (!MATMUL_VARIANTS[v.name]) throw new Error(`chosen variant ${v.name} is not listed`);
});

Deno.test("matmul: float16 outputs overflow to ±inf and round ties to even, bit for bit", async () => {
  const gpu = await getGpu();
  // An outer product of half values (column 1 of A, row 1 of B; the rest zeros): each output is
  // one product, exact in f32, so every variant's epilogue gets the same f32 and must round it
  // as roundToF16 does. Products past 65504 (300 * 300, 48 * 1365 = 65520, the tie at the top)
  // are ±inf; 3 * 683 = 2049 and 7 * 293 = 2051 are ties (2048, 2052); 2^-12 * 2^-13 and
  // 3 * 2^-12 * 2^-13 are subnormal ties (0, 2^-23).
  const a = [300, -300, 3, 7, 48, 2 ** -12, 3 * 2 ** -12, -1];
  const b = [300, 683, 293, 1365, 2 ** -13, 65504, 1, -0.5];
  const k = 3, m = a.length;
  const spot = (n: number, i: number, j: number) => i * n + j;
  for (const n of [8, 7]) {
    const ta = cpuTensor(
      "float16",
      [m, k],
      Array.from({ length: m * k }, (_, i) => i % k === 1 ? a[Math.floor(i / k)] : 0),
    );
    const tb = cpuTensor(
      "float16",
      [k, n],
      Array.from({ length: k * n }, (_, i) => Math.floor(i / n) === 1 ? b[i % n] : 0),
    );
    const expected = matmulRef(ta, tb);
    const want = Float32Array.from(expected.data as ArrayLike<number>);
    assertEquals(
      [[0, 0], [1, 0], [2, 1], [3, 2], [4, 3], [5, 4], [6, 4], [7, 5]].map(([i, j]) =>
        want[spot(n, i, j)]
      ),
      [Infinity, -Infinity, 2048, 2052, Infinity, 0, 2 ** -23, -65504],
    );
    assertEquals(
      Array.from(want),
      Array.from(want, (_, i) => roundToF16(a[Math.floor(i / n)] * b[i % n])),
    );
    // One variant per matmul shader (the epilogue is shared by a shader's variants).
    for (const variant of ["scalar-8x8", "vec4-4x4", "shared-64", "texture-8x8"]) {
      const [got] = await runKernel(
        gpu,
        [ta, tb],
        [expected],
        (scope, [x, y], [out]) => prepareMatmul(gpu, scope, x, y, out, { variant }),
      );
      const bits = new Uint32Array(Float32Array.from(got.data as ArrayLike<number>).buffer);
      const index = bits.findIndex((w, i) => w !== new Uint32Array(want.buffer)[i]);
      if (index >= 0) {
        throw new Error(
          `${variant} N=${n}: output ${index} is ${got.data[index]}, expected ${want[index]}`,
        );
      }
    }
  }
});

Deno.test("matmul: texture variants pack host constants once (odd, batched, broadcast, f16)", async () => {
  const gpu = await getGpu();
  // A weight shared by every batch entry (a pointwise convolution: W [M, C] @ X [N, C, P]).
  const pointwise = {
    a: randomTensor([13, 7]),
    b: randomTensor([3, 7, 29]),
    bias: randomTensor([13, 1]),
  };
  const cases: [Case, "" | "a" | "b" | "ab"][] = [
    [pointwise, "a"],
    [pointwise, ""], // packed on every run, still into one shared layer
    // A Linear layer's weight read transposed, batched activations folded into M.
    [{ a: randomTensor([2, 9, 33]), b: randomTensor([21, 33]), options: { transB: true } }, "b"],
    // Constants that differ per batch entry, transposed A, activation.
    [{
      a: randomTensor([2, 11, 5]),
      b: randomTensor([2, 11, 6]),
      options: { transA: true, activation: "relu" },
    }, "ab"],
  ];
  for (const variant of ["texture-8x8", "texture-16x16", "texture-f16-16x16"]) {
    for (const [c, which] of cases) {
      // The GPU operands hold zeros: a right answer shows the host constants were packed, once.
      const zeros = (t: CpuTensor) => cpuTensor("float32", t.shape);
      const constants = {
        a: which.includes("a") ? c.a : undefined,
        b: which.includes("b") ? c.b : undefined,
      };
      const gpuCase = {
        ...c,
        a: constants.a ? zeros(c.a) : c.a,
        b: constants.b ? zeros(c.b) : c.b,
      };
      const halves = MATMUL_VARIANTS[variant].halves;
      const r = (t: CpuTensor) =>
        halves ? cpuTensor("float32", t.shape, Array.from(t.data as Float32Array, roundToF16)) : t;
      const expected = matmulRef(r(c.a), r(c.b), { ...c.options, bias: c.bias });
      const [got] = await runKernel(
        gpu,
        c.bias ? [gpuCase.a, gpuCase.b, c.bias] : [gpuCase.a, gpuCase.b],
        [{ shape: expected.shape, dtype: "float32" }],
        (scope, [ta, tb, tbias], [out]) => {
          const dispatches = prepareMatmul(gpu, scope, ta, tb, out, {
            ...c.options,
            bias: tbias,
            variant,
            constants,
          });
          assertEquals(dispatches.length, 3 - which.length, `${variant} ${which}: pack dispatches`);
          return dispatches;
        },
      );
      assertClose(got.data, expected.data, {
        rtol: 1e-4,
        atol: 1e-5,
        label: `${variant}: constant ${which}, A ${c.a.shape} B ${c.b.shape}`,
      });
    }
  }
  // Other families (and float32 shared tiles) read the GPU tensors and ignore the host copies.
  for (const variant of ["vec4-4x4", "shared-64"]) {
    await check(gpu, plain(9, 10, 11), variant, { constants: { b: randomTensor([10, 11]) } });
  }
});

Deno.test("matmul: texture matmuls of one size share scratch textures safely", async () => {
  const gpu = await getGpu();
  // Square: A's and B's textures have the same size (they must still be distinct).
  const cases = [plain(128, 128, 128), plain(128, 128, 128)];
  const got = await runKernel(
    gpu,
    cases.flatMap((c) => [c.a, c.b]),
    cases.map(() => [128, 128]),
    (scope, ins, outs) => {
      const dispatches = outs.flatMap((out, i) =>
        prepareMatmul(gpu, scope, ins[2 * i], ins[2 * i + 1], out, { variant: "texture-16x16" })
      );
      return [...dispatches, ...dispatches];
    },
  );
  for (let i = 0; i < cases.length; i++) {
    assertClose(got[i].data, matmulRef(cases[i].a, cases[i].b).data, {
      rtol: 1e-4,
      atol: 1e-4,
      label: `shared scratch, matmul ${i}`,
    });
  }
});

Deno.test("matmul: shape errors name the operation; empty outputs prepare nothing", async () => {
  const gpu = await getGpu();
  const scope = new ResourceScope();
  const a = allocTensor(gpu, [3, 4], "float32");
  const b = allocTensor(gpu, [5, 6], "float32");
  const out = allocTensor(gpu, [3, 6], "float32");
  throws(() => prepareMatmul(gpu, scope, a, b, out, { label: "layer7" }), /layer7: .*inner/);
  const b2 = allocTensor(gpu, [4, 6], "float32");
  const wrong = allocTensor(gpu, [3, 5], "float32");
  throws(() => prepareMatmul(gpu, scope, a, b2, wrong, { label: "fc" }), /fc: output is \[3,5\]/);
  const empty = allocTensor(gpu, [0, 6], "float32");
  const a0 = allocTensor(gpu, [0, 4], "float32");
  assertEquals(prepareMatmul(gpu, scope, a0, b2, empty).length, 0);
  for (const t of [a, b, out, b2, wrong, empty, a0]) releaseTensor(gpu, t);
  scope.dispose();
});

// ---- ONNX operators ----

/** The GPU path of an op against its CPU path. */
const OP_TOL = { rtol: 1e-5, atol: 1e-5 };

Deno.test("onnx MatMul: numpy semantics for 1-D operands and broadcast batches", async () => {
  const mm = opNode("MatMul");
  const shapes: [number[], number[], number[]][] = [
    [[5], [5], []],
    [[5], [2, 5, 3], [2, 3]],
    [[2, 3, 4, 5], [5], [2, 3, 4]],
    [[3, 1, 4, 5], [2, 5, 6], [3, 2, 4, 6]],
    [[7, 13], [13, 5], [7, 5]],
  ];
  for (const [a, b, out] of shapes) {
    const [r] = (await runNode("MatMul", [randomTensor(a), randomTensor(b)], {
      opset: 13,
      tol: OP_TOL,
    })).cpu;
    assertEquals(r.shape, out);
  }
  throws(() =>
    matmulOps.MatMul.infer({ node: mm, opset: 13 }, [
      { dtype: "float32", shape: [2, 3] },
      { dtype: "float32", shape: [4, 5] },
    ]), /matmul_node.*inner dimensions/);
});

Deno.test("onnx Gemm: transposes, alpha/beta, C broadcast, opset rules", async () => {
  const gemmNode = (inputs: CpuTensor[], attrs: Record<string, BuilderAttr> = {}, opset = 13) =>
    runNode("Gemm", inputs, { attrs, opset, tol: OP_TOL });
  const all = { transA: 1, transB: 1, alpha: 0.25, beta: 0.35 };
  await gemmNode([randomTensor([3, 4]), randomTensor([5, 3]), randomTensor([1, 5])], all);
  for (const c of [[], [1], [5], [4, 1], [4, 5]]) {
    await gemmNode([randomTensor([4, 3]), randomTensor([3, 5]), randomTensor(c)]);
  }
  await gemmNode([randomTensor([2, 7]), randomTensor([6, 7])], { transB: 1 });
  await gemmNode([randomTensor([2, 7]), randomTensor([7, 3]), randomTensor([3])], {
    broadcast: 1,
  }, 6);
  const gemm = opNode("Gemm");
  throws(
    () =>
      matmulOps.Gemm.infer({ node: gemm, opset: 13 }, [
        { dtype: "float32", shape: [4, 3] },
        { dtype: "float32", shape: [3, 5] },
        { dtype: "float32", shape: [3, 5] },
      ]),
    /gemm_node.*cannot broadcast/,
  );
  throws(
    () =>
      matmulOps.Gemm.infer({ node: gemm, opset: 9 }, [
        { dtype: "float32", shape: [4, 3] },
        { dtype: "float32", shape: [3, 5] },
        undefined,
      ]),
    /input C is required/,
  );
  await rejects(async () => {
    const i32 = cpuTensor("int32", [2, 2], [1, 2, 3, 4]);
    await runNode("MatMul", [i32, i32], { opset: 13, tol: OP_TOL });
  }, /'MatMul_0' \(MatMul\): input A dtype int32 is not supported/);
});
