/** Shape-family operators (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout, Shape, Size,
 * Constant, ConstantOfShape, Range): shape rules, opset forms, values and errors, each node run
 * as a model on the GPU and folded on the CPU (tests/onnx/harness.ts). */
import { deepStrictEqual as assertEquals, rejects, throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { shapeOps } from "../../src/onnx/ops/shape.ts";
import { UnsupportedFeatureError } from "../../src/onnx/graph.ts";
import type { BuilderAttr } from "../../src/onnx/builder.ts";
import { NodeError } from "../../src/onnx/types.ts";
import { opNode, runNode } from "./harness.ts";

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

Deno.test("shape ops: Reshape with 0 (copy), -1 (infer) and allowzero", async () => {
  assertEquals(shapeOf((await runNode("Reshape", [x([2, 3, 4]), i64(0, -1)])).cpu[0]), [2, 12]);
  assertEquals(shapeOf((await runNode("Reshape", [x([2, 3, 4]), i64(4, 0, 2)])).cpu[0]), [4, 3, 2]);
  assertEquals(
    shapeOf((await runNode("Reshape", [x([0, 3]), i64(3, 0)], { attrs: { allowzero: 1 } })).cpu[0]),
    [3, 0],
  );
  // Before opset 14 allowzero does not exist: 0 copies the input dim.
  assertEquals(
    shapeOf(
      (await runNode("Reshape", [x([2, 3]), i64(0, 3)], { attrs: { allowzero: 1 }, opset: 13 }))
        .cpu[0],
    ),
    [2, 3],
  );
  // Opset < 5: the shape is an attribute.
  assertEquals(
    shapeOf(
      (await runNode("Reshape", [x([2, 3])], { attrs: { shape: [3, -1] }, opset: 4 })).cpu[0],
    ),
    [3, 2],
  );
  assertEquals(Array.from((await runNode("Reshape", [x([2, 3]), i64(6)])).cpu[0].data), [
    0,
    1,
    2,
    3,
    4,
    5,
  ]);
  await rejects(
    runNode("Reshape", [x([2, 3]), i64(-1, -1)]),
    /more than one -1/,
  );
  await rejects(
    runNode("Reshape", [x([2, 3]), i64(4, -1)]),
    (e: Error) => e instanceof NodeError && /Reshape_0.*cannot reshape \[2,3\]/.test(e.message),
  );
  await rejects(
    runNode("Reshape", [x([2, 3]), i64(5)]),
    /cannot reshape/,
  );
});

Deno.test("shape ops: Flatten at every axis", async () => {
  const t = x([2, 3, 4, 5]);
  const expect: [number, number[]][] = [[0, [1, 120]], [1, [2, 60]], [2, [6, 20]], [4, [120, 1]], [
    -1,
    [24, 5],
  ], [-4, [1, 120]]];
  for (const [axis, shape] of expect) {
    assertEquals(shapeOf((await runNode("Flatten", [t], { attrs: { axis } })).cpu[0]), shape);
  }
  assertEquals(shapeOf((await runNode("Flatten", [t])).cpu[0]), [2, 60]);
  await rejects(
    runNode("Flatten", [t], { attrs: { axis: 5 } }),
    /axis 5 out of range/,
  );
});

Deno.test("shape ops: Squeeze and Unsqueeze in both opset forms", async () => {
  const t = x([1, 3, 1, 2]);
  assertEquals(shapeOf((await runNode("Squeeze", [t])).cpu[0]), [3, 2]);
  assertEquals(shapeOf((await runNode("Squeeze", [t, i64(-2)])).cpu[0]), [1, 3, 2]);
  assertEquals(
    shapeOf((await runNode("Squeeze", [t], { attrs: { axes: [0] }, opset: 11 })).cpu[0]),
    [3, 1, 2],
  );
  await rejects(
    runNode("Squeeze", [t, i64(1)]),
    /cannot squeeze axis 1 of size 3/,
  );
  assertEquals(shapeOf((await runNode("Unsqueeze", [x([3, 4]), i64(2, 0)])).cpu[0]), [1, 3, 1, 4]);
  assertEquals(shapeOf((await runNode("Unsqueeze", [x([3, 4]), i64(-1)])).cpu[0]), [3, 4, 1]);
  assertEquals(shapeOf((await runNode("Unsqueeze", [x([]), i64(0)])).cpu[0]), [1]);
  assertEquals(
    shapeOf((await runNode("Unsqueeze", [x([3])], { attrs: { axes: [0, 2] }, opset: 11 })).cpu[0]),
    [1, 3, 1],
  );
  await rejects(
    runNode("Unsqueeze", [x([3]), i64(0, 0)]),
    /repeat an axis/,
  );
  await rejects(
    runNode("Unsqueeze", [x([3]), i64(3)]),
    /axis 3 out of range/,
  );
});

Deno.test("shape ops: Identity and inference Dropout (mask, old opsets, training mode)", async () => {
  assertEquals(Array.from((await runNode("Identity", [x([2])])).cpu[0].data), [0, 1]);
  const [y, mask] =
    (await runNode("Dropout", [x([2, 2]), scalar("float32", 0.3)], { opset: 13, outputs: 2 })).cpu;
  assertEquals([Array.from(y.data), mask.dtype, Array.from(mask.data)], [[0, 1, 2, 3], "bool", [
    1,
    1,
    1,
    1,
  ]]);
  // Opset 7-9: the mask has the input's type.
  assertEquals(
    (await runNode("Dropout", [x([2])], { attrs: { ratio: 0.5 }, opset: 7, outputs: 2 })).cpu[1]
      .dtype,
    "float32",
  );
  const on = cpuTensor("bool", [], [1]);
  assertEquals(
    Array.from((await runNode("Dropout", [x([2]), scalar("float32", 0), on])).cpu[0].data),
    [0, 1],
  );
  await rejects(
    runNode("Dropout", [x([2]), scalar("float32", 0.5), on]),
    (e: Error) => e instanceof UnsupportedFeatureError,
  );
  await rejects(
    runNode("Dropout", [x([2]), undefined, on]),
    /training-mode dropout \(ratio 0.5\)/,
  );
});

Deno.test("shape ops: Shape with start/end clamping, Size", async () => {
  const t = x([2, 3, 4]);
  const shapeVals = async (attrs: Record<string, BuilderAttr>, opset = 18) =>
    Array.from((await runNode("Shape", [t], { attrs, opset })).cpu[0].data);
  assertEquals(await shapeVals({}), [2, 3, 4]);
  assertEquals(await shapeVals({ start: 1 }), [3, 4]);
  assertEquals(await shapeVals({ end: -1 }), [2, 3]);
  assertEquals(await shapeVals({ start: -10, end: 10 }), [2, 3, 4]);
  assertEquals(await shapeVals({ start: 2, end: 1 }), []);
  assertEquals(await shapeVals({ start: 1 }, 13), [2, 3, 4]); // no start/end before opset 15
  const size = (await runNode("Size", [t])).cpu[0];
  assertEquals([size.dtype, shapeOf(size), Array.from(size.data)], ["int64", [], [24]]);
  // Shape's value is known at infer time (no GPU work).
  const info = shapeOps.Shape.infer({ node: opNode("Shape"), opset: 18 }, [{
    dtype: "float32",
    shape: [5, 6],
  }]);
  assertEquals(Array.from(info[0].value!.data), [5, 6]);
});

Deno.test("shape ops: Constant forms and ConstantOfShape", async () => {
  assertEquals(
    Array.from((await runNode("Constant", [], { attrs: { value_ints: [1, 2] } })).cpu[0].data),
    [1, 2],
  );
  assertEquals(
    (await runNode("Constant", [], { attrs: { value_float: 2.5 } })).cpu[0].shape.length,
    0,
  );
  await rejects(
    runNode("Constant", [], { attrs: { value_float: 1, value_int: 2 } }),
    /exactly one value attribute/,
  );
  // String attributes cannot be written by GraphBuilder: the op itself.
  throws(
    () =>
      shapeOps.Constant.infer(
        { node: opNode("Constant", { value_strings: ["a"] }), opset: 18 },
        [],
      ),
    /string constants/,
  );
  const zeros = (await runNode("ConstantOfShape", [i64(2, 3)])).cpu[0];
  assertEquals([zeros.dtype, shapeOf(zeros), Array.from(zeros.data)], ["float32", [2, 3], [
    0,
    0,
    0,
    0,
    0,
    0,
  ]]);
  const sevens =
    (await runNode("ConstantOfShape", [i64(2)], { attrs: { value: cpuTensor("int32", [1], [7]) } }))
      .cpu[0];
  assertEquals([sevens.dtype, Array.from(sevens.data)], ["int32", [7, 7]]);
  const empty =
    (await runNode("ConstantOfShape", [i64(0)], { attrs: { value: cpuTensor("int64", [1], [1]) } }))
      .cpu[0];
  assertEquals([shapeOf(empty), empty.data.length], [[0], 0]);
  const scalarOut = (await runNode("ConstantOfShape", [cpuTensor("int64", [0])])).cpu[0];
  assertEquals(shapeOf(scalarOut), []);
  await rejects(
    runNode("ConstantOfShape", [i64(-1)]),
    /invalid shape/,
  );
});

Deno.test("shape ops: Range for every dtype, empty ranges and bad deltas", async () => {
  const range = async (
    dtype: "float32" | "float16" | "int32" | "int64",
    a: number,
    b: number,
    d: number,
  ) => (await runNode("Range", [scalar(dtype, a), scalar(dtype, b), scalar(dtype, d)])).cpu[0];
  assertEquals(Array.from((await range("float32", 1, 2, 0.25)).data), [1, 1.25, 1.5, 1.75]);
  assertEquals(Array.from((await range("int32", 10, 4, -3)).data), [10, 7]);
  assertEquals(Array.from((await range("int64", 0, 5, 2)).data), [0, 2, 4]);
  assertEquals((await range("int64", 5, 0, 1)).shape, [0]);
  const half = await range("float16", 0.1, 1, 0.3);
  const [s, d] = [roundToF16(0.1), roundToF16(0.3)]; // inputs arrive rounded to half
  assertEquals([half.dtype, Array.from(half.data)], [
    "float16",
    [0, 1, 2].map((i) => roundToF16(s + i * d)),
  ]);
  await rejects(range("int32", 0, 5, 0), /delta is 0/);
  await rejects(
    runNode("Range", [scalar("int32", 0), scalar("int64", 5), scalar("int32", 1)]),
    /same dtype/,
  );
});
