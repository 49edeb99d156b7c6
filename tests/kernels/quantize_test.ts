/** Quantization kernels (src/kernels/quantize.ts) against their CPU references at odd sizes:
 * quantize / dequantize per tensor, per axis and blocked, requantization, dynamic range, and the
 * int8/uint8 cast kernel. Quantized outputs must match exactly (round half to even, saturation). */
import { deepStrictEqual, throws } from "node:assert/strict";
import { getGpu } from "../../src/gpu/mod.ts";
import {
  type CpuTensor,
  cpuTensor,
  type DType,
  roundToF16,
  sizeOf,
} from "../../src/util/tensor.ts";
import { prepareBinary, prepareCast, prepareUnary } from "../../src/kernels/elementwise.ts";
import type { BinaryOp, UnaryOp } from "../../src/kernels/elementwise_shape.ts";
import { binaryRef, castRef, roundHalfEven, unaryRef } from "../../src/kernels/elementwise_ref.ts";
import {
  exactReduction,
  prepareCentre,
  prepareDequantize,
  prepareDynamicQuantize,
  prepareQuantize,
  prepareRequantize,
} from "../../src/kernels/quantize.ts";
import {
  centreRef,
  dequantizeRef,
  dynamicQuantizeRef,
  quantizeRef,
  requantizeRef,
} from "../../src/kernels/quantize_ref.ts";
import { type QuantAxis, quantLayout, type RequantAxis } from "../../src/kernels/quantize_shape.ts";
import { rng } from "../helpers.ts";
import { checkKernel, randomInt8s, randomInts, runKernel } from "./harness.ts";

const RANGE: Record<string, [number, number]> = { int8: [-128, 128], uint8: [0, 256] };

/** Scales that are powers of two (so many quotients are exact .5 ties) or arbitrary. */
function randomScales(dtype: DType, shape: readonly number[], seed: number): CpuTensor {
  const r = rng(seed);
  const n = sizeOf(shape);
  const v = Array.from(
    { length: n },
    () => (r() < 0.5 ? 2 ** Math.floor(r() * 6 - 3) : 0.01 + r()),
  );
  return cpuTensor(dtype, shape, v);
}

/** Inputs mixing exact ties (k + 0.5) * scale, ordinary values and values far outside the range. */
function quantInput(dtype: DType, n: number, scaleOf: (i: number) => number, seed: number) {
  const r = rng(seed);
  const v = Array.from({ length: n }, (_, i) => {
    const p = r();
    if (p < 0.4) return (Math.floor(r() * 400) - 200 + 0.5) * scaleOf(i); // ties (when exact)
    if (p < 0.5) return (r() - 0.5) * 1e6; // saturates
    return (r() - 0.5) * 300 * scaleOf(i);
  });
  return cpuTensor(dtype, [n], v);
}

/** Shapes and granularities: per tensor, per axis, blocked (with a remainder block). */
const LAYOUTS: { shape: number[]; scale: number[]; q: QuantAxis }[] = [
  { shape: [3, 5, 7], scale: [], q: {} },
  { shape: [3, 5, 7], scale: [1], q: {} },
  { shape: [3, 5, 7], scale: [5], q: { axis: 1 } },
  { shape: [3, 5, 7], scale: [7], q: { axis: -1 } },
  { shape: [13, 3], scale: [13], q: { axis: 0 } },
  { shape: [3, 7, 5], scale: [3, 3, 5], q: { axis: 1, blockSize: 3 } },
  { shape: [5, 11], scale: [5, 2], q: { axis: 1, blockSize: 8 } },
  { shape: [9, 4], scale: [3, 4], q: { axis: 0, blockSize: 4 } },
];

Deno.test("roundHalfEven: ties go to the even neighbour, as numpy rint and WGSL round", () => {
  deepStrictEqual(
    [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, -3.5000001].map(roundHalfEven),
    [0, 2, 2, -0, -2, -2, 2, -4],
  );
});

Deno.test("quantLayout: per tensor, per axis, blocked, and errors naming the shapes", () => {
  deepStrictEqual(quantLayout([2, 3], []).kind, "tensor");
  deepStrictEqual(quantLayout([2, 3], [1]).kind, "tensor");
  const axis = quantLayout([2, 3, 4], [3]);
  deepStrictEqual([axis.kind, axis.inner, axis.axisLen], ["axis", 4, 3]);
  const blocked = quantLayout([2, 5], [2, 3], { axis: 1, blockSize: 2 });
  deepStrictEqual([blocked.kind, blocked.outerStride, blocked.axisStride], ["blocked", 3, 1]);
  throws(() => quantLayout([2, 3], [2]), /neither per-tensor nor per-axis.*\[2,3\]/);
  throws(() => quantLayout([2, 5], [2, 2], { axis: 1, blockSize: 2 }), /expected \[2,3\]/);
  throws(() => quantLayout([2, 3], [3], { axis: 2 }), /axis 2 is out of range/);
  deepStrictEqual([exactReduction(258), exactReduction(259), exactReduction(4096, 127, 8)], [
    true,
    false,
    true,
  ]);
});

Deno.test("quantize: GPU matches the reference exactly (ties to even, saturation, NaN)", async () => {
  const gpu = await getGpu();
  let seed = 1;
  for (const { shape, scale, q } of LAYOUTS) {
    for (const dtype of ["int8", "uint8"] as const) {
      for (const floatType of ["float32", "float16"] as const) {
        const s = randomScales(floatType, scale, seed++);
        const layoutOf = quantLayout(shape, scale, q);
        const sv = s.data as Float32Array;
        const n = sizeOf(shape);
        const flat = quantInput(floatType, n, (i) => {
          const j = i % layoutOf.inner, t = Math.floor(i / layoutOf.inner);
          const a = t % layoutOf.axisLen, outer = Math.floor(t / layoutOf.axisLen);
          return sv[
            outer * layoutOf.outerStride + Math.floor(a / layoutOf.block) * layoutOf.axisStride +
            j * layoutOf.innerStride
          ];
        }, seed++);
        const xv = Float32Array.from(flat.data as Float32Array);
        if (n > 3) xv[3] = NaN;
        const x = cpuTensor(floatType, shape, xv);
        const zero = seed % 3 === 0 ? undefined : randomInt8s(dtype, scale, seed++);
        const expected = quantizeRef(x, s, zero, dtype, q);
        const inputs = zero ? [x, s, zero] : [x, s];
        const label = `quantize ${floatType}->${dtype} ${JSON.stringify({ shape, scale, q })}`;
        await checkKernel(
          gpu,
          inputs,
          [expected],
          (scope, [gx, gs, gz], [out]) => prepareQuantize(gpu, scope, gx, gs, gz, out, q),
          label,
        );
        const values = Array.from(expected.data);
        const [lo, hi] = RANGE[dtype];
        if (!values.includes(lo) || !values.includes(hi - 1)) {
          throw new Error(`${label}: the data should saturate at both ends`);
        }
      }
    }
  }
});

Deno.test("quantize: exact .5 quotients round to even before the zero point is added", async () => {
  const gpu = await getGpu();
  const x = cpuTensor("float32", [7], [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5]);
  const s = cpuTensor("float32", [], [1]);
  const zero = cpuTensor("int8", [], [1]);
  const expected = [1, 3, 3, 1, -1, -1, 5];
  deepStrictEqual(Array.from(quantizeRef(x, s, zero, "int8").data), expected);
  const [got] = await runKernel(
    gpu,
    [x, s, zero],
    [{ shape: [7], dtype: "int8" }],
    (scope, [gx, gs, gz], [out]) => prepareQuantize(gpu, scope, gx, gs, gz, out),
  );
  deepStrictEqual(Array.from(got.data), expected);
});

Deno.test("dequantize: GPU matches the reference (int8, uint8, int32 to float32/float16)", async () => {
  const gpu = await getGpu();
  let seed = 100;
  for (const { shape, scale, q } of LAYOUTS) {
    for (const dtype of ["int8", "uint8", "int32"] as const) {
      for (const outType of ["float32", "float16"] as const) {
        const x = dtype === "int32"
          ? cpuTensor(dtype, shape, randomInts(sizeOf(shape), seed++, -100000, 100000))
          : randomInt8s(dtype, shape, seed++);
        const s = randomScales(outType, scale, seed++);
        const zero = dtype === "int32" || seed % 3 === 0
          ? undefined
          : randomInt8s(dtype, scale, seed++);
        const expected = dequantizeRef(x, s, zero, outType, q);
        await checkKernel(
          gpu,
          zero ? [x, s, zero] : [x, s],
          [expected],
          (scope, [gx, gs, gz], [out]) => prepareDequantize(gpu, scope, gx, gs, gz, out, q),
          `dequantize ${dtype}->${outType} ${shape}/${scale}`,
        );
      }
    }
  }
});

Deno.test("centre: x - zero point as float32 integers, per tensor and per channel", async () => {
  const gpu = await getGpu();
  const x = randomInt8s("uint8", [5, 3, 7], 7);
  for (const zero of [undefined, randomInt8s("uint8", [], 8), randomInt8s("uint8", [5], 9)]) {
    const expected = centreRef(x, zero, 0);
    await checkKernel(
      gpu,
      zero ? [x, zero] : [x],
      [expected],
      (scope, [gx, gz], [out]) => prepareCentre(gpu, scope, gx, gz, out, 0),
      `centre zero ${zero?.shape}`,
    );
  }
});

Deno.test("requantize: per tensor and per channel, float32 and float16 scales", async () => {
  const gpu = await getGpu();
  let seed = 300;
  const cases: { shape: number[]; per?: RequantAxis }[] = [
    { shape: [7, 9] },
    { shape: [7, 9], per: { channels: 9, inner: 1 } },
    { shape: [2, 5, 3, 3], per: { channels: 5, inner: 9 } },
  ];
  for (const { shape, per } of cases) {
    for (const dtype of ["int8", "uint8"] as const) {
      for (const scaleType of ["float32", "float16"] as const) {
        const acc = cpuTensor("float32", shape, randomInts(sizeOf(shape), seed++, -40000, 40000));
        const r = rng(seed++);
        const single = (v: number) => cpuTensor(scaleType, [], [v]);
        const aScale = single(0.01 + r() * 0.1);
        const bScale = per
          ? cpuTensor(scaleType, [per.channels], Array.from({ length: per.channels }, r))
          : single(r());
        const yScale = single(0.5 + r() * 20);
        const yZero = randomInt8s(dtype, [], seed++);
        const expected = requantizeRef(acc, aScale, bScale, yScale, yZero, dtype, per);
        await checkKernel(
          gpu,
          [acc, aScale, bScale, yScale, yZero],
          [expected],
          (scope, [ga, gs, gb, gy, gz], [out]) =>
            prepareRequantize(gpu, scope, ga, gs, gb, gy, gz, out, per),
          `requantize ${shape} ${scaleType}->${dtype}`,
        );
      }
    }
  }
});

Deno.test("dynamic quantize: range, scale and zero point as the ONNX reference defines", async () => {
  const gpu = await getGpu();
  const cases = [
    cpuTensor("float32", [1001], randomInts(1001, 5, -3000, 7000).map((v) => v / 997)),
    cpuTensor("float32", [3, 5], randomInts(15, 6, 1, 100).map((v) => v / 7)), // all positive
    cpuTensor("float32", [13], randomInts(13, 7, -100, -1).map((v) => v / 3)), // all negative
    cpuTensor("float32", [4], [0, 0, 0, 0]), // scale 1
  ];
  for (const x of cases) {
    const expected = dynamicQuantizeRef(x);
    const [y, scale, zero] = await runKernel(
      gpu,
      [x],
      [{ shape: x.shape, dtype: "uint8" }, { shape: [], dtype: "float32" }, {
        shape: [],
        dtype: "uint8",
      }],
      (scope, [gx], [gy, gs, gz]) => prepareDynamicQuantize(gpu, scope, gx, gy, gs, gz),
    );
    const label = `dynamic quantize ${x.shape}`;
    deepStrictEqual(Array.from(scale.data), Array.from(expected[1].data), `${label}: scale`);
    deepStrictEqual(Array.from(zero.data), Array.from(expected[2].data), `${label}: zero point`);
    deepStrictEqual(Array.from(y.data), Array.from(expected[0].data), `${label}: y`);
  }
});

Deno.test("cast: to and from int8/uint8 wraps like numpy's astype, GPU matches the reference", async () => {
  const gpu = await getGpu();
  const floats = [0, 1.9, -1.9, 127.5, 128, -129, 255.7, 256, 300, -300, 1e10, -1e10, NaN, 0.25];
  const sources: CpuTensor[] = [
    cpuTensor("float32", [floats.length], floats),
    cpuTensor("float16", [floats.length], floats.map((v) => roundToF16(v))),
    cpuTensor("int32", [11], [0, 1, -1, 127, 128, -128, -129, 255, 256, 70000, -70000]),
    cpuTensor("int64", [5], [0, 200, -200, 65535, -2147483648]),
    cpuTensor("bool", [3], [1, 0, 1]),
    randomInt8s("int8", [37], 1),
    randomInt8s("uint8", [37], 2),
  ];
  const targets: DType[] = ["int8", "uint8", "float32", "float16", "int32", "int64", "bool"];
  for (const x of sources) {
    for (const to of targets) {
      if (!["int8", "uint8"].includes(to) && !["int8", "uint8"].includes(x.dtype)) continue;
      const expected = castRef(x, to);
      await checkKernel(
        gpu,
        [x],
        [expected],
        (scope, [gx], [out]) => prepareCast(gpu, scope, gx, out),
        `cast ${x.dtype} -> ${to}`,
      );
    }
  }
  // The wrap itself, spelled out.
  const wrapped = castRef(cpuTensor("int32", [4], [200, -200, 256, 383]), "int8");
  deepStrictEqual(Array.from(wrapped.data), [-56, 56, 0, 127]);
  const truncated = castRef(cpuTensor("float32", [4], [255.9, -0.9, 256.5, -1.5]), "uint8");
  deepStrictEqual(Array.from(truncated.data), [255, 0, 0, 255]);
});

Deno.test("int8/uint8 elementwise ops wrap modulo 2^8 (numpy), GPU matches the reference", async () => {
  const gpu = await getGpu();
  const binaries: BinaryOp[] = ["add", "sub", "mul", "div", "max", "min", "mod", "bitwiseXor"];
  const unaries: UnaryOp[] = ["neg", "abs", "relu", "sign", "bitwiseNot", "square"];
  let seed = 500;
  for (const dtype of ["int8", "uint8"] as const) {
    // Broadcast [5, 1, 7] against [3, 7]; no zero divisors (WGSL and numpy differ there).
    const a = randomInt8s(dtype, [5, 1, 7], seed++);
    const b0 = randomInt8s(dtype, [3, 7], seed++);
    const b = cpuTensor(dtype, b0.shape, Array.from(b0.data, (v) => (v === 0 ? 1 : v)));
    for (const op of binaries) {
      const expected = binaryRef(op, a, b);
      await checkKernel(
        gpu,
        [a, b],
        [expected],
        (scope, [ga, gb], [out]) => prepareBinary(gpu, scope, op, ga, gb, out),
        `${op} ${dtype}`,
      );
    }
    const x = randomInt8s(dtype, [37], seed++);
    for (const op of unaries) {
      if (dtype === "uint8" && (op === "neg" || op === "abs")) continue; // ONNX: signed only
      const expected = unaryRef(op, x);
      await checkKernel(
        gpu,
        [x],
        [expected],
        (scope, [gx], [out]) => prepareUnary(gpu, scope, op, gx, out),
        `${op} ${dtype}`,
      );
    }
  }
});
