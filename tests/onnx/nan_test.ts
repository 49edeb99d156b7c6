/** NaN propagation as ONNX (numpy) and PyTorch define it: Relu, Max, Min, Clip, the reductions
 * and pools that pick a maximum, and the fused Conv+Relu / MatMul+Relu epilogues all give NaN
 * where an input is NaN. WGSL leaves min/max of a NaN to the implementation, so each of these
 * would silently turn a NaN into a number on some adapters without explicit handling. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { type BuilderAttr, GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/executor.ts";

/** [1, 2, 3, 3] with NaN at a few positions (one in every 2x2 pooling window's reach). */
function nanInput(): CpuTensor {
  const v = new Float32Array(18);
  for (let i = 0; i < v.length; i++) v[i] = (i % 5) - 2.5;
  v[0] = NaN;
  v[4] = NaN;
  v[13] = NaN;
  return cpuTensor("float32", [1, 2, 3, 3], v);
}

type Build = (b: GraphBuilder, x: string) => string;

async function runGraph(build: Build, x: CpuTensor): Promise<CpuTensor> {
  const b = new GraphBuilder("nan", 17);
  const input = b.input("x", "float32", x.shape);
  b.output(build(b, input), "float32", []);
  const model = await loadModelBytes(b.encode(), { source: "nan" });
  try {
    const out = await model.run({ x });
    return Object.values(out)[0];
  } finally {
    model.dispose();
  }
}

const scalar = (v: number) => cpuTensor("float32", [], [v]);

function one(op: string, attrs: Record<string, BuilderAttr> = {}, extra: CpuTensor[] = []): Build {
  return (b, x) => b.op(op, [x, ...extra.map((t) => b.constant("c", t))], attrs);
}

/** Indices of NaN values. */
function nanAt(t: CpuTensor): number[] {
  return [...(t.data as Float32Array)].flatMap((v, i) => (Number.isNaN(v) ? [i] : []));
}

Deno.test("NaN: elementwise Relu, Max, Min, Clip, LeakyRelu, Softplus keep NaN where it was", async () => {
  const x = nanInput();
  const cases: [string, Build][] = [
    ["Relu", one("Relu")],
    ["Max(x, 0)", one("Max", {}, [scalar(0)])],
    ["Min(x, 0)", one("Min", {}, [scalar(0)])],
    ["Max(0, x)", (b, v) => b.op("Max", [b.constant("c", scalar(0)), v])],
    ["Min(0, x)", (b, v) => b.op("Min", [b.constant("c", scalar(0)), v])],
    ["Clip(x, -1, 1)", one("Clip", {}, [scalar(-1), scalar(1)])],
    ["LeakyRelu", one("LeakyRelu", { alpha: 0.1 })],
    ["Softplus", one("Softplus")],
  ];
  for (const [label, build] of cases) {
    const y = await runGraph(build, x);
    assertEquals(nanAt(y), [0, 4, 13], label);
  }
});

Deno.test("NaN: ReduceMax, ReduceMin and MaxPool give NaN for a window or row holding one", async () => {
  const x = nanInput();
  // Rows of 3 along the last axis: rows 0, 1 and 4 hold a NaN.
  for (const op of ["ReduceMax", "ReduceMin"]) {
    const y = await runGraph(one(op, { axes: [3], keepdims: 0 }), x);
    assertEquals(nanAt(y), [0, 1, 4], op);
  }
  // 2x2 windows, stride 1, over each 3x3 channel: channel 0 has NaN at (0,0) and (1,1);
  // channel 1 at (1,1) (flat 13 = 9 + 4).
  const pooled = await runGraph(one("MaxPool", { kernel_shape: [2, 2] }), x);
  assertEquals(nanAt(pooled), [0, 1, 2, 3, 4, 5, 6, 7]);
});

Deno.test("NaN: fused Conv+Relu and MatMul+Relu keep NaN", async () => {
  const x = nanInput();
  const w = cpuTensor("float32", [2, 2, 1, 1], [1, 0, 0, 1]); // identity 1x1 convolution
  const conv = await runGraph((b, v) => b.op("Relu", [b.op("Conv", [v, b.constant("w", w)])]), x);
  // 0 * NaN is NaN: a NaN at a pixel of either channel reaches both output channels there.
  assertEquals(nanAt(conv), [0, 4, 9, 13], "Conv+Relu");
  const eye = cpuTensor("float32", [3, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const bias = cpuTensor("float32", [3], [0, 0, 0]);
  const mm = await runGraph(
    (b, v) =>
      b.op("Relu", [
        b.op("Add", [b.op("MatMul", [v, b.constant("w", eye)]), b.constant("b", bias)]),
      ]),
    x,
  );
  // Likewise a NaN reaches its whole row of 3 through the identity matrix.
  assertEquals(nanAt(mm), [0, 1, 2, 3, 4, 5, 12, 13, 14], "MatMul+Add+Relu");
});

Deno.test("NaN: ArgMax and ArgMin pick the first NaN of a row (the last with select_last_index)", async () => {
  const x = nanInput();
  // Rows of 3 along the last axis: row 0 = [NaN, -1.5, -0.5], row 1 = [0.5, NaN, -2.5], row 4
  // = [-0.5, NaN, 1.5]; the others have no NaN.
  for (const op of ["ArgMax", "ArgMin"]) {
    for (const last of [0, 1]) {
      const b = new GraphBuilder("arg", 17);
      b.output(
        b.op(op, [b.input("x", "float32", x.shape)], {
          axis: 3,
          keepdims: 0,
          select_last_index: last,
        }),
        "int64",
        [],
      );
      const model = await loadModelBytes(b.encode(), { source: op });
      try {
        const got = Array.from(Object.values(await model.run({ x }))[0].data as ArrayLike<number>);
        assertEquals([got[0], got[1], got[4]], [0, 1, 1], `${op} select_last ${last}`);
      } finally {
        model.dispose();
      }
    }
  }
});
