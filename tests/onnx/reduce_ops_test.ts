/** The reduce-family ONNX operators in their opset-dependent forms, run through the executor
 * (GPU kernels) and through constant folding (CPU references). */
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { argRef } from "../../src/kernels/argmax_ref.ts";
import { layerNormRef } from "../../src/kernels/layernorm_ref.ts";
import { reduceRef } from "../../src/kernels/reduce_ref.ts";
import { softmaxRef } from "../../src/kernels/softmax_ref.ts";
import type { BuilderAttr } from "../../src/onnx/builder.ts";
import { randomFloats } from "../helpers.ts";
import { type NodeOptions, runNode } from "./harness.ts";

const X = cpuTensor("float32", [2, 3, 5], randomFloats(30, 1, -2, 2));

/** X a graph input (the GPU kernels; other inputs initializers) and constant folding (the CPU
 * references). */
const PATHS = {
  gpuRuns: { gpu: "weights" },
  tol: { rtol: 1e-5, atol: 1e-6 },
} satisfies NodeOptions;

/** Runs `opType` on X and `extra` inputs: every path must give `want`. */
async function check(
  opset: number,
  opType: string,
  attrs: Record<string, BuilderAttr>,
  extra: CpuTensor[],
  want: CpuTensor[],
  label: string,
): Promise<void> {
  await runNode(opType, [X, ...extra], { ...PATHS, opset, attrs, expect: want, label });
}

const axesTensor = (axes: number[]) => cpuTensor("int64", [axes.length], axes);

Deno.test("onnx Reduce*: axes as attribute before opset 13/18, as input after", async () => {
  const want = reduceRef("sum", X, [0, 2], false);
  await check(11, "ReduceSum", { axes: [0, -1], keepdims: 0 }, [], [want], "sum@11");
  await check(13, "ReduceSum", { keepdims: 0 }, [axesTensor([0, -1])], [want], "sum@13");
  const mean = reduceRef("mean", X, [1]);
  await check(17, "ReduceMean", { axes: [1] }, [], [mean], "mean@17");
  await check(18, "ReduceMean", {}, [axesTensor([1])], [mean], "mean@18");
  // No axes: everything, or nothing with noop_with_empty_axes.
  const all = reduceRef("max", X, [0, 1, 2]);
  await check(18, "ReduceMax", {}, [], [all], "max@18 all");
  await check(13, "ReduceSum", { noop_with_empty_axes: 1 }, [], [X], "sum noop");
  const lse = reduceRef("logSumExp", X, [2], false);
  await check(18, "ReduceLogSumExp", { keepdims: 0 }, [axesTensor([2])], [lse], "lse");
});

Deno.test("onnx Softmax/LogSoftmax: opset<13 coerces to 2-D, opset 13 uses one axis", async () => {
  for (const [opType, log] of [["Softmax", false], ["LogSoftmax", true]] as const) {
    await check(11, opType, {}, [], [softmaxRef(X, 1, { log, coerce2d: true })], "@11");
    await check(13, opType, {}, [], [softmaxRef(X, -1, { log })], "@13 default");
    await check(13, opType, { axis: 1 }, [], [softmaxRef(X, 1, { log })], "@13 axis 1");
  }
});

Deno.test("onnx LayerNormalization: Y alone and with Mean/InvStdDev", async () => {
  const scale = cpuTensor("float32", [5], randomFloats(5, 2, 0.5, 1.5));
  const bias = cpuTensor("float32", [5], randomFloats(5, 3, -1, 1));
  const r = layerNormRef(X, scale, bias, -1, 1e-5);
  await check(17, "LayerNormalization", {}, [scale, bias], [r.y], "y only");
  await check(
    17,
    "LayerNormalization",
    { epsilon: 1e-5 },
    [scale, bias],
    [r.y, r.mean, r.invStdDev],
    "with stats",
  );
});

Deno.test("onnx ArgMax/ArgMin: int64 indices, keepdims", async () => {
  const argmin = argRef(X, 1, { min: true, keepdims: false });
  await check(13, "ArgMin", { axis: 1, keepdims: 0 }, [], [argmin], "argmin");
  await check(13, "ArgMax", {}, [], [argRef(X, 0)], "argmax default");
});
