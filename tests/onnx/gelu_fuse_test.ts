/** Exact GELU in the fusion pass (src/onnx/fuse.ts): the erf form exporters write
 * (x * 0.5 * (1 + Erf(x / sqrt 2)) in its common arrangements) and the ONNX `Gelu` op
 * (approximate "none") after a Linear layer become the matmul epilogue's "gelu"; the erf form
 * after anything else becomes one `Gelu` node; `Gelu` with approximate "tanh" and near misses
 * stay as written. Every fused model computes its unfused graph's output to float32 rounding. */
import assert from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/executor.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { A, encodeModel, init, node, vi } from "./_proto.ts";

let seed = 300;
const mat = (r: number, c: number) => cpuTensor("float32", [r, c], randomFloats(r * c, seed++));
const vec = (n: number) => cpuTensor("float32", [n], randomFloats(n, seed++));
const scalar = (v: number) => cpuTensor("float32", [], [v]);

type Arrangement = "x*(1+e)*0.5" | "x*(0.5*(1+e))" | "(x*0.5)*(1+e)" | "mul-rsqrt2";

/** GELU by Erf, as torch.onnx (first arrangement) and hand-written models (others) export it. */
function erfGelu(g: GraphBuilder, x: string, how: Arrangement): string {
  const scaled = how === "mul-rsqrt2"
    ? g.op("Mul", [g.constant("r", scalar(Math.SQRT1_2)), x])
    : g.op("Div", [x, g.constant("s", scalar(1.4142135381698608))]);
  const onePlus = g.op("Add", [g.op("Erf", [scaled]), g.constant("one", scalar(1))]);
  const half = () => g.constant("half", scalar(0.5));
  switch (how) {
    case "x*(1+e)*0.5":
    case "mul-rsqrt2":
      return g.op("Mul", [g.op("Mul", [x, onePlus]), half()]);
    case "x*(0.5*(1+e))":
      return g.op("Mul", [x, g.op("Mul", [half(), onePlus])]);
    case "(x*0.5)*(1+e)":
      return g.op("Mul", [onePlus, g.op("Mul", [x, half()])]);
  }
}

function linear(g: GraphBuilder, x: string, k: number, n: number): string {
  return g.op("Add", [g.op("MatMul", [x, g.constant("w", mat(k, n))]), g.constant("b", vec(n))]);
}

async function fusedAndPlain(bytes: Uint8Array, x: ReturnType<typeof cpuTensor>) {
  const fused = await loadModelBytes(bytes, { source: "gelu test" });
  const plain = await loadModelBytes(bytes, { source: "gelu test", fuse: false });
  try {
    const a = (await fused.run({ x })).y, b = (await plain.run({ x })).y;
    assertClose(a.data as Float32Array, b.data as Float32Array, {
      rtol: 1e-5,
      atol: 1e-5,
      label: "fused vs unfused",
    });
    return {
      fusion: fused.fusion,
      nodes: fused.graph.nodes.map((n) =>
        n.opType === "FusedMatMul" ? `FusedMatMul:${n.attrs.get("activation")}` : n.opType
      ),
    };
  } finally {
    fused.dispose();
    plain.dispose();
  }
}

// Inputs of both signs and up to |x| ~ 6 after the layer, so erf's tails are exercised.
const input = () =>
  cpuTensor("float32", [3, 16], Array.from(randomFloats(48, seed++), (v) => 3 * v));

for (
  const how of ["x*(1+e)*0.5", "x*(0.5*(1+e))", "(x*0.5)*(1+e)", "mul-rsqrt2"] as Arrangement[]
) {
  Deno.test(`gelu fusion: Linear + erf GELU written ${how} -> FusedMatMul gelu`, async () => {
    const g = new GraphBuilder("erf-gelu", 14);
    const x = g.input("x", "float32", [3, 16]);
    g.op("MatMul", [erfGelu(g, linear(g, x, 16, 24), how), g.constant("w2", mat(24, 8))], {}, "y");
    g.output("y", "float32", [3, 8]);
    const r = await fusedAndPlain(g.encode(), input());
    assert.deepEqual(r.nodes, ["FusedMatMul:gelu", "MatMul"]);
    assert.equal(r.fusion?.activations, 1);
  });
}

Deno.test("gelu fusion: ONNX Gelu (opset 20) none fuses, tanh stays a Gelu node", async () => {
  // Written with the proto helpers: GraphBuilder has no string attributes.
  const w = mat(16, 8), b = vec(8);
  for (const approximate of ["none", "tanh", undefined]) {
    const attrs = approximate === undefined ? [] : [{
      name: "approximate",
      type: A.STRING,
      s: new TextEncoder().encode(approximate),
    }];
    const bytes = encodeModel({
      opset: 20,
      inputs: [vi("x", "float32", [3, 16])],
      outputs: [vi("y", "float32", [3, 8])],
      initializers: [init("w", w), init("b", b)],
      nodes: [
        node("MatMul", ["x", "w"], ["h"]),
        node("Add", ["h", "b"], ["hb"]),
        node("Gelu", ["hb"], ["y"], attrs),
      ],
    });
    const r = await fusedAndPlain(bytes, input());
    assert.deepEqual(
      r.nodes,
      approximate === "tanh" ? ["FusedMatMul:none", "Gelu"] : ["FusedMatMul:gelu"],
      String(approximate),
    );
  }
});

Deno.test("gelu fusion: the erf form after a non-matmul becomes one Gelu node", async () => {
  const g = new GraphBuilder("erf-gelu-alone", 14);
  const x = g.input("x", "float32", [3, 16]);
  const sum = g.op("Add", [x, g.constant("c", vec(16))]);
  g.op("Identity", [erfGelu(g, sum, "x*(1+e)*0.5")], {}, "y");
  g.output("y", "float32", [3, 16]);
  const r = await fusedAndPlain(g.encode(), input());
  assert.deepEqual(r.nodes.filter((n) => n !== "Identity"), ["Add", "Gelu"]);
});

Deno.test("gelu fusion: near misses stay as written", async () => {
  // A wrong constant (x / 2 is not GELU), and an intermediate read twice.
  const g = new GraphBuilder("near-miss", 14);
  const x = g.input("x", "float32", [3, 16]);
  const h = linear(g, x, 16, 8);
  const e = g.op("Erf", [g.op("Div", [h, g.constant("two", scalar(2))])]);
  const a = g.op("Mul", [
    g.op("Mul", [h, g.op("Add", [e, g.constant("one", scalar(1))])]),
    g
      .constant("half", scalar(0.5)),
  ]);
  const h2 = linear(g, x, 16, 8);
  const s = g.op("Div", [h2, g.constant("s", scalar(Math.SQRT2))]);
  const one = g.op("Add", [g.op("Erf", [s]), g.constant("one2", scalar(1))]);
  const b = g.op("Mul", [g.op("Mul", [h2, one]), g.constant("half2", scalar(0.5))]);
  g.op("Add", [g.op("Add", [a, b]), s], {}, "y"); // s read twice
  g.output("y", "float32", [3, 8]);
  const r = await fusedAndPlain(g.encode(), input());
  assert.ok(!r.nodes.includes("FusedMatMul:gelu") && !r.nodes.includes("Gelu"), r.nodes.join());
  assert.equal(r.fusion?.activations, 0);
});
