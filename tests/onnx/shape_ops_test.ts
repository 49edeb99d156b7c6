/** Shape-family operators (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout, Shape, Size,
 * Constant, ConstantOfShape, Range): shape rules, opset forms, CPU values and errors. */
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { shapeOps } from "../../src/onnx/ops/shape.ts";
import { UnsupportedFeatureError } from "../../src/onnx/graph.ts";
import { type AttrValue, NodeError, type OnnxNode, type TensorInfo } from "../../src/onnx/types.ts";

function mk(opType: string, attrs: Record<string, AttrValue> = {}, nOut = 1): OnnxNode {
  return {
    name: `${opType.toLowerCase()}_node`,
    opType,
    domain: "",
    inputs: [],
    outputs: Array.from({ length: nOut }, (_, i) => `out${i}`),
    attrs: new Map(Object.entries(attrs)),
  };
}

/** Runs infer (with constant inputs known) and cpu, checks they agree, returns cpu outputs. */
function run(
  opType: string,
  inputs: (CpuTensor | undefined)[],
  attrs: Record<string, AttrValue> = {},
  opset = 18,
  nOut = 1,
): CpuTensor[] {
  const op = shapeOps[opType];
  const ctx = { node: mk(opType, attrs, nOut), opset };
  const infos = inputs.map((t): TensorInfo | undefined =>
    t ? { dtype: t.dtype, shape: t.shape, value: t } : undefined
  );
  const inferred = op.infer(ctx, infos);
  const out = op.cpu(ctx, inputs);
  out.forEach((o, i) => {
    assertEquals([o.dtype, [...o.shape]], [inferred[i].dtype, [...inferred[i].shape]]);
  });
  return out;
}

const x = (shape: number[]) =>
  cpuTensor(
    "float32",
    shape,
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i),
  );
const i64 = (...v: number[]) => cpuTensor("int64", [v.length], v);
const scalar = (dtype: "float32" | "float16" | "int32" | "int64", v: number) =>
  cpuTensor(dtype, [], [v]);
const shapeOf = (t: CpuTensor) => [...t.shape];

Deno.test("shape ops: Reshape with 0 (copy), -1 (infer) and allowzero", () => {
  assertEquals(shapeOf(run("Reshape", [x([2, 3, 4]), i64(0, -1)])[0]), [2, 12]);
  assertEquals(shapeOf(run("Reshape", [x([2, 3, 4]), i64(4, 0, 2)])[0]), [4, 3, 2]);
  assertEquals(shapeOf(run("Reshape", [x([0, 3]), i64(3, 0)], { allowzero: 1 })[0]), [3, 0]);
  // Before opset 14 allowzero does not exist: 0 copies the input dim.
  assertEquals(shapeOf(run("Reshape", [x([2, 3]), i64(0, 3)], { allowzero: 1 }, 13)[0]), [2, 3]);
  // Opset < 5: the shape is an attribute.
  assertEquals(shapeOf(run("Reshape", [x([2, 3])], { shape: [3, -1] }, 4)[0]), [3, 2]);
  assertEquals(Array.from(run("Reshape", [x([2, 3]), i64(6)])[0].data), [0, 1, 2, 3, 4, 5]);
  throws(() => run("Reshape", [x([2, 3]), i64(-1, -1)]), /more than one -1/);
  throws(
    () => run("Reshape", [x([2, 3]), i64(4, -1)]),
    (e: Error) => e instanceof NodeError && /reshape_node.*cannot reshape \[2,3\]/.test(e.message),
  );
  throws(() => run("Reshape", [x([2, 3]), i64(5)]), /cannot reshape/);
});

Deno.test("shape ops: Flatten at every axis", () => {
  const t = x([2, 3, 4, 5]);
  const expect: [number, number[]][] = [[0, [1, 120]], [1, [2, 60]], [2, [6, 20]], [4, [120, 1]], [
    -1,
    [24, 5],
  ], [-4, [1, 120]]];
  for (const [axis, shape] of expect) {
    assertEquals(shapeOf(run("Flatten", [t], { axis })[0]), shape);
  }
  assertEquals(shapeOf(run("Flatten", [t])[0]), [2, 60]);
  throws(() => run("Flatten", [t], { axis: 5 }), /axis 5 out of range/);
});

Deno.test("shape ops: Squeeze and Unsqueeze in both opset forms", () => {
  const t = x([1, 3, 1, 2]);
  assertEquals(shapeOf(run("Squeeze", [t])[0]), [3, 2]);
  assertEquals(shapeOf(run("Squeeze", [t, i64(-2)])[0]), [1, 3, 2]);
  assertEquals(shapeOf(run("Squeeze", [t], { axes: [0] }, 11)[0]), [3, 1, 2]);
  throws(() => run("Squeeze", [t, i64(1)]), /cannot squeeze axis 1 of size 3/);
  assertEquals(shapeOf(run("Unsqueeze", [x([3, 4]), i64(2, 0)])[0]), [1, 3, 1, 4]);
  assertEquals(shapeOf(run("Unsqueeze", [x([3, 4]), i64(-1)])[0]), [3, 4, 1]);
  assertEquals(shapeOf(run("Unsqueeze", [x([]), i64(0)])[0]), [1]);
  assertEquals(shapeOf(run("Unsqueeze", [x([3])], { axes: [0, 2] }, 11)[0]), [1, 3, 1]);
  throws(() => run("Unsqueeze", [x([3]), i64(0, 0)]), /repeat an axis/);
  throws(() => run("Unsqueeze", [x([3]), i64(3)]), /axis 3 out of range/);
});

Deno.test("shape ops: Identity and inference Dropout (mask, old opsets, training mode)", () => {
  assertEquals(Array.from(run("Identity", [x([2])])[0].data), [0, 1]);
  const [y, mask] = run("Dropout", [x([2, 2]), scalar("float32", 0.3)], {}, 13, 2);
  assertEquals([Array.from(y.data), mask.dtype, Array.from(mask.data)], [[0, 1, 2, 3], "bool", [
    1,
    1,
    1,
    1,
  ]]);
  // Opset 7-9: the mask has the input's type.
  assertEquals(run("Dropout", [x([2])], { ratio: 0.5 }, 7, 2)[1].dtype, "float32");
  const on = cpuTensor("bool", [], [1]);
  assertEquals(Array.from(run("Dropout", [x([2]), scalar("float32", 0), on])[0].data), [0, 1]);
  throws(
    () => run("Dropout", [x([2]), scalar("float32", 0.5), on]),
    (e: Error) => e instanceof UnsupportedFeatureError,
  );
  throws(() => run("Dropout", [x([2]), undefined, on]), /training-mode dropout \(ratio 0.5\)/);
});

Deno.test("shape ops: Shape with start/end clamping, Size", () => {
  const t = x([2, 3, 4]);
  const shapeVals = (attrs: Record<string, AttrValue>, opset = 18) =>
    Array.from(run("Shape", [t], attrs, opset)[0].data);
  assertEquals(shapeVals({}), [2, 3, 4]);
  assertEquals(shapeVals({ start: 1 }), [3, 4]);
  assertEquals(shapeVals({ end: -1 }), [2, 3]);
  assertEquals(shapeVals({ start: -10, end: 10 }), [2, 3, 4]);
  assertEquals(shapeVals({ start: 2, end: 1 }), []);
  assertEquals(shapeVals({ start: 1 }, 13), [2, 3, 4]); // no start/end before opset 15
  const size = run("Size", [t])[0];
  assertEquals([size.dtype, shapeOf(size), Array.from(size.data)], ["int64", [], [24]]);
  // Shape's value is known at infer time (no GPU work).
  const info = shapeOps.Shape.infer({ node: mk("Shape"), opset: 18 }, [{
    dtype: "float32",
    shape: [5, 6],
  }]);
  assertEquals(Array.from(info[0].value!.data), [5, 6]);
});

Deno.test("shape ops: Constant forms and ConstantOfShape", () => {
  assertEquals(Array.from(run("Constant", [], { value_ints: [1, 2] })[0].data), [1, 2]);
  assertEquals(run("Constant", [], { value_float: 2.5 })[0].shape.length, 0);
  throws(
    () => run("Constant", [], { value_float: 1, value_int: 2 }),
    /exactly one value attribute/,
  );
  throws(() => run("Constant", [], { value_strings: ["a"] }), /string constants/);
  const zeros = run("ConstantOfShape", [i64(2, 3)])[0];
  assertEquals([zeros.dtype, shapeOf(zeros), Array.from(zeros.data)], ["float32", [2, 3], [
    0,
    0,
    0,
    0,
    0,
    0,
  ]]);
  const sevens = run("ConstantOfShape", [i64(2)], { value: cpuTensor("int32", [1], [7]) })[0];
  assertEquals([sevens.dtype, Array.from(sevens.data)], ["int32", [7, 7]]);
  const empty = run("ConstantOfShape", [i64(0)], { value: cpuTensor("int64", [1], [1]) })[0];
  assertEquals([shapeOf(empty), empty.data.length], [[0], 0]);
  const scalarOut = run("ConstantOfShape", [cpuTensor("int64", [0])])[0];
  assertEquals(shapeOf(scalarOut), []);
  throws(() => run("ConstantOfShape", [i64(-1)]), /invalid shape/);
});

Deno.test("shape ops: Range for every dtype, empty ranges and bad deltas", () => {
  const range = (
    dtype: "float32" | "float16" | "int32" | "int64",
    a: number,
    b: number,
    d: number,
  ) => run("Range", [scalar(dtype, a), scalar(dtype, b), scalar(dtype, d)])[0];
  assertEquals(Array.from(range("float32", 1, 2, 0.25).data), [1, 1.25, 1.5, 1.75]);
  assertEquals(Array.from(range("int32", 10, 4, -3).data), [10, 7]);
  assertEquals(Array.from(range("int64", 0, 5, 2).data), [0, 2, 4]);
  assertEquals(range("int64", 5, 0, 1).shape, [0]);
  const half = range("float16", 0.1, 1, 0.3);
  const [s, d] = [roundToF16(0.1), roundToF16(0.3)]; // inputs arrive rounded to half
  assertEquals([half.dtype, Array.from(half.data)], [
    "float16",
    [0, 1, 2].map((i) => roundToF16(s + i * d)),
  ]);
  throws(() => range("int32", 0, 5, 0), /delta is 0/);
  throws(
    () => run("Range", [scalar("int32", 0), scalar("int64", 5), scalar("int32", 1)]),
    /same dtype/,
  );
});
