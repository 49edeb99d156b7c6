/** The kernel harness itself: outputs a kernel leaves unwritten fail every comparison, whatever
 * their dtype, and comparisons name the first element that differs. */
import { deepStrictEqual, rejects, throws } from "node:assert/strict";
import { getGpu } from "../../src/gpu/mod.ts";
import { cpuTensor } from "../../src/util/tensor.ts";
import { prepareUnary } from "../../src/kernels/elementwise.ts";
import { assertClose } from "../helpers.ts";
import {
  assertHalfValues,
  assertSameTensor,
  checkKernel,
  runKernel,
  runKernelWithStatus,
} from "./harness.ts";

Deno.test("harness: an output the kernel never writes fails, for every dtype", async () => {
  const gpu = await getGpu();
  const x = cpuTensor("float32", [3], [1, 2, 3]);
  // Nothing dispatched: the outputs hold only the garbage written before the run.
  const skip = () => [];
  await rejects(
    checkKernel(gpu, [x], [cpuTensor("float32", [3], [1, 2, 3])], skip, "float32"),
    /float32: element 0 is NaN, expected 1/,
  );
  await rejects(
    checkKernel(gpu, [x], [cpuTensor("int32", [3], [0, 0, 0])], skip, "int32"),
    /int32: element 0 is 2143346349, expected 0/,
  );
  for (const dtype of ["bool", "int8", "uint8"] as const) {
    await rejects(
      runKernel(gpu, [x], [{ shape: [3], dtype }], skip),
      new RegExp(`output 0: element 0 holds the word 2143346349, not a ${dtype} value`),
    );
  }
  const { outputs, status } = await runKernelWithStatus(gpu, [x], [[3]], skip);
  deepStrictEqual(status, [0, 0]);
  throws(() => assertSameTensor(outputs[0], x, "status run"), /status run: element 0 is NaN/);
  // A kernel that writes every element passes.
  await checkKernel(
    gpu,
    [x],
    [cpuTensor("float32", [3], [-1, -2, -3])],
    (scope, [gx], [out]) => prepareUnary(gpu, scope, "neg", gx, out),
    "neg",
  );
});

Deno.test("harness: comparisons name the first differing index and the worst", () => {
  throws(
    () => assertClose([1, 5, 2, 9], [1, 2, 2, 3], { rtol: 0, atol: 0.5, label: "v" }),
    /v: mismatch at index 1: got 5, expected 2 \(2 of 4 differ; worst at index 3: got 9, expected 3/,
  );
  throws(
    () => assertHalfValues(cpuTensor("float32", [2], [1, 1 + 2 ** -12]), "h"),
    /h: output 1.000244140625 at index 1 is not a half value/,
  );
});
