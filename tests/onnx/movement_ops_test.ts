/** Movement operators (Transpose, Concat, Slice, Split, Gather, GatherElements, Expand, Tile, Pad,
 * DepthToSpace, SpaceToDepth): opset forms, ONNX edge cases, and the GPU path against the CPU
 * reference through the OpImpl contract. */
import "../gpu_teardown.ts";
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  allocTensor,
  downloadTensor,
  getGpu,
  releaseTensor,
  ResourceScope,
  submitDispatches,
  uploadCpuTensor,
} from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { movementOps } from "../../src/onnx/ops/movement.ts";
import {
  type AttrValue,
  type GpuOpContext,
  NodeError,
  type OnnxNode,
  type TensorInfo,
} from "../../src/onnx/types.ts";

function mk(opType: string, attrs: Record<string, AttrValue>, nIn: number, nOut: number): OnnxNode {
  return {
    name: `${opType.toLowerCase()}_node`,
    opType,
    domain: "",
    inputs: Array.from({ length: nIn }, (_, i) => `in${i}`),
    outputs: Array.from({ length: nOut }, (_, i) => `out${i}`),
    attrs: new Map(Object.entries(attrs)),
  };
}

/** Runs infer and cpu (checking they agree) and, when `gpu` is set, the GPU path too (checking
 * it matches cpu exactly). Constant inputs are known at plan time, as the executor makes them. */
async function run(
  opType: string,
  inputs: (CpuTensor | undefined)[],
  attrs: Record<string, AttrValue> = {},
  opset = 18,
  nOut = 1,
): Promise<CpuTensor[]> {
  const op = movementOps[opType];
  const node = mk(opType, attrs, inputs.length, nOut);
  const constInputs = op.constInputs ?? [];
  const infos = inputs.map((t, i): TensorInfo | undefined =>
    t
      ? { dtype: t.dtype, shape: t.shape, value: constInputs.includes(i) ? t : undefined }
      : undefined
  );
  const inferred = op.infer({ node, opset }, infos);
  const out = op.cpu({ node, opset }, inputs);
  out.forEach((o, i) => {
    assertEquals([o.dtype, [...o.shape]], [inferred[i].dtype, [...inferred[i].shape]]);
  });
  const gpu = await getGpu();
  const scope = new ResourceScope();
  const ins = inputs.map((
    t,
    i,
  ) => (t && !constInputs.includes(i) ? uploadCpuTensor(gpu, t) : undefined));
  const outs = inferred.map((o) => allocTensor(gpu, o.shape, o.dtype));
  const ctx: GpuOpContext = {
    node,
    opset,
    gpu,
    inputInfos: infos,
    outputInfos: inferred,
    own: (r) => scope.own(r),
  };
  submitDispatches(gpu, op.gpu!(ctx, ins, outs));
  for (const [i, o] of outs.entries()) {
    const got = await downloadTensor(gpu, o);
    assertEquals(
      { shape: [...got.shape], data: Array.from(got.data) },
      { shape: [...out[i].shape], data: Array.from(out[i].data) },
      `${opType} output ${i}: GPU differs from CPU`,
    );
  }
  for (const t of [...ins, ...outs]) if (t) releaseTensor(gpu, t);
  scope.dispose();
  return out;
}

const iota = (shape: number[], dtype: "float32" | "int64" | "int32" | "float16" = "float32") =>
  cpuTensor(dtype, shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i));
const i64 = (...v: number[]) => cpuTensor("int64", [v.length], v);
const values = (t: CpuTensor) => Array.from(t.data);

Deno.test("Transpose: default perm reverses; bad perm names the node", async () => {
  const [y] = await run("Transpose", [iota([2, 3, 4])]);
  assertEquals([...y.shape], [4, 3, 2]);
  assertEquals(values(y).slice(0, 4), [0, 12, 4, 16]);
  await run("Transpose", [iota([2, 3, 4], "int64")], { perm: [1, 0, 2] });
  throws(() =>
    movementOps.Transpose.infer(
      { node: mk("Transpose", { perm: [0, 0] }, 1, 1), opset: 13 },
      [{ dtype: "float32", shape: [2, 2] }],
    ), (e: Error) => e instanceof NodeError && /transpose_node/.test(e.message));
});

Deno.test("Concat: negative axis, zero-sized inputs, mismatched shapes rejected", async () => {
  const [y] = await run("Concat", [iota([2, 1]), iota([2, 0]), iota([2, 3])], { axis: -1 });
  assertEquals([...y.shape], [2, 4]);
  assertEquals(values(y), [0, 0, 1, 2, 1, 3, 4, 5]);
  const [z] = await run("Concat", [iota([0, 3]), iota([0, 3])], { axis: 0 });
  assertEquals([...z.shape], [0, 3]);
  throws(() =>
    movementOps.Concat.infer({ node: mk("Concat", { axis: 0 }, 2, 1), opset: 13 }, [
      { dtype: "float32", shape: [2, 3] },
      { dtype: "float32", shape: [2, 4] },
    ]), NodeError);
});

Deno.test("Slice: attribute form (opset < 10), input form, negative steps, INT64 sentinels", async () => {
  const x = iota([3, 5]);
  const [a] = await run("Slice", [x], { starts: [1], ends: [1000], axes: [1] }, 1);
  assertEquals([...a.shape], [3, 4]);
  const [b] = await run("Slice", [x], { starts: [0, -2], ends: [2, 5] }, 9);
  assertEquals(values(b), [3, 4, 8, 9]);
  const big = 9223372036854775807;
  const [c] = await run("Slice", [x, i64(-1), i64(-big), i64(-1), i64(-2)], {}, 13);
  assertEquals(values(c), [4, 2, 0, 9, 7, 5, 14, 12, 10]);
  const [d] = await run("Slice", [x, i64(1, big), i64(big, 0), undefined, undefined], {}, 13);
  assertEquals([...d.shape], [2, 0]);
  const [e] = await run("Slice", [iota([4], "int64"), i64(-big), i64(big)], {}, 11);
  assertEquals(values(e), [0, 1, 2, 3]);
  throws(() =>
    movementOps.Slice.infer({ node: mk("Slice", {}, 5, 1), opset: 13 }, [
      { dtype: "float32", shape: [3] },
      { dtype: "int64", shape: [1], value: i64(0) },
      { dtype: "int64", shape: [1] }, // not constant
    ]), /ends must be known/);
});

Deno.test("Split: attribute (opset 11), input (13), num_outputs (18), uneven and zero splits", async () => {
  const x = iota([7, 2]);
  const a = await run("Split", [x], { split: [3, 4] }, 11, 2);
  assertEquals(a.map((t) => t.shape[0]), [3, 4]);
  const b = await run("Split", [x, i64(0, 7, 0)], {}, 13, 3);
  assertEquals(b.map((t) => t.shape[0]), [0, 7, 0]);
  const c = await run("Split", [x], { num_outputs: 3 }, 18, 3);
  assertEquals(c.map((t) => t.shape[0]), [3, 3, 1]);
  const d = await run("Split", [iota([2, 6])], { axis: -1 }, 13, 3);
  assertEquals(d.map((t) => values(t)), [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10, 11]]);
  throws(() =>
    movementOps.Split.infer({ node: mk("Split", {}, 2, 2), opset: 13 }, [
      { dtype: "float32", shape: [5] },
      { dtype: "int64", shape: [2], value: i64(2, 2) },
    ]), /does not cover/);
});

Deno.test("Gather / GatherElements: int64 and float data, negative axis and indices", async () => {
  const [a] = await run("Gather", [iota([3, 4], "int64"), i64(-1, 0)], { axis: -1 });
  assertEquals(values(a), [3, 0, 7, 4, 11, 8]);
  const [b] = await run("Gather", [iota([5, 2]), cpuTensor("int32", [2, 2], [4, 0, -5, 1])]);
  assertEquals([...b.shape], [2, 2, 2]);
  const [s] = await run("Gather", [iota([5]), cpuTensor("int64", [], [2])]);
  assertEquals([...s.shape], []);
  assertEquals(values(s), [2]);
  const [c] = await run(
    "GatherElements",
    [iota([2, 3]), cpuTensor("int64", [2, 2], [2, -3, 1, 1])],
    { axis: 1 },
  );
  assertEquals(values(c), [2, 0, 4, 4]);
  throws(() =>
    movementOps.Gather.cpu({ node: mk("Gather", {}, 2, 1), opset: 13 }, [
      iota([3]),
      i64(3),
    ]), (e: Error) => e instanceof NodeError && /out of range/.test(e.message));
});

Deno.test("Expand (bidirectional) and Tile", async () => {
  const [a] = await run("Expand", [iota([3, 1]), i64(2, 1, 4)]);
  assertEquals([...a.shape], [2, 3, 4]);
  // The shape may be smaller than the input: the input's axes win.
  const [b] = await run("Expand", [iota([2, 3]), i64(1)], {}, 13);
  assertEquals([...b.shape], [2, 3]);
  throws(() =>
    movementOps.Expand.infer({ node: mk("Expand", {}, 2, 1), opset: 13 }, [
      { dtype: "float32", shape: [2, 3] },
      { dtype: "int64", shape: [1], value: i64(2) },
    ]), NodeError);
  const [t] = await run("Tile", [iota([2, 2], "int32"), i64(2, 3)]);
  assertEquals([...t.shape], [4, 6]);
  assertEquals(values(t).slice(0, 6), [0, 1, 0, 1, 0, 1]);
});

Deno.test("Pad: attribute form (opset 2), inputs (11), axes incl. negative (18), every mode", async () => {
  const x = iota([2, 3]);
  const [a] = await run("Pad", [x], { pads: [0, 1, 0, 0], value: 9 }, 2);
  assertEquals(values(a), [9, 0, 1, 2, 9, 3, 4, 5]);
  const [b] = await run("Pad", [x, i64(1, 0, 0, 2), cpuTensor("float32", [], [-1])], {}, 11);
  assertEquals([...b.shape], [3, 5]);
  assertEquals(values(b).slice(0, 6), [-1, -1, -1, -1, -1, 0]);
  const [c] = await run("Pad", [x, i64(2, 1), undefined, i64(-1)], { mode: "reflect" }, 18);
  assertEquals(values(c), [2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4]);
  const [d] = await run("Pad", [x, i64(1, 1), undefined, i64(0)], { mode: "edge" }, 18);
  assertEquals(values(d), [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]);
  const [e] = await run("Pad", [x, i64(0, 4, 0, 0)], { mode: "wrap" }, 19);
  assertEquals(values(e).slice(0, 7), [2, 0, 1, 2, 0, 1, 2]);
  // Negative pads crop; float16 fill values are rounded to half precision.
  const [f] = await run("Pad", [x, i64(0, -1, -1, 0)], {}, 13);
  assertEquals(values(f), [1, 2]);
  const [g] = await run("Pad", [iota([1], "float16")], { pads: [1, 0], value: 0.1 }, 2);
  assertEquals(values(g), [roundToF16(0.1), 0]);
});

Deno.test("DepthToSpace (DCR/CRD) and SpaceToDepth round trip", async () => {
  const x = iota([1, 8, 2, 3]);
  const [dcr] = await run("DepthToSpace", [x], { blocksize: 2 });
  const [crd] = await run("DepthToSpace", [x], { blocksize: 2, mode: "CRD" });
  assertEquals([...dcr.shape], [1, 2, 4, 6]);
  assertEquals(values(dcr).slice(0, 4), [0, 12, 1, 13]);
  assertEquals(values(crd).slice(0, 4), [0, 6, 1, 7]);
  const [back] = await run("SpaceToDepth", [dcr], { blocksize: 2 });
  assertEquals(values(back), values(x));
});
