/** Validate mode (src/onnx/validate.ts, docs/validate.md): every node's GPU outputs checked
 * against its CPU implementation from the node's own GPU inputs. A correct graph passes and
 * gives the same outputs as a plain run; a deliberately broken kernel is caught at its node,
 * with the value furthest off. */
import assert from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { EngineError } from "../../src/util/errors.ts";
import { releaseTensor } from "../../src/gpu/mod.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/executor.ts";
import { OPS } from "../../src/onnx/ops/registry.ts";
import type { OpImpl } from "../../src/onnx/types.ts";
import {
  compareValues,
  FLOAT32_TOLERANCE,
  VALIDATE_ENV,
  validateFromEnv,
  ValidationError,
} from "../../src/onnx/validate.ts";
import { assertClose, randomFloats } from "../helpers.ts";

const f32 = (shape: number[], seed: number, lo = -1, hi = 1) =>
  cpuTensor("float32", shape, randomFloats(shape.reduce((a, b) => a * b, 1), seed, lo, hi));

/** Conv (+ Relu, fused), a view, a reduction, a Linear layer (fused), Softmax and an int64
 * ArgMax: float kernels of several families, an engine operator and an exact comparison. */
function smallNetwork(): Uint8Array {
  const b = new GraphBuilder("validate", 17);
  const x = b.input("x", "float32", [2, 3, 6, 6]);
  const conv = b.op("Conv", [
    x,
    b.constant("w", f32([4, 3, 3, 3], 1)),
    b.constant("b", f32([4], 2)),
  ], {
    pads: { ints: [1, 1, 1, 1] },
  });
  const relu = b.op("Relu", [conv]);
  const pooled = b.op("ReduceMean", [relu], { axes: { ints: [2, 3] }, keepdims: { int: 0 } });
  const flat = b.op("Reshape", [pooled, b.constant("shape", cpuTensor("int64", [2], [2, 4]))]);
  const mm = b.op("MatMul", [flat, b.constant("fc", f32([4, 5], 3))]);
  const logits = b.op("Add", [mm, b.constant("fc_b", f32([5], 4))]);
  const probs = b.op("Softmax", [logits], { axis: { int: -1 } }, "probs");
  b.op("ArgMax", [probs], { axis: { int: 1 }, keepdims: { int: 0 } }, "label");
  b.output("probs", "float32", [2, 5]);
  b.output("label", "int64", [2]);
  return b.encode();
}

Deno.test("validate: a correct graph passes node by node, with the outputs of a plain run", async () => {
  const bytes = smallNetwork();
  const x = f32([2, 3, 6, 6], 5);
  const lines: string[] = [];
  const checked = await loadModelBytes(bytes, {
    source: "validate test",
    validate: true,
    validateLog: (line) => lines.push(line),
  });
  const plain = await loadModelBytes(bytes, { source: "validate test", validate: false });
  try {
    assert.equal(checked.validate, true);
    const got = await checked.run({ x });
    const want = await plain.run({ x });
    assertClose(got.probs.data as Float32Array, want.probs.data as Float32Array, {
      rtol: 0,
      atol: 0,
      label: "probs",
    });
    assert.deepEqual([...got.label.data], [...want.label.data]);
    const plan = await checked.plan({ x: [2, 3, 6, 6] });
    assert.ok(plan.nodes.length >= 5, `${plan.nodes.length} nodes with GPU work`);
    assert.deepEqual(lines, [
      `validate: validate test [${plan.key}]: ${plan.nodes.length} node(s) agree with their ` +
      `CPU implementation`,
    ]);
    // A second run of the same plan is checked again but not reported again.
    await checked.run({ x });
    assert.equal(lines.length, 1);
  } finally {
    checked.dispose();
    plain.dispose();
  }
});

/** x + c -> Relu -> * 2, with Relu's GPU kernel swapped for Abs's: wrong wherever x + c < 0. */
async function brokenReluModel(validate: boolean) {
  const b = new GraphBuilder("broken", 17);
  const x = b.input("x", "float32", [3, 4]);
  const shifted = b.op("Add", [x, b.constant("c", cpuTensor("float32", [], [-0.25]))]);
  const relu = b.op("Relu", [shifted], {}, "relu_out");
  b.op("Mul", [relu, b.constant("two", cpuTensor("float32", [], [2]))], {}, "y");
  b.output("y", "float32", [3, 4]);
  const ops = new Map<string, OpImpl>(OPS);
  ops.set("Relu", { ...OPS.get("Relu")!, gpu: OPS.get("Abs")!.gpu });
  return await loadModelBytes(b.encode(), {
    source: "broken model",
    ops,
    fuse: false,
    validate,
    validateLog: () => {},
  });
}

Deno.test("validate: a broken kernel is caught at its node, with the value furthest off", async () => {
  const x = f32([3, 4], 11);
  const shifted = Array.from(x.data as Float32Array, (v) => Math.fround(v - 0.25));
  const negatives = shifted.filter((v) => v < 0).length;
  const worst = shifted.indexOf(Math.min(...shifted));
  assert.ok(negatives > 0 && shifted[worst] < -0.5, "the input has values the broken kernel hits");

  // Without validate mode the wrong kernel goes unnoticed: the output is just wrong.
  const silent = await brokenReluModel(false);
  try {
    const y = (await silent.run({ x })).y.data as Float32Array;
    assert.ok(Math.abs(y[worst] - 2 * Math.abs(shifted[worst])) < 1e-6);
  } finally {
    silent.dispose();
  }

  const model = await brokenReluModel(true);
  try {
    const error = await model.run({ x }).then(() => undefined, (e) => e);
    assert.ok(error instanceof ValidationError, `got ${error}`);
    assert.ok(error instanceof EngineError);
    assert.equal(error.node.opType, "Relu");
    assert.equal(error.node.name, "Relu_1");
    assert.equal(error.output, "relu_out");
    const m = error.mismatch!;
    assert.deepEqual(m.at, [Math.floor(worst / 4), worst % 4]);
    assert.equal(m.cpu, 0);
    assert.ok(Math.abs(m.gpu + shifted[worst]) < 1e-6, `gpu ${m.gpu}`);
    assert.equal(m.count, negatives);
    assert.equal(m.total, 12);
    assert.equal(m.maxRelDiff, Infinity);
    assert.match(
      error.message,
      new RegExp(
        "^broken model: validate: node 'Relu_1' \\(Relu\\) output 'relu_out': max \\|diff\\| " +
          `[0-9.]+ at \\[${m.at.join(",")}\\] \\(gpu [0-9.]+, cpu 0\\); ${negatives} of 12 ` +
          "value\\(s\\) off \\(rtol 0.001, atol 0.0001; max rel diff Infinity\\)$",
      ),
    );
    // The GPU-resident path checks too.
    await assert.rejects(model.runGpu({ x }), ValidationError);
  } finally {
    model.dispose();
  }
});

Deno.test("validate: data a kernel flags as invalid fails the run as without validation", async () => {
  // Gather with indices computed on the GPU: an index outside the table sets the node's status
  // slot; the run raises it naming the node, before the CPU meets the same index.
  const b = new GraphBuilder("gather", 17);
  const ids = b.op("Add", [
    b.input("ids", "int64", [3]),
    b.constant("shift", cpuTensor("int64", [], [2])),
  ]);
  b.op("Gather", [b.input("table", "float32", [4, 2]), ids], { axis: 0 }, "y");
  b.output("y", "float32", [3, 2]);
  const lines: string[] = [];
  const model = await loadModelBytes(b.encode(), {
    source: "gather",
    validate: true,
    validateLog: (line) => lines.push(line),
  });
  const table = f32([4, 2], 21);
  try {
    const ok = await model.run({ ids: cpuTensor("int64", [3], [0, 1, -6]), table });
    assert.deepEqual(ok.y.shape, [3, 2]);
    await assert.rejects(
      model.run({ ids: cpuTensor("int64", [3], [0, 3, 1]), table }),
      (e: Error) =>
        !(e instanceof ValidationError) &&
        e.message.includes("(Gather): index 5 is outside [-4, 4)"),
    );
    // runGpu does not raise it itself, validating or not: settle() (or the next call) does.
    const outs = await model.runGpu({ ids: cpuTensor("int64", [3], [-7, 0, 0]), table });
    for (const t of Object.values(outs)) releaseTensor(model.gpu, t);
    await assert.rejects(model.settle(), (e: Error) => e.message.includes("index -5 is outside"));
    assert.equal(lines.length, 1, lines.join("\n"));
  } finally {
    model.dispose();
  }
});

Deno.test("validate: comparison is allclose for floats, exact for integers", () => {
  const t = (dtype: "float32" | "int32", values: number[]) =>
    cpuTensor(dtype, [values.length], values);
  const tol = FLOAT32_TOLERANCE;
  assert.equal(
    compareValues(t("float32", [1, NaN, Infinity]), t("float32", [1, NaN, Infinity]), tol),
    undefined,
  );
  assert.equal(compareValues(t("float32", [1.0009, 5e-5]), t("float32", [1, 0]), tol), undefined);
  const far = compareValues(t("float32", [1, 2.01, 3]), t("float32", [1, 2, 3.5]), tol)!;
  assert.deepEqual([far.index, far.gpu, far.cpu, far.count], [2, 3, 3.5, 2]);
  assert.equal(compareValues(t("float32", [-Infinity]), t("float32", [Infinity]), tol)?.count, 1);
  assert.equal(compareValues(t("float32", [NaN]), t("float32", [0]), tol)?.count, 1);
  assert.equal(compareValues(t("int32", [3, 4]), t("int32", [3, 4]), undefined), undefined);
  assert.equal(compareValues(t("int32", [3, 5]), t("int32", [3, 4]), undefined)?.index, 1);
});

Deno.test("validate: ENGINE_VALIDATE turns the mode on; other values are refused by name", async () => {
  const before = Deno.env.get(VALIDATE_ENV);
  try {
    Deno.env.set(VALIDATE_ENV, "1");
    assert.equal(validateFromEnv(), true);
    const bytes = smallNetwork();
    const fromEnv = await loadModelBytes(bytes, { source: "env" });
    assert.equal(fromEnv.validate, true);
    fromEnv.dispose();
    const overridden = await loadModelBytes(bytes, { source: "env", validate: false });
    assert.equal(overridden.validate, false);
    overridden.dispose();
    Deno.env.set(VALIDATE_ENV, "0");
    assert.equal(validateFromEnv(), false);
    Deno.env.set(VALIDATE_ENV, "yes");
    assert.throws(
      () => validateFromEnv(),
      (e: Error) => e instanceof EngineError && e.message.startsWith("ENGINE_VALIDATE is 'yes'"),
    );
  } finally {
    if (before === undefined) Deno.env.delete(VALIDATE_ENV);
    else Deno.env.set(VALIDATE_ENV, before);
  }
});
