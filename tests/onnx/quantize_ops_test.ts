/** Quantization operators (src/onnx/ops/quantize.ts) and the int8/uint8 element types: shape and
 * dtype inference, errors that name the node, TensorProto round trips, Cast/Identity through
 * models, and the quantized products run as models against independent integer arithmetic. */
import "../gpu_teardown.ts";
import { deepStrictEqual, throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor, type DType } from "../../src/util/tensor.ts";
import { type BuilderAttr, GraphBuilder } from "../../src/onnx/builder.ts";
import { quantizeOps } from "../../src/onnx/ops/quantize.ts";
import { elementwiseOps } from "../../src/onnx/ops/elementwise.ts";
import { ONNX_TYPE, readTensorProto, tensorToProto } from "../../src/onnx/tensor_proto.ts";
import { type AttrValue, NodeError, type TensorInfo } from "../../src/onnx/types.ts";
import { UnsupportedFeatureError } from "../../src/onnx/graph.ts";
import { roundHalfEven } from "../../src/kernels/elementwise_ref.ts";
import { rng } from "../helpers.ts";
import { type NodeOptions, opNode, runModel, runNode } from "./harness.ts";
import { randomInt8s } from "../kernels/harness.ts";

const info = (dtype: DType, shape: number[]): TensorInfo => ({ dtype, shape });

function infer(
  opType: string,
  inputs: (TensorInfo | undefined)[],
  attrs: Record<string, AttrValue> = {},
  opset = 21,
): TensorInfo[] {
  return quantizeOps[opType].infer({ node: opNode(opType, attrs), opset }, inputs);
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
    () => elementwiseOps.Sqrt.infer({ node: opNode("Sqrt"), opset: 14 }, [info("uint8", [2])]),
    /sqrt_node.*uint8 input is not supported/,
  );
  throws(
    () =>
      elementwiseOps.Mean.infer({ node: opNode("Mean"), opset: 14 }, [
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

Deno.test("int8/uint8 Cast, CastLike and Identity round-trip through a model", async () => {
  const x = cpuTensor("int8", [7], [-128, -5, 0, 5, 100, 127, -1]);
  const b = new GraphBuilder("quantize", 21);
  b.input("x", x.dtype, x.shape);
  const f = b.op("Cast", ["x"], { to: ONNX_TYPE.FLOAT });
  const back = b.op("Cast", [f], { to: ONNX_TYPE.INT8 });
  b.output(b.op("Identity", [back], {}, "same"), "int8", [7]);
  b.output(b.op("Cast", ["x"], { to: ONNX_TYPE.UINT8 }, "wrapped"), "uint8", [7]);
  const like = b.constant("like", cpuTensor("int8", [], [0]));
  const int32 = b.op("Cast", ["x"], { to: ONNX_TYPE.INT32 });
  b.output(b.op("CastLike", [int32, like], {}, "like_out"), "int8", [7]);
  const out = await runModel(b, { x });
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

Deno.test("QLinearMatMul and MatMulInteger: constant and run-time operands, per-column B", async () => {
  const [rows, k, n] = [5, 37, 7];
  const a = randomInt8s("uint8", [rows, k], 1);
  const bConst = randomInt8s("int8", [k, n], 2);
  const r = rng(3);
  // Scales as float32 values; the multiplier as the kernel forms it (float32 products).
  const aScale = Math.fround(0.02);
  const bScales = Array.from({ length: n }, () => Math.fround(0.005 + r() * 0.01));
  const yScale = Math.fround(0.15);
  const mult = bScales.map((s) => Math.fround(Math.fround(aScale * s) / yScale));
  const bZeros = Array.from({ length: n }, () => Math.floor(r() * 20) - 10);
  const az2 = [3, 250, 0, 128, 17];
  const ints: number[] = [];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        s += (Number(a.data[i * k + p]) - az2[i]) * (Number(bConst.data[p * n + j]) - bZeros[j]);
      }
      ints.push(s);
    }
  }
  for (const bIsInput of [false, true]) {
    // A a graph input; B one too, or an initializer; scales and zero points initializers.
    const label = bIsInput ? "run-time B" : "constant B";
    await runNode("QLinearMatMul", [
      a,
      cpuTensor("float32", [], [aScale]),
      cpuTensor("uint8", [], [131]),
      bConst,
      cpuTensor("float32", [n], bScales),
      cpuTensor("int8", [n], bZeros),
      cpuTensor("float32", [], [yScale]),
      cpuTensor("uint8", [], [120]),
    ], {
      opset: 21,
      gpuRuns: { [label]: bIsInput ? [1, 2, 4, 5, 6, 7] : "weights" },
      expect: [
        cpuTensor(
          "uint8",
          [rows, n],
          qlinearMatmulExpected(a, 131, bConst, bZeros, mult, 120, 0, 255),
        ),
      ],
      label: `QLinearMatMul, ${label}`,
    });
    await runNode("MatMulInteger", [
      a,
      bConst,
      cpuTensor("uint8", [rows], az2),
      cpuTensor("int8", [n], bZeros),
    ], {
      opset: 21,
      gpuRuns: { [label]: bIsInput ? [2, 3] : "weights" },
      expect: [cpuTensor("int32", [rows, n], ints)],
      label: `MatMulInteger, ${label}`,
    });
  }
});

Deno.test("QLinearConv and ConvInteger: per-channel weights, bias, GPU matches the CPU path", async () => {
  const x = randomInt8s("uint8", [1, 3, 9, 7], 11);
  const w = randomInt8s("int8", [4, 3, 3, 3], 12);
  const r = rng(13);
  const wScales = Array.from({ length: 4 }, () => 0.002 + r() * 0.01);
  const bias = cpuTensor("int32", [4], [-500, 0, 1234, 77]);
  const attrs = { pads: [1, 1, 1, 1], strides: [2, 1] };
  // GPU: x a model input (the rest initializers), which must match the CPU path (all folded).
  const paths = { opset: 10, attrs, gpuRuns: { gpu: "weights" } } satisfies NodeOptions;
  await runNode("QLinearConv", [
    x,
    cpuTensor("float32", [], [0.05]),
    cpuTensor("uint8", [], [128]),
    w,
    cpuTensor("float32", [4], wScales),
    cpuTensor("int8", [4], [0, 3, -2, 1]),
    cpuTensor("float32", [], [0.1]),
    cpuTensor("uint8", [], [100]),
    bias,
  ], { ...paths, label: "QLinearConv" });
  const convInteger = await runNode("ConvInteger", [x, w, cpuTensor("uint8", [], [128])], {
    ...paths,
    label: "ConvInteger",
  });
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
  deepStrictEqual(convInteger.gpu[0].data[2 * 35 + 3], s);
});

Deno.test("DynamicQuantizeLinear and Quantize/Dequantize round trip in a model", async () => {
  const x = cpuTensor("float32", [3, 11], Array.from({ length: 33 }, (_, i) => (i - 10) * 0.37));
  const g = new GraphBuilder("quantize", 21);
  g.input("x", x.dtype, x.shape);
  g.opMulti("DynamicQuantizeLinear", ["x"], ["y", "s", "z"]);
  g.op("DequantizeLinear", ["y", "s", "z"], {}, "back");
  g.output("y", "uint8", [3, 11]);
  g.output("s", "float32", []);
  g.output("z", "uint8", []);
  g.output("back", "float32", [3, 11]);
  const out = await runModel(g, { x });
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
  const cases: [string, (CpuTensor | undefined)[], number[], number[]?][] = [
    ["Add", [y8, y8], [-56, 0, -2, -6]],
    ["Neg", [y8], [-100, -128, -127, 3]],
    ["Abs", [y8], [100, -128, 127, 3]],
    ["Mul", [u8, u8], [64, 0, 1, 9]],
    ["Sub", [u8, cpuTensor("uint8", [], [10])], [190, 246, 245, 249], [1]],
    ["BitwiseNot", [u8], [55, 255, 0, 252]],
    // The upper bound a graph input (known only at run time), the lower one omitted.
    ["Clip", [y8, undefined, cpuTensor("int8", [], [50])], [50, -128, 50, -3]],
  ];
  for (const [opType, inputs, want, known = []] of cases) {
    const x = inputs[0]!;
    await runNode(opType, inputs, {
      gpuRuns: { gpu: known },
      expect: [cpuTensor(x.dtype, x.shape, want)],
      label: `${opType} ${x.dtype}`,
    });
  }
});

Deno.test("int8/uint8 through movement, comparison and selection ops: GPU matches the CPU path", async () => {
  const x = randomInt8s("int8", [2, 3, 5], 21);
  const u = randomInt8s("uint8", [2, 3, 5], 22);
  const i64 = (v: number[]) => cpuTensor("int64", [v.length], v);
  // X or U a graph input, the other inputs initializers (runNode checks GPU against CPU).
  const runFedFirst = async (
    opType: string,
    inputs: CpuTensor[],
    attrs: Record<string, BuilderAttr> = {},
  ) => (await runNode(opType, inputs, { attrs, gpuRuns: { gpu: "weights" } })).cpu[0];
  await runFedFirst("Transpose", [x], { perm: [2, 0, 1] });
  await runNode("Concat", [u, u], { attrs: { axis: 1 } });
  await runFedFirst("Slice", [x, i64([1]), i64([4]), i64([2])]);
  await runFedFirst("Gather", [u, i64([2, 0, 2])], { axis: 1 });
  await runFedFirst("Reshape", [x, i64([6, 5])]);
  const pad = await runFedFirst(
    "Pad",
    [u, i64([0, 1, 0, 0, 0, 2]), cpuTensor("uint8", [], [200])],
    {
      mode: "constant",
    },
  );
  const negative = await runFedFirst("Less", [x, cpuTensor("int8", [], [0])]);
  // The condition a graph input too, as when a comparison computes it.
  await runNode("Where", [negative, cpuTensor("int8", [], [-128]), x], { gpuRuns: { gpu: [1] } });
  await runFedFirst("Max", [u, cpuTensor("uint8", [], [100])]);
  await runFedFirst("Relu", [x]);
  deepStrictEqual(Array.from(pad.data).filter((v) => v === 200).length >= 2 * 4 * 7 - 30, true);
});
