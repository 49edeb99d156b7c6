/** Movement operators (Transpose, Concat, Slice, Split, Gather, GatherElements, Expand, Tile, Pad,
 * DepthToSpace, SpaceToDepth): opset forms, ONNX edge cases, and the GPU path against the CPU
 * path, each node run as a model (tests/onnx/harness.ts). */
import "../gpu_teardown.ts";
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { movementOps } from "../../src/onnx/ops/movement.ts";
import { NodeError } from "../../src/onnx/types.ts";
import { opNode, runNode } from "./harness.ts";

const iota = (shape: number[], dtype: "float32" | "int64" | "int32" | "float16" = "float32") =>
  cpuTensor(dtype, shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i));
const i64 = (...v: number[]) => cpuTensor("int64", [v.length], v);
const values = (t: CpuTensor) => Array.from(t.data);

Deno.test("Transpose: default perm reverses; bad perm names the node", async () => {
  const [y] = (await runNode("Transpose", [iota([2, 3, 4])])).cpu;
  assertEquals([...y.shape], [4, 3, 2]);
  assertEquals(values(y).slice(0, 4), [0, 12, 4, 16]);
  await runNode("Transpose", [iota([2, 3, 4], "int64")], { attrs: { perm: [1, 0, 2] } });
  throws(() =>
    movementOps.Transpose.infer(
      { node: opNode("Transpose", { perm: [0, 0] }, 1, 1), opset: 13 },
      [{ dtype: "float32", shape: [2, 2] }],
    ), (e: Error) => e instanceof NodeError && /transpose_node/.test(e.message));
});

Deno.test("Concat: negative axis, zero-sized inputs, mismatched shapes rejected", async () => {
  const [y] =
    (await runNode("Concat", [iota([2, 1]), iota([2, 0]), iota([2, 3])], { attrs: { axis: -1 } }))
      .cpu;
  assertEquals([...y.shape], [2, 4]);
  assertEquals(values(y), [0, 0, 1, 2, 1, 3, 4, 5]);
  const [z] = (await runNode("Concat", [iota([0, 3]), iota([0, 3])], { attrs: { axis: 0 } })).cpu;
  assertEquals([...z.shape], [0, 3]);
  throws(() =>
    movementOps.Concat.infer({ node: opNode("Concat", { axis: 0 }, 2, 1), opset: 13 }, [
      { dtype: "float32", shape: [2, 3] },
      { dtype: "float32", shape: [2, 4] },
    ]), NodeError);
});

Deno.test("Slice: attribute form (opset < 10), input form, negative steps, INT64 sentinels", async () => {
  const x = iota([3, 5]);
  const [a] =
    (await runNode("Slice", [x], { attrs: { starts: [1], ends: [1000], axes: [1] }, opset: 1 }))
      .cpu;
  assertEquals([...a.shape], [3, 4]);
  const [b] =
    (await runNode("Slice", [x], { attrs: { starts: [0, -2], ends: [2, 5] }, opset: 9 })).cpu;
  assertEquals(values(b), [3, 4, 8, 9]);
  const big = 9223372036854775807;
  const [c] =
    (await runNode("Slice", [x, i64(-1), i64(-big), i64(-1), i64(-2)], { opset: 13 })).cpu;
  assertEquals(values(c), [4, 2, 0, 9, 7, 5, 14, 12, 10]);
  const [d] =
    (await runNode("Slice", [x, i64(1, big), i64(big, 0), undefined, undefined], { opset: 13 }))
      .cpu;
  assertEquals([...d.shape], [2, 0]);
  const [e] =
    (await runNode("Slice", [iota([4], "int64"), i64(-big), i64(big)], { opset: 11 })).cpu;
  assertEquals(values(e), [0, 1, 2, 3]);
  throws(() =>
    movementOps.Slice.infer({ node: opNode("Slice", {}, 5, 1), opset: 13 }, [
      { dtype: "float32", shape: [3] },
      { dtype: "int64", shape: [1], value: i64(0) },
      { dtype: "int64", shape: [1] }, // not constant
    ]), /ends must be known/);
});

Deno.test("Split: attribute (opset 11), input (13), num_outputs (18), uneven and zero splits", async () => {
  const x = iota([7, 2]);
  const a = (await runNode("Split", [x], { attrs: { split: [3, 4] }, opset: 11, outputs: 2 })).cpu;
  assertEquals(a.map((t) => t.shape[0]), [3, 4]);
  const b = (await runNode("Split", [x, i64(0, 7, 0)], { opset: 13, outputs: 3 })).cpu;
  assertEquals(b.map((t) => t.shape[0]), [0, 7, 0]);
  const c = (await runNode("Split", [x], { attrs: { num_outputs: 3 }, outputs: 3 })).cpu;
  assertEquals(c.map((t) => t.shape[0]), [3, 3, 1]);
  const d =
    (await runNode("Split", [iota([2, 6])], { attrs: { axis: -1 }, opset: 13, outputs: 3 })).cpu;
  assertEquals(d.map((t) => values(t)), [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10, 11]]);
  throws(() =>
    movementOps.Split.infer({ node: opNode("Split", {}, 2, 2), opset: 13 }, [
      { dtype: "float32", shape: [5] },
      { dtype: "int64", shape: [2], value: i64(2, 2) },
    ]), /does not cover/);
});

Deno.test("Gather / GatherElements: int64 and float data, negative axis and indices", async () => {
  const [a] =
    (await runNode("Gather", [iota([3, 4], "int64"), i64(-1, 0)], { attrs: { axis: -1 } })).cpu;
  assertEquals(values(a), [3, 0, 7, 4, 11, 8]);
  const [b] =
    (await runNode("Gather", [iota([5, 2]), cpuTensor("int32", [2, 2], [4, 0, -5, 1])])).cpu;
  assertEquals([...b.shape], [2, 2, 2]);
  const [s] = (await runNode("Gather", [iota([5]), cpuTensor("int64", [], [2])])).cpu;
  assertEquals([...s.shape], []);
  assertEquals(values(s), [2]);
  const [c] =
    (await runNode("GatherElements", [iota([2, 3]), cpuTensor("int64", [2, 2], [2, -3, 1, 1])], {
      attrs: { axis: 1 },
    })).cpu;
  assertEquals(values(c), [2, 0, 4, 4]);
  throws(() =>
    movementOps.Gather.cpu({ node: opNode("Gather", {}, 2, 1), opset: 13 }, [
      iota([3]),
      i64(3),
    ]), (e: Error) => e instanceof NodeError && /out of range/.test(e.message));
});

Deno.test("Expand (bidirectional) and Tile", async () => {
  const [a] = (await runNode("Expand", [iota([3, 1]), i64(2, 1, 4)])).cpu;
  assertEquals([...a.shape], [2, 3, 4]);
  // The shape may be smaller than the input: the input's axes win.
  const [b] = (await runNode("Expand", [iota([2, 3]), i64(1)], { opset: 13 })).cpu;
  assertEquals([...b.shape], [2, 3]);
  throws(() =>
    movementOps.Expand.infer({ node: opNode("Expand", {}, 2, 1), opset: 13 }, [
      { dtype: "float32", shape: [2, 3] },
      { dtype: "int64", shape: [1], value: i64(2) },
    ]), NodeError);
  const [t] = (await runNode("Tile", [iota([2, 2], "int32"), i64(2, 3)])).cpu;
  assertEquals([...t.shape], [4, 6]);
  assertEquals(values(t).slice(0, 6), [0, 1, 0, 1, 0, 1]);
});

Deno.test("Pad: attribute form (opset 2), inputs (11), axes incl. negative (18), every mode", async () => {
  const x = iota([2, 3]);
  const [a] =
    (await runNode("Pad", [x], { attrs: { pads: [0, 1, 0, 0], value: 9 }, opset: 2 })).cpu;
  assertEquals(values(a), [9, 0, 1, 2, 9, 3, 4, 5]);
  const [b] =
    (await runNode("Pad", [x, i64(1, 0, 0, 2), cpuTensor("float32", [], [-1])], { opset: 11 })).cpu;
  assertEquals([...b.shape], [3, 5]);
  assertEquals(values(b).slice(0, 6), [-1, -1, -1, -1, -1, 0]);
  const [c] =
    (await runNode("Pad", [x, i64(2, 1), undefined, i64(-1)], { attrs: { mode: "reflect" } })).cpu;
  assertEquals(values(c), [2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4]);
  const [d] =
    (await runNode("Pad", [x, i64(1, 1), undefined, i64(0)], { attrs: { mode: "edge" } })).cpu;
  assertEquals(values(d), [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]);
  const [e] =
    (await runNode("Pad", [x, i64(0, 4, 0, 0)], { attrs: { mode: "wrap" }, opset: 19 })).cpu;
  assertEquals(values(e).slice(0, 7), [2, 0, 1, 2, 0, 1, 2]);
  // Negative pads crop; float16 fill values are rounded to half precision.
  const [f] = (await runNode("Pad", [x, i64(0, -1, -1, 0)], { opset: 13 })).cpu;
  assertEquals(values(f), [1, 2]);
  const [g] = (await runNode("Pad", [iota([1], "float16")], {
    attrs: { pads: [1, 0], value: 0.1 },
    opset: 2,
  })).cpu;
  assertEquals(values(g), [roundToF16(0.1), 0]);
});

Deno.test("DepthToSpace (DCR/CRD) and SpaceToDepth round trip", async () => {
  const x = iota([1, 8, 2, 3]);
  const [dcr] = (await runNode("DepthToSpace", [x], { attrs: { blocksize: 2 } })).cpu;
  const [crd] = (await runNode("DepthToSpace", [x], { attrs: { blocksize: 2, mode: "CRD" } })).cpu;
  assertEquals([...dcr.shape], [1, 2, 4, 6]);
  assertEquals(values(dcr).slice(0, 4), [0, 12, 1, 13]);
  assertEquals(values(crd).slice(0, 4), [0, 6, 1, 7]);
  const [back] = (await runNode("SpaceToDepth", [dcr], { attrs: { blocksize: 2 } })).cpu;
  assertEquals(values(back), values(x));
});
