/** Indexing operators (TopK, GatherND, ScatterND, ScatterElements, Trilu, EyeLike, CumSum,
 * Hardmax, OneHot, Einsum, NonMaxSuppression): shape inference, opset forms, ONNX examples run
 * as single-node models on the GPU and folded on the CPU (tests/onnx/harness.ts), attribute
 * errors naming the node, constant out-of-range indices rejected at plan time, GPU-computed ones
 * reported through the plan's status slot, and NMS refusing to run inside a plan. */
import "../gpu_teardown.ts";
import { deepStrictEqual as assertEquals, ok, rejects, throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { UnsupportedError } from "../../src/onnx/graph.ts";
import { loadModelBytes } from "../../src/onnx/mod.ts";
import { indexingOps } from "../../src/onnx/ops/indexing.ts";
import { ONNX_TYPE, readTensorFile } from "../../src/onnx/tensor_proto.ts";
import { parseModel } from "../../src/onnx/parse.ts";
import { sharedPath } from "../helpers.ts";
import { type AttrValue, NodeError } from "../../src/onnx/types.ts";
import { infosOf, namesNode, opNode, runNode } from "./harness.ts";

const f32 = (shape: number[], v: number[]) => cpuTensor("float32", shape, v);
const i64 = (shape: number[], v: number[]) => cpuTensor("int64", shape, v);
const values = (t: CpuTensor) => Array.from(t.data);

Deno.test("TopK: k as attribute (opset 1) and input, largest/smallest, ties, bad k", async () => {
  const x = f32([3, 4], [0, 1, 2, 3, 4, 5, 6, 7, 11, 10, 9, 8]);
  const [v, i] =
    (await runNode("TopK", [x], { attrs: { k: 3, axis: 1 }, opset: 1, outputs: 2 })).cpu;
  assertEquals([...v.shape], [3, 3]);
  assertEquals(values(v), [3, 2, 1, 7, 6, 5, 11, 10, 9]);
  assertEquals(i.dtype, "int64");
  assertEquals(values(i), [3, 2, 1, 3, 2, 1, 0, 1, 2]);
  const [s, si] = (await runNode("TopK", [x, i64([1], [2])], {
    attrs: { axis: 0, largest: 0 },
    opset: 11,
    outputs: 2,
  })).cpu;
  assertEquals(values(s), [0, 1, 2, 3, 4, 5, 6, 7]);
  assertEquals(values(si), [0, 0, 0, 0, 1, 1, 1, 1]);
  // Ties: the lower index first, for largest and smallest alike.
  const tied = f32([6], [2, 1, 2, 1, 2, 1]);
  assertEquals(
    values((await runNode("TopK", [tied, i64([1], [4])], { opset: 11, outputs: 2 })).cpu[1]),
    [0, 2, 4, 1],
  );
  const small =
    (await runNode("TopK", [tied, i64([1], [4])], { attrs: { largest: 0 }, opset: 11, outputs: 2 }))
      .cpu;
  assertEquals(values(small[1]), [1, 3, 5, 0]);
  await runNode(
    "TopK",
    [cpuTensor("int32", [2, 5], [5, 1, 5, 2, 0, 3, 3, 3, 9, 9]), i64([1], [5])],
    {
      attrs: { sorted: 0 },
      opset: 11,
      outputs: 2,
    },
  );
  const infer = (k: number, attrs: Record<string, AttrValue> = {}) =>
    indexingOps.TopK.infer(
      { node: opNode("TopK", attrs, 2, 2), opset: 11 },
      infosOf("TopK", [x, i64([1], [k])]),
    );
  throws(() => infer(5), namesNode("TopK", /k 5 is outside \[0, 4\]/));
  throws(() => infer(-1), namesNode("TopK", /k -1/));
  throws(() => infer(2, { axis: 2 }), namesNode("TopK", /axis 2 out of range/));
  throws(() => infer(2, { largest: 2 }), namesNode("TopK", /largest 2/));
  throws(
    () =>
      indexingOps.TopK.infer({ node: opNode("TopK", {}, 2, 2), opset: 11 }, [
        { dtype: "float32", shape: [4] },
        { dtype: "int64", shape: [1] },
      ]),
    namesNode("TopK", /K must be known/),
  );
});

Deno.test("GatherND: ONNX examples, batch_dims, shapes and constant out-of-range indices", async () => {
  const data = cpuTensor("int32", [2, 2], [0, 1, 2, 3]);
  assertEquals(values((await runNode("GatherND", [data, i64([2, 2], [0, 0, 1, 1])])).cpu[0]), [
    0,
    3,
  ]);
  const [rows] = (await runNode("GatherND", [data, i64([2, 1], [1, 0])])).cpu;
  assertEquals([...rows.shape, ...values(rows)], [2, 2, 2, 3, 0, 1]);
  const cube = f32([2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7]);
  const [b1] =
    (await runNode("GatherND", [cube, i64([2, 1], [1, 0])], { attrs: { batch_dims: 1 } })).cpu;
  assertEquals([...b1.shape, ...values(b1)], [2, 2, 2, 3, 4, 5]);
  const [neg] = (await runNode("GatherND", [cube, i64([1, 3], [-1, 0, -1])])).cpu;
  assertEquals(values(neg), [5]);
  const infer = (indices: CpuTensor, attrs: Record<string, AttrValue> = {}, known = true) =>
    indexingOps.GatherND.infer(
      { node: opNode("GatherND", attrs, 2, 1), opset: 13 },
      infosOf("GatherND", [cube, indices], known ? [1] : []),
    );
  assertEquals(infer(i64([4, 5, 2], new Array(40).fill(0)))[0].shape, [4, 5, 2]);
  throws(
    () => infer(i64([1, 3], [0, 2, 0])),
    namesNode("GatherND", /index 2 is outside \[-2, 2\)/),
  );
  throws(() => infer(i64([1, 1], [-3])), namesNode("GatherND", /index -3/));
  // Unknown (GPU) indices are not checked at plan time.
  assertEquals(infer(i64([1, 1], [7]), {}, false)[0].shape, [1, 2, 2]);
  throws(() => infer(i64([1, 4], [0, 0, 0, 0])), namesNode("GatherND", /tuples of length 4/));
  throws(() => infer(i64([2, 1], [0, 0]), { batch_dims: 3 }), namesNode("GatherND", /batch_dims/));
  throws(
    () => infer(cpuTensor("float32", [1, 1], [0])),
    namesNode("GatherND", /indices must be int32 or int64/),
  );
});

Deno.test("ScatterND: ONNX examples for every reduction, errors name the node", async () => {
  const data = f32([8], [1, 2, 3, 4, 5, 6, 7, 8]);
  const idx = i64([4, 1], [4, 3, 1, 7]);
  const upd = f32([4], [9, 10, 11, 12]);
  assertEquals(values((await runNode("ScatterND", [data, idx, upd])).cpu[0]), [
    1,
    11,
    3,
    10,
    9,
    6,
    7,
    12,
  ]);
  const dup = i64([2, 1], [0, 0]);
  const two = f32([2], [5, 6]);
  const expect: Record<string, number> = { add: 12, mul: 30, max: 6, min: 1 };
  for (const [reduction, first] of Object.entries(expect)) {
    const [y] = (await runNode("ScatterND", [data, dup, two], { attrs: { reduction } })).cpu;
    assertEquals(values(y)[0], first, reduction);
  }
  // Slices: rows of a [4, 2] matrix.
  const m = f32([4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  const [rows] = (await runNode("ScatterND", [m, i64([1, 1], [-2]), f32([1, 2], [0, 0])])).cpu;
  assertEquals(values(rows), [1, 2, 3, 4, 0, 0, 7, 8]);
  const infer = (attrs: Record<string, AttrValue>, indices: CpuTensor, updates: CpuTensor) =>
    indexingOps.ScatterND.infer(
      { node: opNode("ScatterND", attrs, 3, 1), opset: 18 },
      infosOf("ScatterND", [data, indices, updates], [1]),
    );
  throws(() => infer({ reduction: "avg" }, idx, upd), namesNode("ScatterND", /unknown reduction/));
  throws(() => infer({}, i64([1, 1], [8]), f32([1], [0])), namesNode("ScatterND", /index 8/));
  throws(() => infer({}, idx, f32([3], [0, 0, 0])), namesNode("ScatterND", /updates \[3\]/));
  throws(
    () => infer({}, idx, cpuTensor("int64", [4], [0, 0, 0, 0])),
    namesNode("ScatterND", /updates are int64/),
  );
});

Deno.test("ScatterElements (and Scatter): axis, negative indices, reductions, errors", async () => {
  const data = f32([3, 3], new Array(9).fill(0));
  const idx = i64([2, 3], [1, 0, 2, 0, 2, 1]);
  const upd = f32([2, 3], [1, 1.1, 1.2, 2, 2.1, 2.2]);
  const [y] = (await runNode("ScatterElements", [data, idx, upd])).cpu;
  assertEquals(values(y).map((v) => Math.round(v * 10) / 10), [2, 1.1, 0, 1, 0, 2.2, 0, 2.1, 1.2]);
  const row = f32([1, 5], [1, 2, 3, 4, 5]);
  const [a] =
    (await runNode("ScatterElements", [row, i64([1, 2], [1, -2]), f32([1, 2], [10, 20])], {
      attrs: { axis: 1 },
    })).cpu;
  assertEquals(values(a), [1, 10, 3, 20, 5]);
  const [s] = (await runNode("Scatter", [row, i64([1, 2], [1, 3]), f32([1, 2], [10, 20])], {
    attrs: { axis: 1 },
    opset: 9,
  })).cpu;
  assertEquals(values(s), [1, 10, 3, 20, 5]);
  const [add] = (await runNode("ScatterElements", [row, i64([1, 2], [1, 1]), f32([1, 2], [1, 2])], {
    attrs: {
      axis: 1,
      reduction: "add",
    },
  })).cpu;
  assertEquals(values(add), [1, 5, 3, 4, 5]);
  const infer = (attrs: Record<string, AttrValue>, indices: CpuTensor) =>
    indexingOps.ScatterElements.infer(
      { node: opNode("ScatterElements", attrs, 3, 1), opset: 18 },
      infosOf("ScatterElements", [row, indices, f32(indices.shape as number[], [0, 0])], [1]),
    );
  throws(() => infer({ axis: 1 }, i64([1, 2], [0, 5])), namesNode("ScatterElements", /index 5/));
  throws(() => infer({ axis: 1 }, i64([1, 2], [-6, 0])), namesNode("ScatterElements", /-6/));
  throws(() => infer({ axis: 2 }, i64([1, 2], [0, 0])), namesNode("ScatterElements", /axis 2/));
  throws(
    () => infer({ axis: 1, reduction: "sum" }, i64([1, 2], [0, 0])),
    namesNode("ScatterElements", /unknown reduction 'sum'/),
  );
  throws(
    () => infer({ axis: 1 }, i64([2, 1], [0, 0])),
    namesNode("ScatterElements", /do not fit data/),
  );
});

Deno.test("Trilu, EyeLike: k input and attribute, upper/lower, dtype attribute", async () => {
  const x = f32([3, 4], Array.from({ length: 12 }, (_, i) => i + 1));
  assertEquals(values((await runNode("Trilu", [x])).cpu[0]), [
    1,
    2,
    3,
    4,
    0,
    6,
    7,
    8,
    0,
    0,
    11,
    12,
  ]);
  const [low] = (await runNode("Trilu", [x, i64([], [-1])], { attrs: { upper: 0 } })).cpu;
  assertEquals(values(low), [0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0]);
  const [eye] = (await runNode("EyeLike", [x], { attrs: { k: 1 } })).cpu;
  assertEquals(values(eye), [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  const [ieye] = (await runNode("EyeLike", [x], { attrs: { dtype: ONNX_TYPE.INT32 } })).cpu;
  assertEquals(ieye.dtype, "int32");
  throws(
    () =>
      indexingOps.Trilu.infer({ node: opNode("Trilu", {}, 1, 1), opset: 14 }, [{
        dtype: "float32",
        shape: [3],
      }]),
    namesNode("Trilu", /rank >= 2/),
  );
  throws(
    () => indexingOps.EyeLike.infer({ node: opNode("EyeLike", { dtype: 8 }, 1, 1), opset: 9 }, [x]),
    namesNode("EyeLike", /dtype string is not supported/),
  );
});

Deno.test("CumSum, Hardmax, OneHot: ONNX examples and attribute errors", async () => {
  const x = f32([5], [1, 2, 3, 4, 5]);
  const axis0 = i64([], [0]);
  assertEquals(values((await runNode("CumSum", [x, axis0])).cpu[0]), [1, 3, 6, 10, 15]);
  const [er] = (await runNode("CumSum", [x, axis0], { attrs: { exclusive: 1, reverse: 1 } })).cpu;
  assertEquals(values(er), [14, 12, 9, 5, 0]);
  const m = cpuTensor("int32", [2, 3], [1, 2, 3, 4, 5, 6]);
  assertEquals(values((await runNode("CumSum", [m, i64([1], [-1])])).cpu[0]), [1, 3, 6, 4, 9, 15]);
  throws(
    () =>
      indexingOps.CumSum.infer(
        { node: opNode("CumSum", { exclusive: 2 }, 2, 1), opset: 14 },
        infosOf("CumSum", [x, axis0]),
      ),
    namesNode("CumSum", /'exclusive' is 2/),
  );

  const h = f32([2, 2, 2], [1, 9, 3, 4, 5, 5, 0, 1]);
  assertEquals(values((await runNode("Hardmax", [h], { opset: 13 })).cpu[0]), [
    0,
    1,
    0,
    1,
    1,
    0,
    0,
    1,
  ]);
  // Opset 11: coerced to 2-D at axis 1, so each [2, 2] block is one line.
  assertEquals(values((await runNode("Hardmax", [h], { opset: 11 })).cpu[0]), [
    0,
    1,
    0,
    0,
    1,
    0,
    0,
    0,
  ]);
  assertEquals(values((await runNode("Hardmax", [h], { attrs: { axis: 0 }, opset: 13 })).cpu[0]), [
    0,
    1,
    1,
    1,
    1,
    0,
    0,
    0,
  ]);

  const ids = i64([3], [1, -1, 7]);
  const vals = f32([2], [0, 3]);
  const [oh] = (await runNode("OneHot", [ids, f32([], [4]), vals])).cpu;
  assertEquals([...oh.shape], [3, 4]);
  assertEquals(values(oh), [0, 3, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]);
  const [oh0] = (await runNode("OneHot", [ids, i64([1], [2]), cpuTensor("int64", [2], [5, 6])], {
    attrs: { axis: 0 },
  })).cpu;
  assertEquals([...oh0.shape, ...values(oh0)], [2, 3, 5, 5, 5, 6, 6, 5]);
  const inferOneHot = (depth: number, attrs: Record<string, AttrValue> = {}) =>
    indexingOps.OneHot.infer(
      { node: opNode("OneHot", attrs, 3, 1), opset: 11 },
      infosOf("OneHot", [ids, i64([], [depth]), vals]),
    );
  throws(() => inferOneHot(0), namesNode("OneHot", /depth 0 must be at least 1/));
  throws(() => inferOneHot(3, { axis: 2 }), namesNode("OneHot", /axis 2 out of range/));
});

Deno.test("Einsum: shapes, implicit output, ellipsis, traces; bad equations name the node", async () => {
  const a = f32([2, 3], [1, 2, 3, 4, 5, 6]);
  const b = f32([3, 2], [1, 0, 0, 1, 1, 1]);
  assertEquals(
    values((await runNode("Einsum", [a, b], { attrs: { equation: "ij,jk->ik" } })).cpu[0]),
    [4, 5, 10, 11],
  );
  assertEquals(values((await runNode("Einsum", [a], { attrs: { equation: "ij->ji" } })).cpu[0]), [
    1,
    4,
    2,
    5,
    3,
    6,
  ]);
  assertEquals(values((await runNode("Einsum", [a], { attrs: { equation: "ij->" } })).cpu[0]), [
    21,
  ]);
  const sq = f32([2, 2], [1, 2, 3, 4]);
  assertEquals(values((await runNode("Einsum", [sq], { attrs: { equation: "ii" } })).cpu[0]), [5]);
  assertEquals(values((await runNode("Einsum", [sq], { attrs: { equation: "ii->i" } })).cpu[0]), [
    1,
    4,
  ]);
  const [bmm] = (await runNode("Einsum", [f32([2, 1, 3], [1, 2, 3, 4, 5, 6]), b], {
    attrs: {
      equation: "...ij,jk",
    },
  })).cpu;
  assertEquals([...bmm.shape, ...values(bmm)], [2, 1, 2, 4, 5, 10, 11]);
  const infer = (equation: string, shapes: number[][]) =>
    indexingOps.Einsum.infer(
      { node: opNode("Einsum", { equation }, shapes.length, 1), opset: 12 },
      shapes.map((shape) => ({ dtype: "float32", shape })),
    );
  assertEquals(infer("bhqd,bhkd->bhqk", [[2, 4, 5, 8], [2, 4, 7, 8]])[0].shape, [2, 4, 5, 7]);
  assertEquals(infer("ij,jk", [[2, 3], [3, 4]])[0].shape, [2, 4]);
  throws(() => infer("ij,jk->ik", [[2, 3], [4, 5]]), namesNode("Einsum", /label 'j'/));
  throws(() => infer("ij->ik", [[2, 3]]), namesNode("Einsum", /output label 'k' unknown/));
  throws(() => infer("i$->i", [[2, 3]]), namesNode("Einsum", /unexpected '\$'/));
  throws(
    () =>
      indexingOps.Einsum.infer({ node: opNode("Einsum", {}, 1, 1), opset: 12 }, [{
        dtype: "float32",
        shape: [2],
      }]),
    namesNode("Einsum", /missing attribute 'equation'/),
  );
});

Deno.test("NonMaxSuppression: ONNX examples on the host; refuses GPU-computed inputs", () => {
  const op = indexingOps.NonMaxSuppression;
  const node = opNode("NonMaxSuppression", {}, 5, 1);
  // ONNX's suppress_by_IOU example: 6 boxes in two clusters.
  const boxes = f32([1, 6, 4], [
    ...[0, 0, 1, 1],
    ...[0, 0.1, 1, 1.1],
    ...[0, -0.1, 1, 0.9],
    ...[0, 10, 1, 11],
    ...[0, 10.1, 1, 11.1],
    ...[0, 100, 1, 101],
  ]);
  const scores = f32([1, 1, 6], [0.9, 0.75, 0.6, 0.95, 0.5, 0.3]);
  const inputs = [boxes, scores, i64([1], [3]), f32([1], [0.5]), f32([1], [0])];
  const infos = inputs.map((t) => ({ dtype: t.dtype, shape: t.shape, value: t }));
  const [inferred] = op.infer({ node, opset: 11 }, infos);
  assertEquals([...inferred.shape], [3, 3]);
  assertEquals(values(inferred.value!), [0, 0, 3, 0, 0, 0, 0, 0, 5]);
  // Score threshold and output limit.
  const [few] = op.cpu({ node, opset: 11 }, [
    boxes,
    scores,
    i64([1], [2]),
    f32([1], [0.5]),
    f32(
      [1],
      [0.4],
    ),
  ]);
  assertEquals(values(few), [0, 0, 3, 0, 0, 0]);
  // Centre-point boxes: the same boxes as [x_center, y_center, w, h].
  const centred = f32([1, 6, 4], [
    ...[0.5, 0.5, 1, 1],
    ...[0.5, 0.6, 1, 1],
    ...[0.5, 0.4, 1, 1],
    ...[0.5, 10.5, 1, 1],
    ...[0.5, 10.6, 1, 1],
    ...[0.5, 100.5, 1, 1],
  ]);
  const cnode = opNode("NonMaxSuppression", { center_point_box: 1 }, 5, 1);
  const [c] = op.cpu({ node: cnode, opset: 11 }, [centred, ...inputs.slice(1)]);
  assertEquals(values(c), [0, 0, 3, 0, 0, 0, 0, 0, 5]);
  // Omitted optional inputs: max_output_boxes_per_class defaults to 0 (select nothing).
  const [none] = op.cpu({ node, opset: 11 }, [boxes, scores]);
  assertEquals([...none.shape], [0, 3]);
  // Not known at plan time: a clear error naming the node.
  throws(
    () =>
      op.infer({ node, opset: 11 }, [{ dtype: "float32", shape: [1, 6, 4] }, ...infos.slice(1)]),
    (e: Error) =>
      e instanceof UnsupportedError &&
      e.message.startsWith("node 'nonmaxsuppression_node' (NonMaxSuppression): boxes is not") &&
      /data-dependent output shape.*apply NMS on the host/.test(e.message),
  );
  throws(
    () =>
      op.infer(
        { node: opNode("NonMaxSuppression", { center_point_box: 2 }, 5, 1), opset: 11 },
        infos,
      ),
    namesNode("NonMaxSuppression", /center_point_box 2/),
  );
});

Deno.test("through a plan: GPU-computed scatter/gatherND indices report out-of-range by node", async () => {
  for (const op of ["GatherND", "ScatterND", "ScatterElements"]) {
    const b = new GraphBuilder("scatter", 18);
    const data = b.input("data", "float32", [4, 2]);
    const raw = b.input("idx", "int64", [2, 1]);
    // +1 on the GPU, so the indices are not known at plan time.
    const idx = b.op("Add", [raw, b.constant("one", i64([], [1]))]);
    const inputs = [data, idx];
    // ScatterND updates for [2, 1] indices into [4, 2] are [2, 2]; ScatterElements' are [2, 1].
    if (op === "ScatterND") inputs.push(b.input("upd2", "float32", [2, 2]));
    if (op === "ScatterElements") inputs.push(b.input("upd", "float32", [2, 1]));
    const attrs: Record<string, number> = op === "ScatterElements" ? { axis: 0 } : {};
    b.output(b.op(op, inputs, attrs, "y"), "float32", []);
    const m = await loadModelBytes(b.encode(), { source: `${op}.onnx` });
    const feeds = (v: number[]): Record<string, CpuTensor> => ({
      data: f32([4, 2], [1, 2, 3, 4, 5, 6, 7, 8]),
      idx: i64([2, 1], v),
      ...(op === "ScatterND" ? { upd2: f32([2, 2], [9, 9, 9, 9]) } : {}),
      ...(op === "ScatterElements" ? { upd: f32([2, 1], [9, 9]) } : {}),
    });
    try {
      const good = await m.run(feeds([0, -2]));
      ok(good.y.data.length > 0, op);
      await rejects(
        m.run(feeds([0, 3])),
        (e: Error) =>
          e instanceof NodeError && e.message.includes(`(${op}):`) &&
          e.message.includes("value 4 is out of range"),
        op,
      );
      await m.run(feeds([1, 1])); // the slot is cleared for the next run
    } finally {
      m.dispose();
    }
  }
});

Deno.test("through a plan: NMS folds on constant inputs, runs in the host tail otherwise", async () => {
  const boxes = f32([1, 2, 4], [0, 0, 1, 1, 0, 0, 1, 1]);
  const scores = f32([1, 1, 2], [0.2, 0.7]);
  const build = (constant: boolean) => {
    const b = new GraphBuilder("nms", 11);
    const x = b.input("x", "float32", [1]);
    const bx = constant ? b.constant("boxes", boxes) : b.input("boxes", "float32", [1, 2, 4]);
    const limit = b.constant("limit", i64([1], [5]));
    const iou = b.constant("iou", f32([1], [0.5]));
    b.output(
      b.op("NonMaxSuppression", [bx, b.constant("scores", scores), limit, iou], {}, "sel"),
      "int64",
      [],
    );
    b.output(b.op("Relu", [x], {}, "y"), "float32", []);
    return loadModelBytes(b.encode(), { source: "nms.onnx" });
  };
  const folded = await build(true);
  try {
    const { sel } = await folded.run({ x: f32([1], [1]) });
    assertEquals([...sel.shape, ...values(sel)], [1, 3, 0, 0, 1]);
  } finally {
    folded.dispose();
  }
  const runtime = await build(false);
  try {
    const { sel, y } = await runtime.run({ x: f32([1], [1]), boxes });
    assertEquals([...sel.shape, ...values(sel)], [1, 3, 0, 0, 1]);
    assertEquals(values(y), [1]);
  } finally {
    runtime.dispose();
  }

  // A detector's end: scores computed on the GPU (Sigmoid of logits), NMS in the host tail, and
  // a node after NMS (the selected box indices, column 2) in the tail too. The same graph with
  // constant logits folds entirely: both give the same selection.
  const logits = f32([1, 1, 4], [2, -1, 0.5, 3]);
  const four = f32([1, 4, 4], [0, 0, 1, 1, 0, 0.1, 1, 1.1, 5, 5, 6, 6, 0, 0, 1, 1.05]);
  const detector = (constant: boolean) => {
    const b = new GraphBuilder("det", 11);
    const lg = constant ? b.constant("logits", logits) : b.input("logits", "float32", [1, 1, 4]);
    const sc = b.op("Sigmoid", [lg]);
    const sel = b.op("NonMaxSuppression", [
      b.constant("boxes", four),
      sc,
      b.constant("limit", i64([1], [3])),
      b.constant("iou", f32([1], [0.5])),
    ]);
    const col = b.op("Gather", [sel, b.constant("c", i64([], [2]))], { axis: 1 }, "kept");
    b.output(col, "int64", []);
    return loadModelBytes(b.encode(), { source: "det.onnx" });
  };
  const gpuThenHost = await detector(false);
  const allFolded = await detector(true);
  try {
    const a = await gpuThenHost.run({ logits });
    const c = await allFolded.run({});
    assertEquals(values(a.kept), [3, 2]); // box 3 (highest) suppresses 0 and 1; box 2 is apart
    assertEquals(values(a.kept), values(c.kept));
    assertEquals(gpuThenHost.outputs.map((o) => o.name), ["kept"]);
    await rejects(
      gpuThenHost.runGpu({ logits }),
      (e: Error) =>
        e instanceof UnsupportedError && /run on the host .*use run\(\)/.test(e.message),
    );
  } finally {
    gpuThenHost.dispose();
    allFolded.dispose();
  }
});

Deno.test("NonMaxSuppression: the host implementation matches the ONNX backend cases", async () => {
  // The CPU implementation alone on the backend cases' data (`deno task conformance` runs them
  // through the executor's host tail).
  const dir = sharedPath("onnx-backend-tests", "node");
  if (!dir) return;
  const cases = [...Deno.readDirSync(dir)].map((e) => e.name)
    .filter((n) => n.startsWith("test_nonmaxsuppression_")).sort();
  ok(cases.length >= 10, `${cases.length} NMS cases`);
  for (const name of cases) {
    const bytes = await Deno.readFile(`${dir}/${name}/model.onnx`);
    const node = parseModel(bytes, { source: name, ops: new Map(Object.entries(indexingOps)) })
      .graph.nodes[0];
    const inputs = node.inputs.map((_, i) =>
      readTensorFile(`${dir}/${name}/test_data_set_0/input_${i}.pb`).tensor
    );
    const expected: CpuTensor = readTensorFile(`${dir}/${name}/test_data_set_0/output_0.pb`)
      .tensor;
    const [got] = indexingOps.NonMaxSuppression.cpu({ node, opset: 11 }, inputs);
    assertEquals(
      { shape: [...got.shape], data: values(got) },
      { shape: [...expected.shape], data: values(expected) },
      name,
    );
  }
});
