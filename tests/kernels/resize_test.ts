/** Resize: the host reference against a literal port of ONNX's per-point reference algorithm,
 * the GPU kernel against the host reference, and the ONNX operator's attribute handling. */
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { getGpu } from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor, type DType, sizeOf } from "../../src/util/tensor.ts";
import { prepareResize } from "../../src/kernels/resize.ts";
import { resizeRef } from "../../src/kernels/resize_ref.ts";
import {
  type CoordMode,
  type NearestMode,
  type ResizeMode,
  type ResizeOptions,
} from "../../src/kernels/resize_shape.ts";
import { resizeOps } from "../../src/onnx/ops/resize.ts";
import type { AttrValue, OnnxNode } from "../../src/onnx/types.ts";
import { assertClose, randomFloats, rng } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

// ---- oracle: onnx/reference/ops/op_resize.py, point by point, written independently of
// resize_ref.ts (which builds separable tables instead) ----

function oracleCoeffs(ratio: number, scale: number, o: ResizeOptions): number[] {
  const a = o.cubicA ?? -0.75;
  if (o.mode === "nearest") {
    if (Number.isInteger(ratio)) return [0, 1];
    switch (o.nearestMode ?? "round_prefer_floor") {
      case "round_prefer_floor":
        return [ratio <= 0.5 ? 1 : 0, ratio > 0.5 ? 1 : 0];
      case "round_prefer_ceil":
        return [ratio < 0.5 ? 1 : 0, ratio >= 0.5 ? 1 : 0];
      case "floor":
        return [1, 0];
      default:
        return [0, 1];
    }
  }
  if (o.mode === "linear") {
    if (!o.antialias) return [1 - ratio, ratio];
    const s = Math.min(scale, 1);
    const start = Math.floor(Math.fround(-1 / s)) + 1;
    const c = [];
    for (let i = start; i < 2 - start; i++) {
      c.push(Math.min(Math.max(1 - Math.abs((i - ratio) * s), 0), 1));
    }
    const sum = c.reduce((p, q) => p + q, 0);
    return c.map((v) => v / sum);
  }
  if (!o.antialias) {
    return [
      ((a * (ratio + 1) - 5 * a) * (ratio + 1) + 8 * a) * (ratio + 1) - 4 * a,
      ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1,
      ((a + 2) * (1 - ratio) - (a + 3)) * (1 - ratio) * (1 - ratio) + 1,
      ((a * (1 - ratio + 1) - 5 * a) * (1 - ratio + 1) + 8 * a) * (1 - ratio + 1) - 4 * a,
    ];
  }
  const s = Math.min(scale, 1);
  const iStart = Math.floor(Math.fround(-2 / s)) + 1;
  const c = [];
  for (let i = iStart; i < 2 - iStart; i++) {
    const x = Math.abs(s * (i - ratio));
    c.push(
      x <= 1
        ? (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        : x < 2
        ? a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
        : 0,
    );
  }
  const sum = c.reduce((p, q) => p + q, 0);
  return c.map((v) => v / sum);
}

/** _get_neighbor: edge-pad by ceil(n/2), take the n padded positions nearest x (ties: smaller). */
function oracleNeighbors(x: number, n: number, data: number[]): [number[], number[]] {
  const pad = Math.ceil(n / 2);
  const padded = [
    ...Array(pad).fill(data[0]),
    ...data,
    ...Array(pad).fill(data[data.length - 1]),
  ];
  const xp = x + pad;
  const idx = [...padded.keys()]
    .sort((i, j) => Math.abs(xp - i) - Math.abs(xp - j) || i - j)
    .slice(0, n)
    .sort((i, j) => i - j);
  return [idx.map((i) => i - pad), idx.map((i) => padded[i])];
}

interface OracleAxis {
  scale: number;
  outWidth: number;
  outInt: number;
  roi: [number, number];
}

function oracle1d(data: number[], x: number, ax: OracleAxis, o: ResizeOptions): number {
  const inW = data.length;
  const { scale, outWidth } = ax;
  let xOri: number;
  switch (o.coordMode ?? "half_pixel") {
    case "align_corners":
      xOri = outWidth === 1 ? 0 : (x * (inW - 1)) / (outWidth - 1);
      break;
    case "asymmetric":
      xOri = x / scale;
      break;
    case "tf_crop_and_resize": {
      const [r0, r1] = ax.roi;
      const d = Math.fround(r1 - r0);
      xOri = outWidth === 1 ? (d * (inW - 1)) / 2 : (x * d * (inW - 1)) / (outWidth - 1);
      xOri += Math.fround(r0 * (inW - 1));
      if (xOri < 0 || xOri > inW - 1) return o.extrapolationValue ?? 0;
      break;
    }
    case "pytorch_half_pixel":
      xOri = outWidth === 1 ? -0.5 : (x + 0.5) / scale - 0.5;
      break;
    case "half_pixel":
      xOri = (x + 0.5) / scale - 0.5;
      break;
    case "half_pixel_symmetric":
      xOri = (inW / 2) * (1 - ax.outInt / outWidth) + (x + 0.5) / scale - 0.5;
      break;
    default:
      throw new Error("oracle: unsupported coordinate mode");
  }
  const ratio = Number.isInteger(xOri) ? 1 : xOri - Math.floor(xOri);
  const coeffs = oracleCoeffs(ratio, scale, o);
  const [idx, points] = oracleNeighbors(xOri, coeffs.length, data);
  if (o.excludeOutside) {
    idx.forEach((i, k) => {
      if (i < 0 || i >= inW) coeffs[k] = 0;
    });
    const sum = coeffs.reduce((p, q) => p + q, 0);
    for (let k = 0; k < coeffs.length; k++) coeffs[k] /= sum;
  }
  return coeffs.reduce((acc, c, k) => acc + c * points[k], 0);
}

/** _interpolate_nd_with_x over every output point. */
function oracleResize(x: CpuTensor, outShape: number[], o: ResizeOptions): Float32Array {
  const shape = x.shape;
  const rank = shape.length;
  const axes: OracleAxis[] = shape.map((d, i) => {
    const scale = o.scales?.[i] ?? outShape[i] / d;
    return {
      scale,
      outWidth: o.scaledLengths?.[i] ?? scale * d,
      outInt: outShape[i],
      roi: [o.roi?.[i] ?? 0, o.roi?.[rank + i] ?? 1],
    };
  });
  const strides = shape.map((_, i) => sizeOf(shape.slice(i + 1)));
  const nd = (base: number, dim: number, at: number[]): number => {
    const rows = [];
    for (let i = 0; i < shape[dim]; i++) {
      const b = base + i * strides[dim];
      rows.push(dim === rank - 1 ? Number(x.data[b]) : nd(b, dim + 1, at));
    }
    return oracle1d(rows, at[dim], axes[dim], o);
  };
  const out = new Float32Array(sizeOf(outShape));
  const at = outShape.map(() => 0);
  for (let i = 0; i < out.length; i++) {
    let r = i;
    for (let d = rank - 1; d >= 0; d--) {
      at[d] = r % outShape[d];
      r = Math.floor(r / outShape[d]);
    }
    out[i] = nd(0, 0, at);
  }
  return out;
}

// ---- cases ----

const COORDS: CoordMode[] = [
  "half_pixel",
  "half_pixel_symmetric",
  "pytorch_half_pixel",
  "align_corners",
  "asymmetric",
  "tf_crop_and_resize",
];
const NEAREST: NearestMode[] = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"];

/** Option sets covering every mode and its switches. */
function variants(): ResizeOptions[] {
  const list: ResizeOptions[] = [];
  for (const coordMode of COORDS) {
    for (const nearestMode of NEAREST) list.push({ mode: "nearest", coordMode, nearestMode });
    for (const antialias of [false, true]) {
      list.push({ mode: "linear", coordMode, antialias });
      for (const excludeOutside of [false, true]) {
        list.push({ mode: "cubic", coordMode, antialias, excludeOutside });
      }
    }
  }
  list.push({ mode: "cubic", cubicA: -0.5, antialias: true, excludeOutside: true });
  return list;
}

/** Adds scales-as-float32 facts (like an ONNX `scales` input) and a tf_crop_and_resize roi. */
function withScales(
  o: ResizeOptions,
  inShape: readonly number[],
  outShape: readonly number[],
  seed: number,
): { opts: ResizeOptions; outShape: number[] } {
  const r = rng(seed);
  const roi = o.coordMode === "tf_crop_and_resize"
    ? [
      ...inShape.map(() => Math.fround(-0.2 + 0.5 * r())),
      ...inShape.map(() => Math.fround(0.6 + 0.6 * r())),
    ]
    : undefined;
  // Half the cases give float32 scales (output = floor(in * scale)), half give sizes.
  if (seed % 2 === 0) {
    const scales = inShape.map((d, i) => Math.fround(outShape[i] / d + 0.01 * r()));
    return {
      opts: {
        ...o,
        scales,
        scaledLengths: inShape.map((d, i) => Math.fround(d * scales[i])),
        roi,
      },
      outShape: inShape.map((d, i) => Math.floor(d * scales[i])),
    };
  }
  return { opts: { ...o, roi, extrapolationValue: 0.25 }, outShape: [...outShape] };
}

const SHAPE_PAIRS: [number[], number[]][] = [
  [[7], [13]],
  [[13], [5]],
  [[1, 5], [3, 1]],
  [[4, 6], [9, 2]],
  [[3, 1, 9], [2, 4, 4]],
];

Deno.test("resize ref: matches ONNX's point-by-point reference in every mode", () => {
  let seed = 1;
  for (const base of variants()) {
    for (const [inShape, target] of SHAPE_PAIRS) {
      const x = cpuTensor("float32", inShape, randomFloats(sizeOf(inShape), seed, -2, 2));
      const { opts, outShape } = withScales(base, inShape, target, seed++);
      const expected = oracleResize(x, outShape, opts);
      const got = resizeRef(x, outShape, opts);
      assertEquals(got.shape, outShape);
      assertClose(got.data, expected, {
        rtol: 1e-5,
        atol: 1e-5,
        label: `${JSON.stringify(base)} ${inShape} -> ${outShape}`,
      });
    }
  }
});

Deno.test("resize ref: strong downsampling with antialias (wide filters) and 1-wide outputs", () => {
  let seed = 500;
  for (
    const base of [
      { mode: "linear", antialias: true },
      { mode: "cubic", antialias: true },
      { mode: "cubic", antialias: true, excludeOutside: true, cubicA: -0.5 },
      { mode: "cubic", coordMode: "pytorch_half_pixel" },
      { mode: "linear", coordMode: "align_corners" },
    ] as ResizeOptions[]
  ) {
    for (const [inShape, outShape] of [[[31], [4]], [[17], [1]], [[2, 29], [1, 3]]]) {
      const x = cpuTensor("float32", inShape, randomFloats(sizeOf(inShape), seed++, -2, 2));
      assertClose(resizeRef(x, outShape, base).data, oracleResize(x, outShape, base), {
        rtol: 1e-5,
        atol: 1e-5,
        label: `${JSON.stringify(base)} ${inShape} -> ${outShape}`,
      });
    }
  }
});

Deno.test("resize ref: source coordinates far outside the input (edge-padded windows)", () => {
  // Scales that disagree with the output length (allowed by the kernel API) push the source
  // coordinate far past both ends, where the reference slides its window inside the padding.
  let seed = 700;
  for (const base of variants().filter((v) => v.coordMode !== "tf_crop_and_resize")) {
    for (const scale of [0.3, 0.05, 7]) {
      const x = cpuTensor("float32", [6], randomFloats(6, seed++, -2, 2));
      const opts = { ...base, scales: [scale], scaledLengths: [6 * scale + 5] };
      assertClose(resizeRef(x, [13], opts).data, oracleResize(x, [13], opts), {
        rtol: 1e-5,
        atol: 1e-5,
        label: `${JSON.stringify(base)} scale ${scale}`,
      });
    }
  }
});

Deno.test("resize ref: nearest on integers is exact, linear truncates like numpy", () => {
  const x = cpuTensor("int64", [1, 4], [1, 2, 3, 2 ** 40]);
  const near = resizeRef(x, [2, 8], { mode: "nearest", coordMode: "asymmetric" });
  assertEquals(
    Array.from(near.data),
    [1, 1, 2, 2, 3, 3, 2 ** 40, 2 ** 40].concat(
      [1, 1, 2, 2, 3, 3, 2 ** 40, 2 ** 40],
    ),
  );
  const y = cpuTensor("int32", [2], [0, 3]);
  const lin = resizeRef(y, [4], { mode: "linear", coordMode: "align_corners" });
  assertEquals(Array.from(lin.data), [0, 1, 2, 3]);
  throws(() => resizeRef(cpuTensor("bool", [2], [1, 0]), [4], { mode: "nearest" }), /bool/);
  throws(() => resizeRef(y, [4], { mode: "nearest", antialias: true }), /antialias/);
});

// ---- GPU against the host reference ----

async function gpuResize(x: CpuTensor, outShape: number[], opts: ResizeOptions) {
  const gpu = await getGpu();
  const [y] = await runKernel(
    gpu,
    [x],
    [outShape],
    (scope, [input], [out]) => prepareResize(gpu, scope, input, out, opts),
  );
  return y;
}

const GPU_SHAPES: [number[], number[]][] = [
  [[257], [100]], // 1-D, long axis
  [[2, 3, 7, 13], [2, 3, 15, 5]], // NCHW, only H and W (up and down)
  [[1, 3, 31, 17], [1, 3, 8, 9]], // strong downsampling: wide antialias filters
  [[3, 5, 4], [5, 2, 11]], // every axis resized
  [[1, 1, 1, 9], [1, 1, 3, 1]], // size-1 axes
];

Deno.test("resize gpu: every mode and coordinate mode matches the host reference", async () => {
  let seed = 1000;
  for (const base of variants()) {
    for (const [inShape, target] of GPU_SHAPES) {
      const x = cpuTensor("float32", inShape, randomFloats(sizeOf(inShape), seed, -3, 3));
      const { opts, outShape } = withScales(base, inShape, target, seed++);
      const got = await gpuResize(x, outShape, opts);
      assertEquals(got.shape, outShape);
      assertClose(got.data, resizeRef(x, outShape, opts).data, {
        rtol: 1e-5,
        atol: 2e-6,
        label: `gpu ${JSON.stringify(base)} ${inShape} -> ${outShape}`,
      });
    }
  }
});

Deno.test("resize gpu: integer, float16, identity and torchvision-style bicubic", async () => {
  const cases: { dtype: DType; mode: ResizeMode; extra?: ResizeOptions }[] = [
    { dtype: "int32", mode: "nearest" },
    { dtype: "int64", mode: "nearest" },
    { dtype: "int32", mode: "linear" },
    { dtype: "float16", mode: "cubic" },
    { dtype: "float16", mode: "nearest" },
    {
      dtype: "float32",
      mode: "linear",
      extra: {
        mode: "linear",
        coordMode: "tf_crop_and_resize",
        roi: [0, 0, -0.5, 0.2, 1, 1, 0.7, 1.5],
        extrapolationValue: -7,
      },
    },
  ];
  let seed = 3000;
  for (const { dtype, mode, extra } of cases) {
    const inShape = [2, 3, 9, 6];
    const outShape = [2, 3, 4, 13];
    const values = randomFloats(sizeOf(inShape), seed++, -1000, 1000);
    const x = cpuTensor(dtype, inShape, dtype.startsWith("int") ? values.map(Math.round) : values);
    const opts = extra ?? { mode };
    const got = await gpuResize(x, outShape, opts);
    const expected = resizeRef(x, outShape, opts);
    const exact = mode === "nearest";
    assertClose(got.data, expected.data, {
      rtol: exact ? 0 : dtype === "float16" ? 1e-3 : 1e-5,
      atol: exact ? 0 : dtype === "int32" ? 1 : 1e-3,
      label: `gpu ${dtype} ${mode}`,
    });
    if (dtype === "float16") assertHalfValues(got, `gpu ${dtype} ${mode}`);
  }
  // Same shape, identity sampling: a copy.
  const x = cpuTensor("float32", [3, 5], randomFloats(15, 7));
  assertEquals(
    Array.from((await gpuResize(x, [3, 5], { mode: "cubic" })).data),
    Array.from(x.data),
  );
  // Image preprocessing: 3 x 67 x 50 -> 3 x 24 x 18, PIL/torchvision bicubic antialias.
  const img = cpuTensor("float32", [3, 67, 50], randomFloats(3 * 67 * 50, 8, 0, 1));
  const aa: ResizeOptions = { mode: "cubic", cubicA: -0.5, antialias: true, excludeOutside: true };
  assertClose((await gpuResize(img, [3, 24, 18], aa)).data, resizeRef(img, [3, 24, 18], aa).data, {
    rtol: 1e-5,
    atol: 1e-6,
    label: "image bicubic antialias",
  });
});

// ---- the ONNX operator ----

function node(opType: string, attrs: Record<string, AttrValue>, inputs: string[]): OnnxNode {
  return {
    name: "r",
    opType,
    domain: "",
    inputs,
    outputs: ["y"],
    attrs: new Map(Object.entries(attrs)),
  };
}

Deno.test("onnx Resize: sizes with axes and keep_aspect_ratio_policy", () => {
  const x = cpuTensor("float32", [1, 1, 4, 6], randomFloats(24, 11));
  const sizes = cpuTensor("int64", [2], [3, 3]);
  const op = resizeOps.Resize;
  for (
    const [policy, shape] of [["stretch", [1, 1, 3, 3]], ["not_larger", [1, 1, 2, 3]], [
      "not_smaller",
      [1, 1, 3, 5],
    ]] as const
  ) {
    const n = node("Resize", { axes: [2, 3], keep_aspect_ratio_policy: policy, mode: "linear" }, [
      "x",
      "",
      "",
      "s",
    ]);
    const infos = [x, undefined, undefined, sizes].map((t) =>
      t && { dtype: t.dtype, shape: t.shape, value: t }
    );
    assertEquals(op.infer({ node: n, opset: 19 }, infos)[0].shape, shape);
    const [y] = op.cpu({ node: n, opset: 19 }, [x, undefined, undefined, sizes]);
    assertEquals(y.shape, shape);
  }
  // axes in reverse order: sizes follow the axes' order.
  const n = node("Resize", { axes: [3, 2], mode: "nearest" }, ["x", "", "", "s"]);
  assertEquals(
    op.cpu({ node: n, opset: 19 }, [x, undefined, undefined, cpuTensor("int64", [2], [2, 8])])[0]
      .shape,
    [1, 1, 8, 2],
  );
});

Deno.test("onnx Resize/Upsample: legacy opsets and invalid inputs", () => {
  const x = cpuTensor("float32", [1, 2, 2], [1, 2, 3, 4]);
  const scales = cpuTensor("float32", [3], [1, 1.5, 3]);
  // Resize-10 / Upsample: asymmetric nearest, rounding down when upsampling.
  const r10 = resizeOps.Resize.cpu({ node: node("Resize", {}, ["x", "s"]), opset: 10 }, [
    x,
    scales,
  ]);
  assertEquals(r10[0].shape, [1, 3, 6]);
  assertEquals(Array.from(r10[0].data), [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
  const up7 = resizeOps.Upsample.cpu(
    { node: node("Upsample", { scales: [1, 2, 2] }, ["x"]), opset: 7 },
    [x],
  );
  assertEquals(Array.from(up7[0].data), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  // Resize-10 rounds up when downsampling: 3 outputs at 0, 1/0.6, 2/0.6 -> positions 0, 2, 4.
  const row = cpuTensor("float32", [5], [10, 11, 12, 13, 14]);
  const down = resizeOps.Resize.cpu({ node: node("Resize", {}, ["x", "s"]), opset: 10 }, [
    row,
    cpuTensor("float32", [1], [0.6]),
  ]);
  assertEquals(Array.from(down[0].data), [10, 12, 14]);
  // Opset 11's tf_half_pixel_for_nn: source (x + 0.5) / scale, then round_prefer_floor.
  const nn = resizeOps.Resize.cpu(
    {
      node: node("Resize", { coordinate_transformation_mode: "tf_half_pixel_for_nn" }, [
        "x",
        "r",
        "s",
      ]),
      opset: 11,
    },
    [
      cpuTensor("float32", [4], [0, 1, 2, 3]),
      cpuTensor("float32", [0]),
      cpuTensor("float32", [1], [2]),
    ],
  );
  assertEquals(Array.from(nn[0].data), [0, 1, 1, 2, 2, 3, 3, 3]);
  const bad = (attrs: Record<string, AttrValue>, inputs: (CpuTensor | undefined)[], re: RegExp) =>
    throws(
      () =>
        resizeOps.Resize.cpu(
          { node: node("Resize", attrs, ["x", "", "s", "z"]), opset: 19 },
          inputs,
        ),
      re,
    );
  const sizes = cpuTensor("int64", [3], [1, 3, 3]);
  bad({}, [x, undefined, scales, sizes], /exactly one/);
  bad({}, [x, undefined, undefined, undefined], /exactly one/);
  bad({ mode: "area" }, [x, undefined, scales], /unknown mode/);
  bad({ coordinate_transformation_mode: "tf_crop_and_resize" }, [x, undefined, scales], /roi/);
  bad({ antialias: 1 }, [x, undefined, scales], /antialias/);
  bad({}, [x, undefined, cpuTensor("float32", [2], [1, 2])], /2 scales/);
  bad({ axes: [1, -2] }, [x, undefined, cpuTensor("float32", [2], [1, 2])], /repeated axes/);
});
