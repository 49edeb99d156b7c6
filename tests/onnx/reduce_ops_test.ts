/** The reduce-family ONNX operators in their opset-dependent forms, run through the executor
 * (GPU kernels) and through constant folding (CPU references). */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { argRef } from "../../src/kernels/argmax_ref.ts";
import { layerNormRef } from "../../src/kernels/layernorm_ref.ts";
import { reduceRef } from "../../src/kernels/reduce_ref.ts";
import { softmaxRef } from "../../src/kernels/softmax_ref.ts";
import { type BuilderAttr, GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/executor.ts";
import { assertClose, randomFloats } from "../helpers.ts";

const X = cpuTensor("float32", [2, 3, 5], randomFloats(30, 1, -2, 2));

/** Runs one node on X, as a graph input (GPU) and as an initializer (constant folding). */
async function runNode(
  opset: number,
  opType: string,
  attrs: Record<string, BuilderAttr>,
  extraInputs: (CpuTensor | undefined)[] = [],
  outputs = 1,
): Promise<{ gpu: CpuTensor[]; folded: CpuTensor[] }> {
  const results: CpuTensor[][] = [];
  for (const asConstant of [false, true]) {
    const b = new GraphBuilder("t", opset);
    const x = asConstant ? b.constant("x", X) : b.input("x", "float32", X.shape);
    const extra = extraInputs.map((t) => (t ? b.constant("in", t) : ""));
    const outs = Array.from({ length: outputs }, (_, k) => `y${k}`);
    b.opMulti(opType, [x, ...extra], outs, attrs);
    // Declared output types are not checked against inference here: the executor infers them.
    for (const o of outs) b.output(o, "float32", []);
    const model = await loadModelBytes(b.encode(), { source: `${opType}@${opset}` });
    const got = await model.run(asConstant ? {} : { x: X });
    results.push(outs.map((o) => got[o]));
    model.dispose();
  }
  return { gpu: results[0], folded: results[1] };
}

function check(got: { gpu: CpuTensor[]; folded: CpuTensor[] }, want: CpuTensor[], label: string) {
  for (const [path, tensors] of Object.entries(got)) {
    want.forEach((w, k) => {
      assertEquals(tensors[k].shape, w.shape, `${label} ${path} shape`);
      assertEquals(tensors[k].dtype, w.dtype, `${label} ${path} dtype`);
      assertClose(tensors[k].data, w.data, { rtol: 1e-5, atol: 1e-6, label: `${label} ${path}` });
    });
  }
}

const axesTensor = (axes: number[]) => cpuTensor("int64", [axes.length], axes);

Deno.test("onnx Reduce*: axes as attribute before opset 13/18, as input after", async () => {
  const want = reduceRef("sum", X, [0, 2], false);
  check(await runNode(11, "ReduceSum", { axes: [0, -1], keepdims: 0 }), [want], "sum@11");
  check(await runNode(13, "ReduceSum", { keepdims: 0 }, [axesTensor([0, -1])]), [want], "sum@13");
  const mean = reduceRef("mean", X, [1]);
  check(await runNode(17, "ReduceMean", { axes: [1] }), [mean], "mean@17");
  check(await runNode(18, "ReduceMean", {}, [axesTensor([1])]), [mean], "mean@18");
  // No axes: everything, or nothing with noop_with_empty_axes.
  const all = reduceRef("max", X, [0, 1, 2]);
  check(await runNode(18, "ReduceMax", {}), [all], "max@18 all");
  check(await runNode(13, "ReduceSum", { noop_with_empty_axes: 1 }), [X], "sum noop");
  const lse = reduceRef("logSumExp", X, [2], false);
  check(await runNode(18, "ReduceLogSumExp", { keepdims: 0 }, [axesTensor([2])]), [lse], "lse");
});

Deno.test("onnx Softmax/LogSoftmax: opset<13 coerces to 2-D, opset 13 uses one axis", async () => {
  for (const [opType, log] of [["Softmax", false], ["LogSoftmax", true]] as const) {
    check(await runNode(11, opType, {}), [softmaxRef(X, 1, { log, coerce2d: true })], "@11");
    check(await runNode(13, opType, {}), [softmaxRef(X, -1, { log })], "@13 default");
    check(await runNode(13, opType, { axis: 1 }), [softmaxRef(X, 1, { log })], "@13 axis 1");
  }
});

Deno.test("onnx LayerNormalization: Y alone and with Mean/InvStdDev", async () => {
  const scale = cpuTensor("float32", [5], randomFloats(5, 2, 0.5, 1.5));
  const bias = cpuTensor("float32", [5], randomFloats(5, 3, -1, 1));
  const r = layerNormRef(X, scale, bias, -1, 1e-5);
  check(await runNode(17, "LayerNormalization", {}, [scale, bias]), [r.y], "y only");
  check(
    await runNode(17, "LayerNormalization", { epsilon: 1e-5 }, [scale, bias], 3),
    [r.y, r.mean, r.invStdDev],
    "with stats",
  );
});

Deno.test("onnx ArgMax/ArgMin: int64 indices, keepdims", async () => {
  const got = await runNode(13, "ArgMin", { axis: 1, keepdims: 0 });
  check(got, [argRef(X, 1, { min: true, keepdims: false })], "argmin");
  check(await runNode(13, "ArgMax", {}), [argRef(X, 0)], "argmax default");
});
