/** The load-time fusion pass (src/onnx/fuse.ts): the patterns that exporters write out op by op
 * become engine operators with the same results, and near misses (an intermediate used twice, a
 * graph output, other constants) are left alone. */
import assert from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/executor.ts";
import { assertClose, randomFloats } from "../helpers.ts";

let seed = 70;
const vec = (n: number, scale = 1) =>
  cpuTensor("float32", [n], Array.from(randomFloats(n, seed++), (v) => v * scale));
const mat = (r: number, c: number) => cpuTensor("float32", [r, c], randomFloats(r * c, seed++));
const scalar = (v: number) => cpuTensor("float32", [], [v]);

/** nn.LayerNorm over the last axis as torch.onnx writes it before opset 17. */
function layerNorm(g: GraphBuilder, x: string, width: number, eps = 1e-5): string {
  const mean = g.op("ReduceMean", [x], { axes: { ints: [-1] }, keepdims: { int: 1 } });
  const d = g.op("Sub", [x, mean]);
  const p = g.op("Pow", [d, g.constant("two", scalar(2))]);
  const v = g.op("ReduceMean", [p], { axes: { ints: [-1] }, keepdims: { int: 1 } });
  const e = g.op("Add", [v, g.constant("eps", scalar(eps))]);
  const s = g.op("Sqrt", [e]);
  const n = g.op("Div", [d, s]);
  const y = g.op("Mul", [n, g.constant("gamma", vec(width))]);
  return g.op("Add", [y, g.constant("beta", vec(width))]);
}

/** A Linear layer (MatMul + bias), optionally followed by QuickGELU or ReLU. */
function linear(
  g: GraphBuilder,
  x: string,
  k: number,
  n: number,
  act?: "quick_gelu" | "relu",
): string {
  const mm = g.op("MatMul", [x, g.constant("w", mat(k, n))]);
  const y = g.op("Add", [g.constant("b", vec(n)), mm]); // bias first: either order fuses
  if (act === "relu") return g.op("Relu", [y]);
  if (act === "quick_gelu") {
    const scaled = g.op("Mul", [y, g.constant("k", scalar(1.702))]);
    return g.op("Mul", [y, g.op("Sigmoid", [scaled])]);
  }
  return y;
}

async function compare(bytes: Uint8Array, inputs: Record<string, ReturnType<typeof cpuTensor>>) {
  const fused = await loadModelBytes(bytes, { source: "fuse test" });
  const plain = await loadModelBytes(bytes, { source: "fuse test", fuse: false });
  try {
    const a = await fused.run(inputs);
    const b = await plain.run(inputs);
    for (const name of Object.keys(b)) {
      assertClose(a[name].data as Float32Array, b[name].data as Float32Array, {
        rtol: 1e-5,
        atol: 1e-5,
        label: `output ${name}`,
      });
    }
    return { fused, opTypes: fused.graph.nodes.map((n) => n.opType) };
  } finally {
    fused.dispose();
    plain.dispose();
  }
}

Deno.test("fusion: a transformer block's LayerNorms, Linear biases and QuickGELU", async () => {
  const g = new GraphBuilder("block", 14);
  const x = g.input("x", "float32", [2, 5, 8]);
  const h = layerNorm(g, x, 8);
  const up = linear(g, h, 8, 12, "quick_gelu");
  const down = linear(g, up, 12, 8);
  const res = g.op("Add", [x, down]);
  const out = layerNorm(g, res, 8, 1e-6);
  const relu = linear(g, out, 8, 4, "relu");
  g.output(relu, "float32", [2, 5, 4]);
  const { fused, opTypes } = await compare(g.encode(), {
    x: cpuTensor("float32", [2, 5, 8], randomFloats(80, 1)),
  });
  assert.deepEqual(fused.fusion, { layerNorms: 2, biases: 3, activations: 2, convRelus: 0 });
  assert.deepEqual(opTypes, [
    "LayerNormalization",
    "FusedMatMul",
    "FusedMatMul",
    "Add",
    "LayerNormalization",
    "FusedMatMul",
  ]);
  const activations = fused.graph.nodes.filter((n) => n.opType === "FusedMatMul")
    .map((n) => n.attrs.get("activation"));
  assert.deepEqual(activations, ["quick_gelu", "none", "relu"]);
});

Deno.test("fusion: Conv + Relu; near misses are left as written", async () => {
  const g = new GraphBuilder("misses", 14);
  const x = g.input("x", "float32", [1, 3, 6, 6]);
  const w = g.constant("w", cpuTensor("float32", [4, 3, 3, 3], randomFloats(108, 2)));
  const conv = g.op("Conv", [x, w], { pads: { ints: [1, 1, 1, 1] } });
  const y = g.op("Relu", [conv]);
  // A conv output read twice (Relu and Add): not fused.
  const conv2 = g.op("Conv", [
    y,
    g.constant("w2", cpuTensor("float32", [4, 4, 1, 1], randomFloats(16, 3))),
  ]);
  const z = g.op("Add", [g.op("Relu", [conv2]), conv2]);
  // MatMul + Add whose addend is not a 1-D constant (a residual): not a bias.
  const flat = g.op("Reshape", [z, g.constant("shape", cpuTensor("int64", [2], [4, 36]))]);
  const mm = g.op("MatMul", [flat, g.constant("m", mat(36, 36))]);
  const r = g.op("Add", [mm, flat]);
  // Mul by 1.7 instead of 1.702 before the sigmoid: not QuickGELU.
  const mm2 = g.op("MatMul", [r, g.constant("m2", mat(36, 5))]);
  const gelu = g.op("Mul", [
    mm2,
    g.op("Sigmoid", [g.op("Mul", [mm2, g.constant("k", scalar(1.7))])]),
  ]);
  g.output(gelu, "float32", [4, 5]);
  // A LayerNorm whose mean is also a graph output: not fused.
  const mean = g.op("ReduceMean", [gelu], { axes: { ints: [-1] }, keepdims: { int: 1 } });
  g.output(mean, "float32", [4, 1]);
  const { fused, opTypes } = await compare(g.encode(), {
    x: cpuTensor("float32", [1, 3, 6, 6], randomFloats(108, 4)),
  });
  assert.deepEqual(fused.fusion, { layerNorms: 0, biases: 0, activations: 0, convRelus: 1 });
  assert.equal(opTypes[0], "FusedConv");
  assert.deepEqual(opTypes.slice(1, 4), ["Conv", "Relu", "Add"]);
});
