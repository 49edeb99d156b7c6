/** The op harness itself: runNode runs every named GPU path and the folded CPU path, and fails on
 * the path whose outputs differ. */
import { deepStrictEqual, rejects } from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { runNode } from "./harness.ts";

Deno.test("runNode: every path runs; a wrong expectation names the path and element", async () => {
  const x = cpuTensor("float32", [4], [-2, -0.5, 0.5, 2]);
  const hi = cpuTensor("float32", [], [1]);
  const want = cpuTensor("float32", [4], [-2, -0.5, 0.5, 1]);
  // The bound a graph input, then an initializer; the lower bound omitted.
  const paths = await runNode("Clip", [x, undefined, hi], {
    opset: 13,
    gpuRuns: { fed: [], known: [2] },
    expect: [want],
  });
  deepStrictEqual(Object.keys(paths).sort(), ["cpu", "fed", "known"]);
  for (const [t] of Object.values(paths)) deepStrictEqual(Array.from(t.data), [-2, -0.5, 0.5, 1]);
  await rejects(
    runNode("Relu", [x], { expect: [x] }),
    /Relu@18 gpu output 0: element 0 is 0, expected -2/,
  );
});
