/** Quantization operators (src/onnx/ops/quantize.ts) and the int8/uint8 element types: shape and
 * dtype inference, errors that name the node, TensorProto round trips, Cast/Identity through
 * models, and the quantized products run as models against independent integer arithmetic. */
import "../gpu_teardown.ts";
import { deepStrictEqual, throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor, type DType, sizeOf } from "../../src/util/tensor.ts";
import { type BuilderAttr, GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/executor.ts";
import { quantizeOps } from "../../src/onnx/ops/quantize.ts";
import { elementwiseOps } from "../../src/onnx/ops/elementwise.ts";
import { ONNX_TYPE, readTensorProto, tensorToProto } from "../../src/onnx/tensor_proto.ts";
import { type AttrValue, NodeError, type OnnxNode, type TensorInfo } from "../../src/onnx/types.ts";
import { UnsupportedFeatureError } from "../../src/onnx/graph.ts";
import { roundHalfEven } from "../../src/kernels/quantize_ref.ts";
import { rng } from "../helpers.ts";

function mk(opType: string, attrs: Record<string, AttrValue> = {}): OnnxNode {
  return {
    name: `${opType.toLowerCase()}_node`,
    opType,
    domain: "",
    inputs: [],
    outputs: [],
    attrs: new Map(Object.entries(attrs)),
  };
}

const info = (dtype: DType, shape: number[]): TensorInfo => ({ dtype, shape });

function infer(
  opType: string,
  inputs: (TensorInfo | undefined)[],
  attrs: Record<string, AttrValue> = {},
  opset = 21,
): TensorInfo[] {
  return quantizeOps[opType].infer({ node: mk(opType, attrs), opset }, inputs);
}

const outline = (ts: TensorInfo[]) => ts.map((t) => [t.dtype, [...t.shape]]);

Deno.test("quantize ops: output dtypes and shapes", () => {
  const x = info("float32", [2, 6]);
  deepStrictEqual(outline(infer("QuantizeLinear", [x, info("float32", [])])), [["uint8", [2, 6]]]);
  deepStrictEqual(
    outline(infer("QuantizeLinear", [x, info("float32", [6]), info("int8", [6])])),
    [["int8", [2, 6]]],
  );
  deepStrictEqual(
    outline(
      infer("QuantizeLinear", [x, info("float32", [2, 3])], {
        axis: 1,
        block_size: 2,
        output_dtype: ONNX_TYPE.INT8,
      }),
    ),
    [["int8", [2, 6]]],
  );
  deepStrictEqual(
    outline(infer("DequantizeLinear", [info("uint8", [2, 6]), info("float16", [])])),
    [["float16", [2, 6]]],
  );
  deepStrictEqual(
    outline(
      infer("DequantizeLinear", [info("int8", [2, 6]), info("float16", [2])], {
        axis: 0,
        output_dtype: ONNX_TYPE.FLOAT,
      }, 23),
    ),
    [["float32", [2, 6]]],
  );
  deepStrictEqual(outline(infer("DynamicQuantizeLinear", [info("float32", [3, 5])])), [
    ["uint8", [3, 5]],
    ["float32", []],
    ["uint8", []],
  ]);
  const s = info("float32", []);
  deepStrictEqual(
    outline(
      infer("QLinearMatMul", [
        info("int8", [5, 2, 3]),
        s,
        info("int8", []),
        info("int8", [3, 4]),
        info("float32", [4]),
        info("int8", [4]),
        s,
        info("uint8", []),
      ]),
    ),
    [["uint8", [5, 2, 4]]],
  );
  deepStrictEqual(
    outline(
      infer(
        "QLinearConv",
        [
          info("uint8", [1, 3, 7, 5]),
          s,
          info("uint8", []),
          info("int8", [4, 3, 3, 3]),
          info("float32", [4]),
          info("int8", [4]),
          s,
          info("uint8", []),
          info("int32", [4]),
        ],
        { pads: [1, 1, 1, 1], strides: [2, 2] },
        10,
      ),
    ),
    [["uint8", [1, 4, 4, 3]]],
  );
  deepStrictEqual(
    outline(infer("MatMulInteger", [info("uint8", [3, 7]), info("int8", [7, 2])], {}, 10)),
    [["int32", [3, 2]]],
  );
  deepStrictEqual(
    outline(
      infer("ConvInteger", [info("uint8", [2, 1, 5, 5]), info("uint8", [3, 1, 2, 2])], {}, 10),
    ),
    [["int32", [2, 3, 4, 4]]],
  );
});

Deno.test("quantize ops: mismatched zero points and bad scales are errors naming the node", () => {
  const x8 = info("uint8", [2, 6]);
  throws(
    () => infer("DequantizeLinear", [x8, info("float32", []), info("int8", [])]),
    (e: Error) =>
      e instanceof NodeError && /dequantizelinear_node.*zero point is int8 but x is uint8/.test(
        e.message,
      ),
  );
  throws(
    () =>
      infer("QuantizeLinear", [info("float32", [2, 6]), info("float32", []), info("uint8", [])], {
        output_dtype: ONNX_TYPE.INT8,
      }),
    /quantizelinear_node.*output_dtype int8 but the zero point is uint8/,
  );
  throws(
    () => infer("QuantizeLinear", [info("float32", [2, 6]), info("float32", [5])]),
    /quantizelinear_node.*neither per-tensor nor per-axis/,
  );
  throws(
    () =>
      infer("QuantizeLinear", [info("float32", [2, 6]), info("float32", [2, 2])], {
        block_size: 2,
      }),
    /quantizelinear_node.*expected \[2,3\]/,
  );
  throws(
    () => infer("QuantizeLinear", [info("int32", [2]), info("float32", [])]),
    /quantizelinear_node.*x is int32, expected float32 or float16/,
  );
  throws(
    () =>
      infer("QuantizeLinear", [info("float32", [2]), info("float32", [])], {
        output_dtype: ONNX_TYPE.INT16,
      }),
    (e: Error) => e instanceof UnsupportedFeatureError && /output_dtype int16/.test(e.message),
  );
  const s = info("float32", []);
  throws(
    () =>
      infer("QLinearMatMul", [
        info("int8", [2, 3]),
        s,
        info("int8", []),
        info("uint8", [3, 4]),
        s,
        info("int8", []),
        s,
        info("int8", []),
      ]),
    /qlinearmatmul_node.*B zero point is int8 but B is uint8/,
  );
  throws(
    () =>
      infer("QLinearMatMul", [
        info("int8", [2, 3]),
        s,
        info("int8", []),
        info("int8", [3, 4]),
        info("float32", [3]),
        info("int8", []),
        s,
        info("int8", []),
      ]),
    /qlinearmatmul_node.*B scale \[3\] is neither/,
  );
  throws(
    () => infer("MatMulInteger", [info("float32", [2, 3]), info("uint8", [3, 4])], {}, 10),
    /matmulinteger_node.*A is float32, expected int8 or uint8/,
  );
  // Float-only math on the 8-bit types is refused, as for int32.
  throws(
    () => elementwiseOps.Sqrt.infer({ node: mk("Sqrt"), opset: 14 }, [info("uint8", [2])]),
    /sqrt_node.*uint8 input is not supported/,
  );
  throws(
    () =>
      elementwiseOps.Mean.infer({ node: mk("Mean"), opset: 14 }, [
        info("int8", [2]),
        info("int8", [2]),
      ]),
    /mean_node.*int8 inputs are not supported/,
  );
});

Deno.test("tensor_proto: int8 and uint8 round-trip through raw_data and int32_data", () => {
  for (
    const [dtype, values] of [["int8", [-128, -1, 0, 1, 127]], ["uint8", [
      0,
      1,
      128,
      255,
      7,
    ]]] as const
  ) {
    const t = cpuTensor(dtype, [5], values);
    const back = readTensorProto(tensorToProto("t", t)).tensor;
    deepStrictEqual([back.dtype, Array.from(back.data)], [dtype, [...values]]);
    // Typed storage: int32_data holds one value per element (int8 sign-extended).
    const typed = readTensorProto({
      name: "t",
      dims: [5],
      dataType: dtype === "int8" ? ONNX_TYPE.INT8 : ONNX_TYPE.UINT8,
      int32Data: [...values],
    }).tensor;
    deepStrictEqual([typed.dtype, Array.from(typed.data)], [dtype, [...values]]);
  }
});

async function runGraph(
  build: (b: GraphBuilder) => { outputs: [string, DType, number[]][] },
  inputs: Record<string, CpuTensor>,
  opset = 21,
): Promise<Record<string, CpuTensor>> {
  const b = new GraphBuilder("quantize", opset);
  for (const [name, t] of Object.entries(inputs)) b.input(name, t.dtype, t.shape);
  for (const [name, dtype, shape] of build(b).outputs) b.output(name, dtype, shape);
  const model = await loadModelBytes(b.encode(), { source: "quantize test" });
  try {
    return await model.run(inputs);
  } finally {
    model.dispose();
  }
}

Deno.test("int8/uint8 Cast, CastLike and Identity round-trip through a model", async () => {
  const x = cpuTensor("int8", [7], [-128, -5, 0, 5, 100, 127, -1]);
  const out = await runGraph((b) => {
    const f = b.op("Cast", ["x"], { to: ONNX_TYPE.FLOAT });
    const back = b.op("Cast", [f], { to: ONNX_TYPE.INT8 });
    b.op("Identity", [back], {}, "same");
    b.op("Cast", ["x"], { to: ONNX_TYPE.UINT8 }, "wrapped");
    const like = b.constant("like", cpuTensor("int8", [], [0]));
    b.op("CastLike", [b.op("Cast", ["x"], { to: ONNX_TYPE.INT32 }), like], {}, "like_out");
    return {
      outputs: [["same", "int8", [7]], ["wrapped", "uint8", [7]], ["like_out", "int8", [7]]],
    };
  }, { x });
  deepStrictEqual(Array.from(out.same.data), Array.from(x.data));
  deepStrictEqual(out.same.dtype, "int8");
  deepStrictEqual(Array.from(out.wrapped.data), [128, 251, 0, 5, 100, 127, 255]);
  deepStrictEqual(Array.from(out.like_out.data), Array.from(x.data));
});

/** Independent arithmetic of the ONNX reference (op_qlinear_matmul.py) for 2-D operands. */
function qlinearMatmulExpected(
  a: CpuTensor,
  az: number,
  b: CpuTensor,
  bz: readonly number[],
  m: readonly number[],
  yz: number,
  lo: number,
  hi: number,
): number[] {
  const [rows, k] = a.shape, n = b.shape[1];
  const out: number[] = [];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < n; j++) {
      let c = 0;
      for (let p = 0; p < k; p++) {
        c += (Number(a.data[i * k + p]) - az) * (Number(b.data[p * n + j]) - bz[j % bz.length]);
      }
      out.push(Math.max(lo, Math.min(hi, roundHalfEven(c * m[j % m.length] + yz))));
    }
  }
  return out;
}

function randomInts(dtype: "int8" | "uint8", shape: number[], seed: number): CpuTensor {
  const r = rng(seed);
  const lo = dtype === "int8" ? -128 : 0;
  return cpuTensor(
    dtype,
    shape,
    Array.from({ length: sizeOf(shape) }, () => lo + Math.floor(r() * 256)),
  );
}

Deno.test("QLinearMatMul and MatMulInteger: constant and run-time operands, per-column B", async () => {
  const [rows, k, n] = [5, 37, 7];
  const a = randomInts("uint8", [rows, k], 1);
  const bConst = randomInts("int8", [k, n], 2);
  const r = rng(3);
  // Scales as float32 values; the multiplier as the kernel forms it (float32 products).
  const aScale = Math.fround(0.02);
  const bScales = Array.from({ length: n }, () => Math.fround(0.005 + r() * 0.01));
  const yScale = Math.fround(0.15);
  const mult = bScales.map((s) => Math.fround(Math.fround(aScale * s) / yScale));
  const bZeros = Array.from({ length: n }, () => Math.floor(r() * 20) - 10);
  const attrs: Record<string, BuilderAttr> = {};
  for (const bIsInput of [false, true]) {
    const inputs: Record<string, CpuTensor> = { a };
    if (bIsInput) inputs.b = bConst;
    const out = await runGraph((g) => {
      const c = (p: string, t: CpuTensor) => g.constant(p, t);
      const bName = bIsInput ? "b" : c("b", bConst);
      g.op(
        "QLinearMatMul",
        [
          "a",
          c("as", cpuTensor("float32", [], [aScale])),
          c("az", cpuTensor("uint8", [], [131])),
          bName,
          c("bs", cpuTensor("float32", [n], bScales)),
          c("bz", cpuTensor("int8", [n], bZeros)),
          c("ys", cpuTensor("float32", [], [yScale])),
          c("yz", cpuTensor("uint8", [], [120])),
        ],
        attrs,
        "y",
      );
      g.op(
        "MatMulInteger",
        [
          "a",
          bName,
          c("az2", cpuTensor("uint8", [rows], [3, 250, 0, 128, 17])),
          c("bz2", cpuTensor("int8", [n], bZeros)),
        ],
        {},
        "ints",
      );
      return { outputs: [["y", "uint8", [rows, n]], ["ints", "int32", [rows, n]]] };
    }, inputs);
    const label = bIsInput ? "run-time B" : "constant B";
    deepStrictEqual(
      Array.from(out.y.data),
      qlinearMatmulExpected(a, 131, bConst, bZeros, mult, 120, 0, 255),
      `QLinearMatMul, ${label}`,
    );
    const ints: number[] = [];
    const az2 = [3, 250, 0, 128, 17];
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          s += (Number(a.data[i * k + p]) - az2[i]) * (Number(bConst.data[p * n + j]) - bZeros[j]);
        }
        ints.push(s);
      }
    }
    deepStrictEqual(Array.from(out.ints.data), ints, `MatMulInteger, ${label}`);
  }
});

Deno.test("QLinearConv and ConvInteger: per-channel weights, bias, GPU matches the CPU path", async () => {
  const x = randomInts("uint8", [1, 3, 9, 7], 11);
  const w = randomInts("int8", [4, 3, 3, 3], 12);
  const r = rng(13);
  const wScales = Array.from({ length: 4 }, () => 0.002 + r() * 0.01);
  const bias = cpuTensor("int32", [4], [-500, 0, 1234, 77]);
  const attrs = { pads: [1, 1, 1, 1], strides: [2, 1] };
  const build = (g: GraphBuilder, folded: boolean) => {
    const c = (p: string, t: CpuTensor) => g.constant(p, t);
    const xName = folded ? c("x", x) : "x";
    g.op(
      "QLinearConv",
      [
        xName,
        c("xs", cpuTensor("float32", [], [0.05])),
        c("xz", cpuTensor("uint8", [], [128])),
        c("w", w),
        c("ws", cpuTensor("float32", [4], wScales)),
        c("wz", cpuTensor("int8", [4], [0, 3, -2, 1])),
        c("ys", cpuTensor("float32", [], [0.1])),
        c("yz", cpuTensor("uint8", [], [100])),
        c("bias", bias),
      ],
      attrs,
      "y",
    );
    g.op("ConvInteger", [xName, c("w2", w), c("xz2", cpuTensor("uint8", [], [128]))], attrs, "i");
    return {
      outputs: [["y", "uint8", [1, 4, 5, 7]], ["i", "int32", [1, 4, 5, 7]]] as [
        string,
        DType,
        number[],
      ][],
    };
  };
  // GPU: x a model input. CPU: x an initializer, so the whole graph folds on the host.
  const gpu = await runGraph((g) => build(g, false), { x }, 10);
  const cpu = await runGraph((g) => build(g, true), {}, 10);
  deepStrictEqual(Array.from(gpu.y.data), Array.from(cpu.y.data), "QLinearConv");
  deepStrictEqual(Array.from(gpu.i.data), Array.from(cpu.i.data), "ConvInteger");
  // ConvInteger at one output, by hand: channel 2, row 0 (padded), column 3.
  let s = 0;
  for (let ci = 0; ci < 3; ci++) {
    for (let ky = 0; ky < 3; ky++) {
      for (let kx = 0; kx < 3; kx++) {
        const iy = ky - 1, ix = 3 + kx - 1;
        if (iy < 0 || iy >= 9 || ix < 0 || ix >= 7) continue;
        s += (Number(x.data[(ci * 9 + iy) * 7 + ix]) - 128) *
          Number(w.data[((2 * 3 + ci) * 3 + ky) * 3 + kx]);
      }
    }
  }
  deepStrictEqual(gpu.i.data[2 * 35 + 3], s);
});

Deno.test("DynamicQuantizeLinear and Quantize/Dequantize round trip in a model", async () => {
  const x = cpuTensor("float32", [3, 11], Array.from({ length: 33 }, (_, i) => (i - 10) * 0.37));
  const out = await runGraph((g) => {
    g.opMulti("DynamicQuantizeLinear", ["x"], ["y", "s", "z"]);
    g.op("DequantizeLinear", ["y", "s", "z"], {}, "back");
    return {
      outputs: [["y", "uint8", [3, 11]], ["s", "float32", []], ["z", "uint8", []], [
        "back",
        "float32",
        [3, 11],
      ]],
    };
  }, { x });
  const scale = out.s.data[0];
  const xs = x.data as Float32Array;
  const [lo, hi] = [Math.min(0, ...xs), Math.max(0, ...xs)];
  deepStrictEqual(scale, Math.fround(Math.fround(hi - lo) / 255));
  deepStrictEqual(out.z.data[0], roundHalfEven(Math.fround(-lo / scale)));
  for (let i = 0; i < 33; i++) {
    if (Math.abs(out.back.data[i] - xs[i]) > scale / 2 + 1e-6) {
      throw new Error(`element ${i}: ${xs[i]} came back as ${out.back.data[i]} (scale ${scale})`);
    }
  }
});

Deno.test("int8/uint8 arithmetic wraps like numpy; Clip fills omitted run-time bounds per type", async () => {
  const y8 = cpuTensor("int8", [4], [100, -128, 127, -3]);
  const u8 = cpuTensor("uint8", [4], [200, 0, 255, 3]);
  const out = await runGraph(
    (g) => {
      g.op("Add", ["y8", "y8"], {}, "sum8");
      g.op("Neg", ["y8"], {}, "neg8");
      g.op("Abs", ["y8"], {}, "abs8");
      g.op("Mul", ["u8", "u8"], {}, "mul_u8");
      g.op("Sub", ["u8", g.constant("ten", cpuTensor("uint8", [], [10]))], {}, "sub_u8");
      g.op("BitwiseNot", ["u8"], {}, "not_u8");
      g.op("Clip", ["y8", "", "hi"], {}, "clip8");
      return {
        outputs: [
          ["sum8", "int8", [4]],
          ["neg8", "int8", [4]],
          ["abs8", "int8", [4]],
          ["mul_u8", "uint8", [4]],
          ["sub_u8", "uint8", [4]],
          ["not_u8", "uint8", [4]],
          ["clip8", "int8", [4]],
        ],
      };
    },
    { y8, u8, hi: cpuTensor("int8", [], [50]) },
    18,
  );
  const values = (name: string) => Array.from(out[name].data);
  deepStrictEqual(values("sum8"), [-56, 0, -2, -6]);
  deepStrictEqual(values("neg8"), [-100, -128, -127, 3]);
  deepStrictEqual(values("abs8"), [100, -128, 127, 3]);
  deepStrictEqual(values("mul_u8"), [64, 0, 1, 9]);
  deepStrictEqual(values("sub_u8"), [190, 246, 245, 249]);
  deepStrictEqual(values("not_u8"), [55, 255, 0, 252]);
  deepStrictEqual(values("clip8"), [50, -128, 50, -3]);
});

Deno.test("int8/uint8 through movement, comparison and selection ops: GPU matches the CPU path", async () => {
  const x = randomInts("int8", [2, 3, 5], 21);
  const u = randomInts("uint8", [2, 3, 5], 22);
  const i64 = (v: number[]) => cpuTensor("int64", [v.length], v);
  const build = (g: GraphBuilder, folded: boolean) => {
    const c = (p: string, t: CpuTensor) => g.constant(p, t);
    const xn = folded ? c("x", x) : "x";
    const un = folded ? c("u", u) : "u";
    const outs: [string, DType, number[]][] = [];
    const out = (name: string, dtype: DType, shape: number[]) => outs.push([name, dtype, shape]);
    g.op("Transpose", [xn], { perm: [2, 0, 1] }, "t");
    out("t", "int8", [5, 2, 3]);
    g.op("Concat", [un, un], { axis: 1 }, "cat");
    out("cat", "uint8", [2, 6, 5]);
    g.op("Slice", [xn, c("s", i64([1])), c("e", i64([4])), c("a", i64([2]))], {}, "sl");
    out("sl", "int8", [2, 3, 3]);
    g.op("Gather", [un, c("idx", i64([2, 0, 2]))], { axis: 1 }, "ga");
    out("ga", "uint8", [2, 3, 5]);
    g.op("Reshape", [xn, c("shape", i64([6, 5]))], {}, "re");
    out("re", "int8", [6, 5]);
    g.op("Pad", [un, c("pads", i64([0, 1, 0, 0, 0, 2])), c("v", cpuTensor("uint8", [], [200]))], {
      mode: "constant",
    }, "pad");
    out("pad", "uint8", [2, 4, 7]);
    const lt = g.op("Less", [xn, c("zero8", cpuTensor("int8", [], [0]))]);
    g.op("Where", [lt, c("neg", cpuTensor("int8", [], [-128])), xn], {}, "wh");
    out("wh", "int8", [2, 3, 5]);
    g.op("Max", [un, c("hundred", cpuTensor("uint8", [], [100]))], {}, "mx");
    out("mx", "uint8", [2, 3, 5]);
    g.op("Relu", [xn], {}, "relu");
    out("relu", "int8", [2, 3, 5]);
    return { outputs: outs };
  };
  const gpu = await runGraph((g) => build(g, false), { x, u }, 18);
  const cpu = await runGraph((g) => build(g, true), {}, 18);
  for (const name of Object.keys(cpu)) {
    deepStrictEqual(
      [gpu[name].dtype, [...gpu[name].shape], Array.from(gpu[name].data)],
      [cpu[name].dtype, [...cpu[name].shape], Array.from(cpu[name].data)],
      name,
    );
  }
  deepStrictEqual(Array.from(cpu.pad.data).filter((v) => v === 200).length >= 2 * 4 * 7 - 30, true);
});
