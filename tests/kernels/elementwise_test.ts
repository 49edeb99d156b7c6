import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  allocTensor,
  type Dispatch,
  getGpu,
  type GpuTensor,
  releaseTensor,
  ResourceScope,
} from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor, type DType, roundToF16 } from "../../src/util/tensor.ts";
import {
  prepareBinary,
  prepareCast,
  prepareClamp,
  prepareUnary,
  prepareVariadic,
  prepareWhere,
} from "../../src/kernels/elementwise.ts";
import {
  BINARY_OPS,
  type BinaryOp,
  binaryOutputDType,
  UNARY_OPS,
  type UnaryOp,
  unaryOutputDType,
  type UnaryParams,
  type VariadicOp,
} from "../../src/kernels/elementwise_shape.ts";
import {
  binaryRef,
  castRef,
  clampRef,
  unaryRef,
  variadicRef,
  whereRef,
} from "../../src/kernels/elementwise_ref.ts";
import { erf as erfRef } from "../../src/util/math.ts";
import { planBroadcast } from "../../src/kernels/broadcast.ts";
import { broadcastShapes } from "../../src/kernels/shape.ts";
import { elementwiseOps } from "../../src/onnx/ops/elementwise.ts";
import { assertClose, randomFloats, rng } from "../helpers.ts";
import { assertHalfValues, assertSameTensor, runKernel } from "./harness.ts";
import { opNode, runNode } from "../onnx/harness.ts";

const gpu = await getGpu();

/** The one output of an elementwise kernel run through the harness (garbage-filled output). */
async function runOnGpu(
  inputs: readonly CpuTensor[],
  outShape: readonly number[],
  outDType: DType,
  prepare: (scope: ResourceScope, ins: GpuTensor[], out: GpuTensor) => Dispatch[],
): Promise<CpuTensor> {
  const [out] = await runKernel(
    gpu,
    inputs,
    [{ shape: outShape, dtype: outDType }],
    (scope, ins, [o]) => prepare(scope, ins, o),
  );
  return out;
}

function tolerance(dtype: DType): { rtol: number; atol: number } {
  // float16 results may differ by one half ulp (~4.9e-4) where rounding f64 vs f32 straddles a tie.
  // float32: f32 evaluation vs the float64 reference (exp(80) alone costs ~4e-6 from rounding
  // the argument), still 100x tighter than ONNX's rtol 1e-3.
  return dtype === "float16" ? { rtol: 1e-3, atol: 1e-6 } : { rtol: 1e-5, atol: 1e-7 };
}

/** Random floats spanning tiny, ordinary and large magnitudes of both signs, where the naive
 * formulas of erf/tanh/softplus/expm1 would lose precision. */
function mixedFloats(n: number, seed: number, lo: number, hi: number): Float32Array {
  const r = rng(seed);
  const out = randomFloats(n, seed + 1, lo, hi);
  for (let i = 0; i < n; i += 3) out[i] = (r() - 0.5) * 10 ** (-6 + 5 * r()); // |x| in 1e-6..0.1
  return out.map((v) => Math.min(hi, Math.max(lo, v)));
}

const UNARY_DOMAIN: Partial<Record<UnaryOp, [number, number]>> = {
  sqrt: [0, 50],
  log: [1e-3, 100],
  reciprocal: [0.05, 20],
  asin: [-0.999, 0.999],
  acos: [-0.999, 0.999],
  atanh: [-0.99, 0.99],
  acosh: [1, 5000],
  exp: [-80, 80],
  cosh: [-80, 80],
  sinh: [-80, 80],
  tan: [-1.5, 1.5],
};

const UNARY_PARAMS: Partial<Record<UnaryOp, UnaryParams>> = {
  leakyRelu: { alpha: 0.1 },
  clip: { alpha: -0.5, beta: 0.75 },
  hardSigmoid: { alpha: 0.3, beta: 0.6 },
  affine: { alpha: 1.5, beta: -0.25 },
  elu: { alpha: 2 },
  celu: { alpha: 1.5 },
  thresholdedRelu: { alpha: 0.2 },
  shrink: { alpha: 0.5, beta: 0.25 },
  swish: { alpha: 1.702 },
};

Deno.test("elementwise: every float unary op matches the reference (float32, float16)", async () => {
  const floatOps = (Object.keys(UNARY_OPS) as UnaryOp[]).filter((op) =>
    op !== "cast" && (UNARY_OPS[op].kinds as readonly string[]).includes("float")
  );
  let seed = 1;
  for (const op of floatOps) {
    for (const dtype of ["float32", "float16"] as const) {
      const [lo, hi] = UNARY_DOMAIN[op] ?? [-12, 12];
      // 260 runs the vec4<u32> pipeline (counts in 4s), 13 the scalar one.
      const n = dtype === "float32" ? 260 : 13;
      const values = mixedFloats(n, seed++, lo, hi);
      if (op === "isNaN" || op === "isInf") values.set([NaN, Infinity, -Infinity], 0);
      if (op === "log" || op === "acosh") values.set([1 + 1e-6, 1 + 3e-5, 1.01, 0.99], 1);
      const x = cpuTensor(dtype, [n], values);
      const params = UNARY_PARAMS[op] ?? {};
      const expected = unaryRef(op, x, params);
      const got = await runOnGpu(
        [x],
        x.shape,
        unaryOutputDType(op, dtype),
        (scope, [xg], out) => prepareUnary(gpu, scope, op, xg, out, params),
      );
      const tol = tolerance(dtype);
      assertEquals(got.dtype, expected.dtype);
      assertClose(got.data, expected.data, { ...tol, label: `${op} ${dtype}` });
      if (dtype === "float16") assertHalfValues(got, `${op} ${dtype}`);
    }
  }
});

Deno.test("elementwise: op codes agree with the shaders' constants", () => {
  const codes = (shader: string, prefix: string) => {
    const src = Deno.readTextFileSync(new URL(`../../shaders/${shader}.wgsl`, import.meta.url));
    const found = new Map<string, number>();
    for (const m of src.matchAll(new RegExp(`const ${prefix}([A-Z0-9_]+): u32 = (\\d+)u;`, "g"))) {
      found.set(m[1].replaceAll("_", ""), Number(m[2]));
    }
    return found;
  };
  const unary = codes("unary", "OP_");
  for (const [name, spec] of Object.entries(UNARY_OPS)) {
    assertEquals(unary.get(name.toUpperCase()), spec.code, `unary ${name}`);
  }
  const binary = codes("binary", "OP_");
  for (const [name, spec] of Object.entries(BINARY_OPS)) {
    assertEquals(binary.get(name.toUpperCase()), spec.code, `binary ${name}`);
  }
  assertEquals(unary.size, Object.keys(UNARY_OPS).length);
  assertEquals(binary.size, Object.keys(BINARY_OPS).length);
});

Deno.test("elementwise: erf reference is accurate", () => {
  // Values from high-precision tables.
  assertClose(
    [0, 1e-8, 0.1, 0.5, 1, 2, 3, 4, -1].map(erfRef),
    [
      0,
      1.1283791670955126e-8,
      0.1124629160182849,
      0.5204998778130465,
      0.8427007929497149,
      0.9953222650189527,
      0.9999779095030014,
      0.9999999845827421,
      -0.8427007929497149,
    ],
    { rtol: 1e-14, atol: 0 },
  );
});

Deno.test("elementwise: integer and bool unary ops match the reference", async () => {
  const r = rng(7);
  for (const dtype of ["int32", "int64"] as const) {
    for (
      const op of [
        "identity",
        "abs",
        "neg",
        "relu",
        "clip",
        "sign",
        "bitwiseNot",
        "square",
      ] as const
    ) {
      for (const n of [1, 13, 16]) {
        const x = cpuTensor(
          dtype,
          [n],
          Array.from({ length: n }, () => Math.floor(r() * 2001) - 1000),
        );
        const params = op === "clip" ? { alpha: -300, beta: 400 } : {};
        const got = await runOnGpu(
          [x],
          x.shape,
          dtype,
          (scope, [xg], out) => prepareUnary(gpu, scope, op, xg, out, params),
        );
        assertSameTensor(got, unaryRef(op, x, params), `${op} ${dtype} [${n}]`);
      }
    }
  }
  const b = cpuTensor("bool", [2, 7], Array.from({ length: 14 }, () => (r() < 0.5 ? 1 : 0)));
  for (const op of ["not", "identity"] as const) {
    const got = await runOnGpu(
      [b],
      b.shape,
      "bool",
      (s, [xg], out) => prepareUnary(gpu, s, op, xg, out),
    );
    assertSameTensor(got, unaryRef(op, b), `${op} bool`);
  }
});

Deno.test("elementwise: cast between every pair of dtypes", async () => {
  const dtypes: DType[] = ["float32", "float16", "int32", "int64", "bool"];
  const floats = [0, -0.5, 0.5, 1.7, -2.9, 3, 1e-3, -7.25, 65519, 65520, 70000, -1e9, 1 + 2 ** -11];
  const ints = [0, 1, -1, 7, -300, 2049, 65535, -2147483648, 2147483647, 16777217, 3, 5, -8];
  for (const from of dtypes) {
    const values = from === "bool"
      ? ints.map((v) => (v & 1))
      : from.startsWith("int")
      ? ints
      : floats;
    for (const to of dtypes) {
      // float16 overflows 65520 and up to inf, whose integer value is undefined (as in numpy).
      const finite = from === "float16" && to.startsWith("int")
        ? values.filter((v) => Math.abs(v) < 65520)
        : values;
      const x = cpuTensor(from, [finite.length], finite);
      const got = await runOnGpu([x], x.shape, to, (s, [xg], out) => prepareCast(gpu, s, xg, out));
      assertSameTensor(got, castRef(x, to), `cast ${from} -> ${to}`);
    }
  }
  // Beyond the i32 range float -> int32 saturates (int64 runs as i32 on the GPU: the same).
  const big = cpuTensor("float32", [2], [3e9, -3e9]);
  const got = await runOnGpu([big], [2], "int32", (s, [xg], out) => prepareCast(gpu, s, xg, out));
  assertSameTensor(got, castRef(big, "int32"), "cast saturates");
  assertEquals(Array.from(got.data), [2147483520, -2147483648]);
});

Deno.test("elementwise: float16 rounding on the GPU is round-to-nearest-even", async () => {
  const edge = [
    1 + 2 ** -11, // tie -> even (1)
    1 + 3 * 2 ** -11, // tie -> even (up)
    65504,
    65519.99,
    65520, // tie past the largest half -> inf
    -65520,
    2 ** -24,
    2 ** -25, // tie with 0 -> 0
    3 * 2 ** -25, // tie -> 2^-23
    2 ** -14 - 2 ** -26,
    1e-7,
    -6.1e-5,
    Infinity,
    -Infinity,
    NaN,
  ];
  const x = cpuTensor("float32", [edge.length], edge);
  const got = await runOnGpu(
    [x],
    x.shape,
    "float16",
    (s, [xg], out) => prepareCast(gpu, s, xg, out),
  );
  assertEquals(Array.from(got.data), edge.map(roundToF16));
});

Deno.test("elementwise: broadcast plans merge dims and pick the cheapest indexing", () => {
  assertEquals(broadcastShapes([2, 1, 4], [3, 1]), [2, 3, 4]);
  assertEquals(broadcastShapes([2, 3], [4]), undefined);
  const bias = planBroadcast([[8, 16, 32], [32]], [8, 16, 32]);
  assertEquals(bias.shape, [128, 32]);
  assertEquals(bias.sources, [{ kind: "identity" }, { kind: "block", inner: 1, extent: 32 }]);
  const channel = planBroadcast([[2, 3, 4, 5], [3, 1, 1]], [2, 3, 4, 5]);
  assertEquals(channel.sources[1], { kind: "block", inner: 20, extent: 3 });
  const outer = planBroadcast([[3, 1, 5], [1, 4, 1]], [3, 4, 5]);
  assertEquals(outer.sources, [
    { kind: "strided", strides: [5, 0, 1] },
    { kind: "block", inner: 5, extent: 4 },
  ]);
  const scalar = planBroadcast([[], [6, 7]], [6, 7]);
  assertEquals(scalar.sources[0], { kind: "block", inner: 1, extent: 1 });
});

/** Shape pairs covering identity, scalar, suffix, channel-block and strided broadcasting. */
const BROADCAST_CASES: [number[], number[]][] = [
  [[7], [7]],
  [[13], []],
  [[], [13]],
  [[1], [1]],
  [[4, 257], [257]],
  [[2, 3, 4, 5], [3, 1, 1]],
  [[3, 1, 5], [1, 4, 1]],
  [[2, 1, 3, 1, 5], [1, 4, 1, 6, 1]],
  [[2, 3, 4, 1, 1, 2, 2, 5, 1, 3], [1, 1, 1, 6, 7, 1, 1, 1, 1, 1]], // 10 dims merge to 3
  [[5, 1], [1, 1, 7]],
  [[37, 61], [37, 1]], // block rows of 61 cross the 8-element runs of the kernel
  [[3, 1, 700], [5, 1]], // strided, several workgroups
];

Deno.test("elementwise: binary add broadcasts like numpy in every indexing mode", async () => {
  let seed = 100;
  for (const [sa, sb] of BROADCAST_CASES) {
    for (const dtype of ["float32", "int32"] as const) {
      const mk = (shape: number[]) => {
        const n = shape.reduce((p, d) => p * d, 1);
        const v = randomFloats(n, seed++, -100, 100);
        return cpuTensor(dtype, shape, dtype === "int32" ? v.map(Math.round) : v);
      };
      const a = mk(sa);
      const b = mk(sb);
      const expected = binaryRef("add", a, b);
      const got = await runOnGpu(
        [a, b],
        expected.shape,
        dtype,
        (s, [ag, bg], out) => prepareBinary(gpu, s, "add", ag, bg, out),
      );
      assertSameTensor(got, expected, `add [${sa}] + [${sb}] ${dtype}`);
    }
  }
});

type BinaryCase = {
  op: BinaryOp;
  dtype: DType;
  bDType?: DType;
  a: [number, number];
  b: [number, number];
};

const BINARY_CASES: BinaryCase[] = [
  ...(["add", "sub", "mul", "div", "max", "min", "prelu"] as const).flatMap((op) =>
    (["float32", "float16", "int32", "int64"] as const).map((dtype) => ({
      op,
      dtype,
      a: [-50, 50] as [number, number],
      b: op === "div" ? [1, 9] as [number, number] : [-50, 50] as [number, number],
    }))
  ),
  { op: "div", dtype: "int32", a: [-50, 50], b: [-9, -1] },
  ...(["mod", "fmod"] as const).flatMap((op) =>
    (["float32", "float16", "int32", "int64"] as const).flatMap((dtype) => [
      { op, dtype, a: [-50, 50] as [number, number], b: [2, 9] as [number, number] },
      { op, dtype, a: [-50, 50] as [number, number], b: [-9, -2] as [number, number] },
    ])
  ),
  ...(["equal", "less", "greater", "lessOrEqual", "greaterOrEqual"] as const).flatMap((op) =>
    (["float32", "int32", "int64"] as const).map((dtype) => ({
      op,
      dtype,
      a: [-3, 3] as [number, number],
      b: [-3, 3] as [number, number],
    }))
  ),
  { op: "equal", dtype: "bool", a: [0, 1], b: [0, 1] },
  { op: "and", dtype: "bool", a: [0, 1], b: [0, 1] },
  { op: "or", dtype: "bool", a: [0, 1], b: [0, 1] },
  { op: "xor", dtype: "bool", a: [0, 1], b: [0, 1] },
  { op: "bitwiseAnd", dtype: "int32", a: [-1000, 1000], b: [-1000, 1000] },
  { op: "bitwiseOr", dtype: "int32", a: [-1000, 1000], b: [-1000, 1000] },
  { op: "bitwiseXor", dtype: "int64", a: [-1000, 1000], b: [-1000, 1000] },
  // Pow in every type combination ONNX allows (the exponent's type may differ from the base's).
  { op: "pow", dtype: "float32", a: [0, 4], b: [-3, 3] },
  { op: "pow", dtype: "float32", a: [-4, 4], b: [-4, 4], bDType: "int32" },
  { op: "pow", dtype: "float16", a: [-3, 3], b: [0, 5], bDType: "int64" },
  { op: "pow", dtype: "int32", a: [-6, 6], b: [0, 9] },
  { op: "pow", dtype: "int64", a: [-6, 6], b: [-2, 9] },
  { op: "pow", dtype: "int32", a: [0, 9], b: [0, 5], bDType: "float32" },
  { op: "pow", dtype: "int64", a: [1, 9], b: [-1.5, 3.5], bDType: "float32" },
];

function randomTensor(dtype: DType, shape: number[], range: [number, number], seed: number) {
  const n = shape.reduce((p, d) => p * d, 1);
  const v = randomFloats(n, seed, range[0], range[1]);
  const isInt = dtype !== "float32" && dtype !== "float16";
  return cpuTensor(
    dtype,
    shape,
    isInt ? v.map((x) => dtype === "bool" ? Math.round(x) : Math.round(x)) : v,
  );
}

Deno.test("elementwise: every binary op and dtype matches the reference", async () => {
  let seed = 500;
  const layouts: [number[], number[]][] = [[[13], [13]], [[3, 1, 5], [4, 1]]];
  for (const [index, c] of BINARY_CASES.entries()) {
    // Layouts alternate between identity and broadcast (strided + block) indexing: the op code
    // and the indexing are independent, and each combination is its own pipeline to compile.
    {
      const [sa, sb] = layouts[index % 2];
      const a = randomTensor(c.dtype, sa, c.a, seed++);
      const b = randomTensor(c.bDType ?? c.dtype, sb, c.b, seed++);
      const expected = binaryRef(c.op, a, b);
      const got = await runOnGpu(
        [a, b],
        expected.shape,
        binaryOutputDType(c.op, c.dtype),
        (s, [ag, bg], out) => prepareBinary(gpu, s, c.op, ag, bg, out),
      );
      const label = `${c.op} ${c.dtype}/${c.bDType ?? c.dtype} [${sa}] [${sb}]`;
      if (c.dtype === "float32" || c.dtype === "float16") {
        assertEquals(got.dtype, expected.dtype);
        const tol = tolerance(c.dtype);
        // Float remainders are exact only where the adapter fuses fma; otherwise they carry the
        // rounding of y * q: an absolute error of about ulp(x) (|x| <= 50 here).
        if (c.op === "mod" || c.op === "fmod") tol.atol = Math.max(tol.atol, 1e-5);
        assertClose(got.data, expected.data, { ...tol, label });
        if (c.dtype === "float16") assertHalfValues(got, label);
      } else assertSameTensor(got, expected, label);
    }
  }
});

Deno.test("elementwise: where and clamp broadcast three inputs", async () => {
  let seed = 900;
  const shapes: [number[], number[], number[]][] = [
    [[13], [13], [13]],
    [[2, 1, 5], [3, 1], []],
    [[1, 4], [3, 1], [2, 1, 1]],
  ];
  for (const [sc, sx, sy] of shapes) {
    for (const dtype of ["float32", "int64", "bool"] as const) {
      const cond = randomTensor("bool", sc, [0, 1], seed++);
      const x = randomTensor(dtype, sx, dtype === "bool" ? [0, 1] : [-9, 9], seed++);
      const y = randomTensor(dtype, sy, dtype === "bool" ? [0, 1] : [-9, 9], seed++);
      const expected = whereRef(cond, x, y);
      const got = await runOnGpu(
        [cond, x, y],
        expected.shape,
        dtype,
        (s, [c, xg, yg], out) => prepareWhere(gpu, s, c, xg, yg, out),
      );
      assertSameTensor(got, expected, `where [${sc}] [${sx}] [${sy}] ${dtype}`);
    }
    for (const dtype of ["float32", "int32"] as const) {
      const x = randomTensor(dtype, sc, [-9, 9], seed++);
      const lo = randomTensor(dtype, sx, [-6, 0], seed++);
      const hi = randomTensor(dtype, sy, [-2, 6], seed++); // sometimes below lo: hi wins
      const expected = clampRef(x, lo, hi);
      const got = await runOnGpu(
        [x, lo, hi],
        expected.shape,
        dtype,
        (s, [xg, l, h], out) => prepareClamp(gpu, s, xg, l, h, out),
      );
      assertSameTensor(got, expected, `clamp [${sc}] [${sx}] [${sy}] ${dtype}`);
    }
  }
});

Deno.test("elementwise: variadic sum/mean/max/min over 1-4 broadcast inputs", async () => {
  let seed = 1300;
  const shapeSets: number[][][] = [
    [[7]],
    [[7], [7]],
    [[2, 1, 5], [3, 1], [5]],
    [[4], [3, 1], [2, 1, 1], []],
  ];
  for (const shapes of shapeSets) {
    for (const op of ["sum", "mean", "max", "min"] as VariadicOp[]) {
      for (const dtype of ["float32", "float16", "int32"] as const) {
        if (op === "mean" && dtype === "int32") continue;
        const inputs = shapes.map((s) => randomTensor(dtype, s, [-20, 20], seed++));
        const expected = variadicRef(op, inputs);
        const got = await runOnGpu(
          inputs,
          expected.shape,
          dtype,
          (s, ins, out) => prepareVariadic(gpu, s, op, ins, out),
        );
        const label = `${op} ${dtype} ${JSON.stringify(shapes)}`;
        assertEquals([...got.shape], [...expected.shape], label);
        assertClose(got.data, expected.data, { ...tolerance(dtype), label });
        if (dtype === "float16") assertHalfValues(got, label);
      }
    }
  }
});

Deno.test("elementwise: invalid uses fail clearly", async () => {
  const scope = new ResourceScope();
  const f = allocTensor(gpu, [4], "float32");
  const i = allocTensor(gpu, [4], "int32");
  const wrong = allocTensor(gpu, [5], "float32");
  throws(() => prepareUnary(gpu, scope, "exp", i, i), /exp does not support int32/);
  throws(() => prepareUnary(gpu, scope, "exp", f, wrong), /does not match input/);
  throws(() => prepareBinary(gpu, scope, "add", f, i, f), /mixed input dtypes/);
  throws(() => prepareBinary(gpu, scope, "add", f, wrong, f), /do not broadcast/);
  throws(() => prepareBinary(gpu, scope, "less", f, f, f), /expected bool/);
  throws(() => prepareWhere(gpu, scope, f, f, f, f), /condition is float32/);
  for (const t of [f, i, wrong]) releaseTensor(gpu, t);
  scope.dispose();
  await Promise.resolve();
});

// ---- ONNX operators (attribute forms and opset differences the conformance suite barely uses) ----

/** The GPU path of an op against its CPU path (f32 evaluation of the same formulas). */
const OP_TOL = { rtol: 1e-6, atol: 0 };

Deno.test("elementwise onnx: legacy broadcast (opset < 7) aligns B at axis", async () => {
  const a = cpuTensor("float32", [2, 3, 4], Array.from({ length: 24 }, (_, i) => i));
  const b = cpuTensor("float32", [3], [100, 200, 300]);
  const out =
    (await runNode("Add", [a, b], { attrs: { broadcast: 1, axis: 1 }, opset: 6, tol: OP_TOL }))
      .cpu[0];
  assertEquals(Array.from(out.data.slice(0, 5)), [100, 101, 102, 103, 204]);
  // Without broadcast=1 shapes must match exactly... but numpy rules apply from opset 7.
  const c = cpuTensor("float32", [4], [1, 2, 3, 4]);
  const trailing =
    (await runNode("Mul", [a, c], { attrs: { broadcast: 1 }, opset: 6, tol: OP_TOL })).cpu[0];
  assertEquals(Array.from(trailing.data.slice(0, 5)), [0, 2, 6, 12, 4]);
  throws(
    () => elementwiseOps.Add.infer({ node: opNode("Add", {}, 2), opset: 13 }, [a, b]),
    /broadcast/,
  );
});

Deno.test("elementwise onnx: Clip bounds as attributes, constants, run-time tensors, ints", async () => {
  const x = cpuTensor("float32", [7], [-3, -1, -0.5, 0, 0.5, 1, 3]);
  const attr =
    (await runNode("Clip", [x], { attrs: { min: -1, max: 0.75 }, opset: 6, tol: OP_TOL })).cpu[0];
  assertEquals(Array.from(attr.data), [-1, -1, -0.5, 0, 0.5, 0.75, 0.75]);
  const lo = cpuTensor("float32", [], [-0.5]);
  const onlyMin = (await runNode("Clip", [x, lo], { opset: 13, tol: OP_TOL })).cpu[0]; // run-time bound: ternary clamp
  assertEquals(Array.from(onlyMin.data), [-0.5, -0.5, -0.5, 0, 0.5, 1, 3]);
  const known =
    (await runNode("Clip", [x, lo], { opset: 13, gpuRuns: { gpu: [1] }, tol: OP_TOL })).cpu[0]; // constant bound: unary clip
  assertEquals(Array.from(known.data), Array.from(onlyMin.data));
  const hi = cpuTensor("float32", [], [0.5]);
  const onlyMax = (await runNode("Clip", [x, undefined, hi], { opset: 13, tol: OP_TOL })).cpu[0];
  assertEquals(Array.from(onlyMax.data), [-3, -1, -0.5, 0, 0.5, 0.5, 0.5]);
  const xi = cpuTensor("int64", [5], [-9, -2, 0, 2, 9]);
  const ints = (await runNode("Clip", [
    xi,
    cpuTensor("int64", [], [-3]),
    cpuTensor("int64", [], [4]),
  ], { opset: 13, tol: OP_TOL })).cpu[0];
  assertEquals(Array.from(ints.data), [-3, -2, 0, 2, 4]);
});

Deno.test("elementwise onnx: Cast forms, Mod fmod, PRelu, Gelu, Where, Mean", async () => {
  const x = cpuTensor("float32", [4], [-2.5, -0.5, 0.5, 2.5]);
  const toInt = (await runNode("Cast", [x], { attrs: { to: 7 }, opset: 13, tol: OP_TOL })).cpu[0];
  assertEquals([toInt.dtype, Array.from(toInt.data)], ["int64", [-2, 0, 0, 2]]);
  const named =
    (await runNode("Cast", [x], { attrs: { to: "FLOAT16" }, opset: 1, tol: OP_TOL })).cpu[0];
  assertEquals(named.dtype, "float16");
  throws(
    () => elementwiseOps.Cast.infer({ node: opNode("Cast", { to: 4 }, 1), opset: 13 }, [x]),
    /cast to uint16 is not supported/,
  );
  const like =
    (await runNode("CastLike", [x, cpuTensor("bool", [1], [1])], { opset: 15, tol: OP_TOL }))
      .cpu[0];
  assertEquals([like.dtype, Array.from(like.data)], ["bool", [1, 1, 1, 1]]);
  const a = cpuTensor("int32", [4], [-7, -7, 7, 7]);
  const b = cpuTensor("int32", [4], [3, -3, 3, -3]);
  assertEquals(Array.from((await runNode("Mod", [a, b], { opset: 13, tol: OP_TOL })).cpu[0].data), [
    2,
    -1,
    1,
    -2,
  ]);
  assertEquals(
    Array.from(
      (await runNode("Mod", [a, b], { attrs: { fmod: 1 }, opset: 13, tol: OP_TOL })).cpu[0].data,
    ),
    [-1, -1, 1, 1],
  );
  const img = cpuTensor("float32", [1, 2, 1, 2], [-1, 1, -1, 1]);
  const slope = cpuTensor("float32", [2], [0.1, 0.2]);
  // Opset 6: a 1-D slope is per channel; opset 7+: numpy broadcasting (per last dim).
  assertEquals(
    Array.from((await runNode("PRelu", [img, slope], { opset: 6, tol: OP_TOL })).cpu[0].data),
    [
      Math.fround(-0.1),
      1,
      Math.fround(-0.2),
      1,
    ],
  );
  assertEquals(
    Array.from((await runNode("PRelu", [img, slope], { opset: 16, tol: OP_TOL })).cpu[0].data),
    [
      Math.fround(-0.1),
      1,
      Math.fround(-0.1),
      1,
    ],
  );
  const g =
    (await runNode("Gelu", [x], { attrs: { approximate: "tanh" }, opset: 20, tol: OP_TOL })).cpu[0];
  assertClose(g.data, [-0.015084, -0.154286, 0.345714, 2.484916], { rtol: 1e-4 });
  const w = (await runNode("Where", [
    cpuTensor("bool", [2, 1], [1, 0]),
    cpuTensor("int64", [2], [1, 2]),
    cpuTensor("int64", [], [9]),
  ], { opset: 16, tol: OP_TOL })).cpu[0];
  assertEquals([[...w.shape], Array.from(w.data)], [[2, 2], [1, 2, 9, 9]]);
  const m =
    (await runNode("Mean", [x, x, cpuTensor("float32", [1], [3])], { opset: 13, tol: OP_TOL }))
      .cpu[0];
  assertClose(m.data, [-2 / 3, 2 / 3, 4 / 3, 8 / 3], { rtol: 1e-6 });
});
