/** Out-of-range Gather indices are errors (ONNX), never silently clamped: host inputs that are
 * indices (token ids) are checked before upload; indices computed on the GPU set the node's
 * status slot, read back with the results and raised naming the node (by `run`, and for `runGpu`
 * by the next call or `settle()`); constant indices are checked when the plan is built. */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { EngineError } from "../../src/util/errors.ts";
import { releaseTensor } from "../../src/gpu/mod.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModel, loadModelBytes, NodeError } from "../../src/onnx/mod.ts";
import { InputError } from "../../src/onnx/executor.ts";
import { sharedPath } from "../helpers.ts";

const TABLE = cpuTensor("float32", [5, 3], Array.from({ length: 15 }, (_, i) => i));

/** y = Gather(table, ids) with ids straight from the input, or shifted on the GPU first. */
async function gatherModel(shiftOnGpu: number | undefined, op = "Gather") {
  const b = new GraphBuilder("gather", 17);
  let ids = b.input("ids", "int64", [2, 2]);
  if (shiftOnGpu !== undefined) {
    ids = b.op("Add", [ids, b.constant("shift", cpuTensor("int64", [], [shiftOnGpu]))]);
  }
  if (op === "Gather") {
    const table = b.input("table", "float32", [5, 3]);
    b.output(b.op("Gather", [table, ids], { axis: 0 }, "y"), "float32", []);
  } else {
    const data = b.input("table", "float32", [5, 2]);
    b.output(b.op("GatherElements", [data, ids], { axis: 0 }, "y"), "float32", []);
  }
  return await loadModelBytes(b.encode(), { source: `${op}.onnx` });
}

const ids = (v: number[]) => cpuTensor("int64", [2, 2], v);

Deno.test("Gather: host indices are checked before upload, naming the input and position", async () => {
  const m = await gatherModel(undefined);
  try {
    const good = await m.run({ ids: ids([0, 4, -1, -5]), table: TABLE });
    assertEquals(Array.from(good.y.data), [0, 1, 2, 12, 13, 14, 12, 13, 14, 0, 1, 2]);
    for (
      const [values, bad, at] of [[[0, 5, 1, 1], 5, "0, 1"], [[0, 1, -6, 1], -6, "1, 0"]] as const
    ) {
      await rejects(
        m.run({ ids: ids([...values]), table: TABLE }),
        (e: Error) =>
          e instanceof InputError &&
          e.message.includes(`input 'ids'[${at}] is ${bad}, outside [-5, 5) for node 'Gather_`) &&
          e.message.includes("along axis 0 of size 5"),
      );
    }
    // The model still runs after a refused input.
    assertEquals((await m.run({ ids: ids([1, 1, 1, 1]), table: TABLE })).y.shape, [2, 2, 3]);
  } finally {
    m.dispose();
  }
});

Deno.test("Gather, GatherElements: indices computed on the GPU report through the status slot", async () => {
  for (const op of ["Gather", "GatherElements"]) {
    const m = await gatherModel(3, op);
    const table = op === "Gather" ? TABLE : cpuTensor("float32", [5, 2], [...Array(10).keys()]);
    try {
      // 0+3, 1+3 are fine; 2+3 = 5 is outside the 5 rows.
      await m.run({ ids: ids([0, 1, 0, 1]), table });
      await rejects(
        m.run({ ids: ids([0, 1, 2, 0]), table }),
        (e: Error) =>
          e instanceof NodeError && e.message.includes(`(${op}): index 5 is outside [-5, 5)`),
        op,
      );
      // The slot is cleared for the next run.
      await m.run({ ids: ids([0, 1, 0, 1]), table });

      // runGpu does not wait: the error comes from settle() (or the next call).
      const outs = await m.runGpu({ ids: ids([-9, 0, 0, 0]), table });
      for (const t of Object.values(outs)) releaseTensor(m.gpu, t);
      await rejects(
        m.settle(),
        (e: Error) => e instanceof NodeError && e.message.includes("index -6 is outside"),
      );
      await m.settle(); // reported once
    } finally {
      m.dispose();
    }
  }
});

Deno.test("Gather: constant indices out of range are refused when the plan is built", async () => {
  const b = new GraphBuilder("gather", 17);
  const table = b.input("table", "float32", [5, 3]);
  const bad = b.constant("ids", cpuTensor("int64", [2], [1, 7]));
  b.output(b.op("Gather", [table, bad], { axis: 0 }, "y"), "float32", []);
  const m = await loadModelBytes(b.encode(), { source: "const.onnx" });
  try {
    await rejects(
      m.run({ table: TABLE }),
      (e: Error) =>
        e instanceof EngineError && /\(Gather\): index 7 is outside \[-5, 5\)/.test(e.message),
    );
  } finally {
    m.dispose();
  }
});

Deno.test("text tower: a token id beyond the embedding table is an error, not a clamped lookup", async () => {
  const path = sharedPath("fixtures", "clip_text_tiny", "clip_text_tiny.opset14.onnx");
  if (!path) return;
  const m = await loadModel(path);
  try {
    const input = m.inputs[0];
    const context = Number(input.dims?.[1] ?? 77);
    const tokens = new Array(context).fill(0);
    tokens[0] = 1;
    tokens[1] = 100_000; // far beyond the tiny vocabulary
    tokens[2] = 2;
    await rejects(
      m.run({ [input.name]: cpuTensor("int64", [1, context], tokens) }),
      (e: Error) =>
        e instanceof InputError && e.message.includes(`input '${input.name}'[0, 1] is 100000`),
    );
  } finally {
    m.dispose();
  }
  ok(true);
});
