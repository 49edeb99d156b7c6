/** ONNX loading and execution layer: initializer encodings, external data, Constant forms, bad
 * files, graph checks (cycles, unsupported operators, dead nodes), input validation, shape-value
 * inputs, buffer reuse and the GPU-resident API. */
import { deepStrictEqual as assertEquals, ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { downloadTensor, getGpu, releaseTensor, uploadCpuTensor } from "../../src/gpu/mod.ts";
import { EngineError } from "../../src/util/errors.ts";
import {
  GraphError,
  InputError,
  loadModel,
  loadModelBytes,
  type Model,
  NodeError,
  OPS,
  readTensorProto,
  tensorToProto,
  UnsupportedError,
  UnsupportedOperatorError,
} from "../../src/onnx/mod.ts";
import { findOp } from "../../src/onnx/graph.ts";
import { randomFloats } from "../helpers.ts";
import {
  A,
  encodeModel,
  init,
  int,
  ints,
  type ITensorProto,
  type ModelParts,
  node,
  onnx,
  T,
  vi,
} from "./_proto.ts";

async function load(p: ModelParts, source = "test.onnx"): Promise<Model> {
  return loadModelBytes(encodeModel(p), { source, gpu: await getGpu() });
}

/** Runs a model and disposes it. */
async function runOnce(
  p: ModelParts,
  inputs: Record<string, CpuTensor> = {},
): Promise<Record<string, CpuTensor>> {
  const m = await load(p);
  try {
    return await m.run(inputs);
  } finally {
    m.dispose();
  }
}

function values(t: CpuTensor): number[] {
  return Array.from(t.data);
}

/** Reference evaluation of a whole model with every operator's CPU implementation. */
function runOnCpu(m: Model, inputs: Record<string, CpuTensor>): Record<string, CpuTensor> {
  const env = new Map<string, CpuTensor>(m.graph.constants);
  for (const [k, v] of Object.entries(inputs)) env.set(k, v);
  for (const n of m.graph.nodes) {
    const op = findOp(OPS, n)!;
    const outs = op.cpu(
      { node: n, opset: m.graph.opsets.get("")! },
      n.inputs.map((i) => env.get(i)),
    );
    n.outputs.forEach((o, k) => env.set(o, outs[k]));
  }
  return Object.fromEntries(m.outputs.map((o) => [o.name, env.get(o.name)!]));
}

// ---- tensor encodings ----

Deno.test("onnx: initializer encodings (typed fields and raw_data) for every dtype", () => {
  const cases: [ITensorProto, string, number[], number[]][] = [
    [{ dataType: T.FLOAT, dims: [3], floatData: [1.5, -2, 3] }, "float32", [3], [1.5, -2, 3]],
    [
      {
        dataType: T.FLOAT,
        dims: [2],
        rawData: new Uint8Array(new Float32Array([0.25, -8]).buffer),
      },
      "float32",
      [2],
      [0.25, -8],
    ],
    // float16 as int32_data bits and as raw bits: 1.0 = 0x3c00, -2.5 = 0xc100, 65504 = 0x7bff
    [{ dataType: T.FLOAT16, dims: [3], int32Data: [0x3c00, 0xc100, 0x7bff] }, "float16", [3], [
      1,
      -2.5,
      65504,
    ]],
    [
      {
        dataType: T.FLOAT16,
        dims: [2],
        rawData: new Uint8Array(new Uint16Array([0x3c00, 0xc100]).buffer),
      },
      "float16",
      [2],
      [1, -2.5],
    ],
    [{ dataType: T.INT64, dims: [2, 1], int64Data: [-7, 2 ** 40] }, "int64", [2, 1], [-7, 2 ** 40]],
    [
      {
        dataType: T.INT64,
        dims: [2],
        rawData: new Uint8Array(new BigInt64Array([-3n, 9n]).buffer),
      },
      "int64",
      [2],
      [-3, 9],
    ],
    [{ dataType: T.INT32, dims: [2], int32Data: [-1, 5] }, "int32", [2], [-1, 5]],
    [{ dataType: T.BOOL, dims: [3], int32Data: [1, 0, 1] }, "bool", [3], [1, 0, 1]],
    [{ dataType: T.BOOL, dims: [2], rawData: new Uint8Array([0, 1]) }, "bool", [2], [0, 1]],
    // converted to the nearest engine dtype
    [{ dataType: T.DOUBLE, dims: [2], doubleData: [0.5, 1e-3] }, "float32", [2], [
      0.5,
      Math.fround(1e-3),
    ]],
    // int8 / uint8 load as themselves (quantized tensors)
    [{ dataType: T.UINT8, dims: [2], rawData: new Uint8Array([255, 7]) }, "uint8", [2], [255, 7]],
    [{ dataType: T.INT8, dims: [2], int32Data: [-5, 7] }, "int8", [2], [-5, 7]],
    [{ dataType: T.INT8, dims: [2], rawData: new Uint8Array([251, 7]) }, "int8", [2], [-5, 7]],
    [{ dataType: T.FLOAT, dims: [], floatData: [4] }, "float32", [], [4]],
    [{ dataType: T.FLOAT, dims: [0, 3] }, "float32", [0, 3], []],
  ];
  for (const [proto, dtype, shape, expected] of cases) {
    const { tensor } = readTensorProto(proto);
    assertEquals(tensor.dtype, dtype);
    assertEquals([...tensor.shape], shape);
    assertEquals(values(tensor), expected);
  }
});

Deno.test("onnx: bad initializers name the tensor", () => {
  throws(
    () => readTensorProto({ name: "w", dataType: T.FLOAT, dims: [4], floatData: [1, 2] }),
    /tensor 'w': has 2 values but dims \[4\] need 4/,
  );
  throws(
    () => readTensorProto({ name: "s", dataType: T.STRING, dims: [1] }),
    /tensor 's': element type string is not supported/,
  );
  throws(
    () => readTensorProto({ name: "r", dataType: T.FLOAT, dims: [3], rawData: new Uint8Array(8) }),
    /tensor 'r': raw data has 8 bytes/,
  );
});

Deno.test("onnx: initializers of every form reach the outputs through a model", async () => {
  const out = await runOnce({
    nodes: [
      node("Identity", ["a"], ["ya"]),
      node("Identity", ["b"], ["yb"]),
      node("Identity", ["c"], ["yc"]),
      node("Identity", ["d"], ["yd"]),
      node("Identity", ["e"], ["ye"]),
    ],
    initializers: [
      { name: "a", dataType: T.FLOAT, dims: [2], floatData: [1, 2] },
      { name: "b", dataType: T.FLOAT16, dims: [1], int32Data: [0x3c00] },
      { name: "c", dataType: T.INT64, dims: [1], int64Data: [12] },
      { name: "d", dataType: T.INT32, dims: [1], int32Data: [-3] },
      { name: "e", dataType: T.BOOL, dims: [1], int32Data: [1] },
    ],
    outputs: [
      vi("ya", "float32", [2]),
      vi("yb", "float16", [1]),
      vi("yc", "int64", [1]),
      vi("yd", "int32", [1]),
      vi("ye", "bool", [1]),
    ],
  });
  assertEquals(values(out.ya), [1, 2]);
  assertEquals(out.yb.dtype, "float16");
  assertEquals(values(out.yb), [1]);
  assertEquals(values(out.yc), [12]);
  assertEquals(values(out.yd), [-3]);
  assertEquals(values(out.ye), [1]);
});

// ---- external data ----

Deno.test("onnx: external data relative to the model file, and a missing file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "onnx_ext_" });
  try {
    const w = new Float32Array([1, 2, 3, 4, 5, 6]);
    const file = new Uint8Array(8 + w.byteLength);
    file.set(new Uint8Array(w.buffer), 8); // data at offset 8
    await Deno.mkdir(join(dir, "data"));
    await Deno.writeFile(join(dir, "data", "weights.bin"), file);
    const external = (location: string): ITensorProto => ({
      name: "w",
      dataType: T.FLOAT,
      dims: [2, 3],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: location },
        { key: "offset", value: "8" },
        { key: "length", value: String(w.byteLength) },
      ],
    });
    const parts = (location: string): ModelParts => ({
      // Concat runs on the GPU, so the external weight is uploaded and read by a kernel.
      nodes: [node("Concat", ["x", "w"], ["y"], [int("axis", 0)])],
      inputs: [vi("x", "float32", [1, 3])],
      outputs: [vi("y", "float32", [3, 3])],
      initializers: [external(location)],
    });
    const path = join(dir, "model.onnx");
    await Deno.writeFile(path, encodeModel(parts("data/weights.bin")));
    const m = await loadModel(path);
    const out = await m.run({ x: cpuTensor("float32", [1, 3], [7, 8, 9]) });
    m.dispose();
    assertEquals(values(out.y), [7, 8, 9, 1, 2, 3, 4, 5, 6]);

    // The data file is shorter than offset + length claims.
    await Deno.writeFile(join(dir, "data", "short.bin"), file.slice(0, 20));
    await Deno.writeFile(path, encodeModel(parts("data/short.bin")));
    await rejects(() => loadModel(path), /tensor 'w'.*short\.bin.*reaches past its end/);

    await Deno.writeFile(path, encodeModel(parts("data/missing.bin")));
    await rejects(
      () => loadModel(path),
      (e: Error) =>
        e instanceof EngineError && e.message.includes("missing.bin") &&
        e.message.includes("tensor 'w'") && e.message.includes("model.onnx"),
    );

    // Locations outside the model's folder are refused, even when the file exists and reads.
    const outside = join(dir, "..", `${dir.split("/").pop()}_outside.bin`);
    await Deno.writeFile(outside, file);
    try {
      for (const location of ["../" + outside.split("/").pop(), outside, "data/../../x.bin", "."]) {
        await Deno.writeFile(path, encodeModel(parts(location)));
        await rejects(
          () => loadModel(path),
          (e: Error) =>
            e instanceof EngineError && e.message.includes("tensor 'w'") &&
            e.message.includes(
              `external data location '${location}' is outside the model's folder`,
            ),
          location,
        );
      }
    } finally {
      await Deno.remove(outside);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- Constant nodes ----

Deno.test("onnx: Constant node in every attribute form", async () => {
  const c = (out: string, attr: object) =>
    node("Constant", [], [out], [attr as never], `const_${out}`);
  const out = await runOnce({
    nodes: [
      c("t", { name: "value", type: A.TENSOR, t: init("v", cpuTensor("float32", [2], [1, 2])) }),
      c("f", { name: "value_float", type: A.FLOAT, f: 0.5 }),
      c("fs", { name: "value_floats", type: A.FLOATS, floats: [1.5, 2.5] }),
      c("i", { name: "value_int", type: A.INT, i: 7 }),
      c("is", { name: "value_ints", type: A.INTS, ints: [3, -4] }),
    ],
    outputs: [
      vi("t", "float32", [2]),
      vi("f", "float32", []),
      vi("fs", "float32", [2]),
      vi("i", "int64", []),
      vi("is", "int64", [2]),
    ],
  });
  assertEquals([values(out.t), out.t.dtype], [[1, 2], "float32"]);
  assertEquals([values(out.f), out.f.shape], [[0.5], []]);
  assertEquals(values(out.fs), [1.5, 2.5]);
  assertEquals([values(out.i), out.i.dtype, out.i.shape], [[7], "int64", []]);
  assertEquals([values(out.is), out.is.dtype], [[3, -4], "int64"]);

  await rejects(
    () =>
      load({
        nodes: [
          c("s", { name: "value_string", type: A.STRING, s: new TextEncoder().encode("hi") }),
        ],
        outputs: [vi("s", "float32", [])],
      }),
    (e: Error) => e instanceof NodeError && /const_s.*string constants/.test(e.message),
  );
});

// ---- bad files and graphs ----

Deno.test("onnx: truncated or corrupt model files: one error naming the file", async () => {
  const good = encodeModel({
    nodes: [node("Identity", ["x"], ["y"])],
    inputs: [vi("x", "float32", [2])],
    outputs: [vi("y", "float32", [2])],
    initializers: [init("unused", cpuTensor("float32", [64]))],
  });
  const dir = await Deno.makeTempDir({ prefix: "onnx_bad_" });
  try {
    for (
      const [name, bytes] of [
        ["truncated.onnx", good.slice(0, good.length - 20)],
        ["garbage.onnx", new Uint8Array(100).map((_, i) => (i * 37 + 11) & 0xff)],
        ["empty.onnx", new Uint8Array(0)],
      ] as const
    ) {
      const path = join(dir, name);
      await Deno.writeFile(path, bytes);
      await rejects(
        () => loadModel(path),
        (e: Error) => e instanceof EngineError && e.message.includes(name),
        name,
      );
    }
    await rejects(
      () => loadModel(join(dir, "absent.onnx")),
      (e: Error) => e instanceof EngineError && /absent\.onnx: file not found/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onnx: a cycle is reported with the nodes in it", async () => {
  await rejects(
    () =>
      load({
        nodes: [
          node("Identity", ["x"], ["a"], [], "entry"),
          node("Concat", ["a", "c"], ["b"], [int("axis", 0)], "left"),
          node("Identity", ["b"], ["c"], [], "right"),
        ],
        inputs: [vi("x", "float32", [2])],
        outputs: [vi("c", "float32", [4])],
      }),
    (e: Error) =>
      e instanceof GraphError && e.message.includes("cycle") && e.message.includes("'left'") &&
      e.message.includes("'right'") && !e.message.includes("'entry'"),
  );
});

Deno.test("onnx: all unsupported operators listed at once, dead nodes ignored", async () => {
  const err = await load({
    nodes: [
      node("FancyOp", ["x"], ["a"], [], "fancy_1"),
      node("Identity", ["a"], ["b"]),
      node("FancyOp", ["b"], ["c"], [], "fancy_2"),
      node("OtherOp", ["c"], ["d"]), // unnamed: reported as OtherOp_3
      node("Identity", ["d"], ["y"], [], "", "com.example"),
      node("DeadOp", ["x"], ["unused"], [], "dead"), // does not reach an output
    ],
    inputs: [vi("x", "float32", [2])],
    outputs: [vi("y", "float32", [2])],
    extraOpsets: [{ domain: "com.example", version: 1 }],
  }).then(() => undefined, (e) => e);
  ok(err instanceof UnsupportedOperatorError, String(err));
  const msg = err.message;
  for (
    const s of [
      "FancyOp",
      "'fancy_1'",
      "'fancy_2'",
      "OtherOp",
      "'OtherOp_3'",
      "com.example.Identity",
    ]
  ) {
    ok(msg.includes(s), `${s} missing from: ${msg}`);
  }
  ok(!msg.includes("DeadOp"), msg);
  ok(msg.startsWith("test.onnx"), msg);
});

Deno.test("onnx: inputs of element types the engine lacks are unsupported", async () => {
  await rejects(
    () =>
      load({
        nodes: [node("Identity", ["x"], ["y"])],
        inputs: [vi("x", T.DOUBLE, [2])],
        outputs: [vi("y", T.DOUBLE, [2])],
      }),
    (e: Error) =>
      e instanceof UnsupportedError && /input 'x' has element type float64/.test(e.message),
  );
});

Deno.test("onnx: a value nobody produces is named", async () => {
  await rejects(
    () =>
      load({
        nodes: [node("Identity", ["ghost"], ["y"], [], "reader")],
        outputs: [vi("y", "float32", [2])],
      }),
    /node 'reader' \(Identity\) reads 'ghost'/,
  );
});

// ---- input validation ----

Deno.test("onnx: bad inputs name the input with expected vs got", async () => {
  const m = await load({
    nodes: [node("Concat", ["a", "b"], ["y"], [int("axis", 0)])],
    inputs: [vi("a", "float32", ["n", 3]), vi("b", "float32", ["n", 3])],
    outputs: [vi("y", "float32", ["m", 3])],
    initializers: [init("w", cpuTensor("float32", [1]))],
  });
  const f = (shape: number[]) => cpuTensor("float32", shape);
  try {
    const cases: [Record<string, CpuTensor>, RegExp][] = [
      [{ a: f([2, 3]) }, /missing input\(s\) 'b'/],
      [{ a: f([2, 3]), b: f([2, 3]), c: f([1]) }, /unknown input\(s\) 'c'.*inputs are 'a', 'b'/],
      [{ a: f([2, 3]), b: f([2, 3]), w: f([1]) }, /'w'.*initializers, not inputs/],
      [
        { a: f([2, 3]), b: cpuTensor("int32", [2, 3]) },
        /input 'b': expected dtype float32, got int32/,
      ],
      [{ a: f([2, 3]), b: f([6]) }, /input 'b': expected rank 2 \[n,3\], got rank 1 \[6\]/],
      [
        { a: f([2, 3]), b: f([2, 4]) },
        /input 'b': expected shape \[n,3\], got \[2,4\] \(dim 1 is 4, must be 3\)/,
      ],
      [{ a: f([2, 3]), b: f([5, 3]) }, /dimension 'n' is 2 in input 'a' but 5 in input 'b'/],
      [
        { a: f([2, 3]), b: { dtype: "float32", shape: [2, 3], data: new Float32Array(5) } },
        /input 'b': 5 values for shape \[2,3\] \(needs 6\)/,
      ],
    ];
    for (const [inputs, re] of cases) {
      await rejects(
        () => m.run(inputs),
        (e: Error) => e instanceof InputError && re.test(e.message),
        String(re),
      );
    }
    // Dynamic dims accept any size; the model still works after the errors.
    const out = await m.run({
      a: cpuTensor("float32", [1, 3], [1, 2, 3]),
      b: cpuTensor("float32", [1, 3], [4, 5, 6]),
    });
    assertEquals(values(out.y), [1, 2, 3, 4, 5, 6]);
  } finally {
    m.dispose();
  }
});

Deno.test("onnx: int64 data that does not fit in i32 is a clear error", async () => {
  const m = await load({
    nodes: [node("Concat", ["a", "a"], ["y"], [int("axis", 0)])],
    inputs: [vi("a", "int64", [2])],
    outputs: [vi("y", "int64", [4])],
  });
  try {
    await rejects(
      () => m.run({ a: cpuTensor("int64", [2], [1, 2 ** 40]) }),
      (e: Error) => e instanceof EngineError && /input 'a'.*does not fit/.test(e.message),
    );
    const out = await m.run({ a: cpuTensor("int64", [2], [-5, 2 ** 31 - 1]) });
    assertEquals([out.y.dtype, values(out.y)], ["int64", [-5, 2 ** 31 - 1, -5, 2 ** 31 - 1]]);
  } finally {
    m.dispose();
  }
});

// ---- planning ----

Deno.test("onnx: shape inputs given at run time become part of the plan key", async () => {
  const m = await load({
    nodes: [
      node("Reshape", ["x", "shape"], ["r"]),
      node("Transpose", ["r"], ["y"], [ints("perm", [1, 0])]),
    ],
    inputs: [vi("x", "float32", [6]), vi("shape", "int64", [2])],
    outputs: [vi("y", "float32", ["a", "b"])],
  });
  try {
    const x = cpuTensor("float32", [6], [0, 1, 2, 3, 4, 5]);
    const y1 = await m.run({ x, shape: cpuTensor("int64", [2], [2, 3]) });
    assertEquals([[...y1.y.shape], values(y1.y)], [[3, 2], [0, 3, 1, 4, 2, 5]]);
    const y2 = await m.run({ x, shape: cpuTensor("int64", [2], [3, -1]) });
    assertEquals([[...y2.y.shape], values(y2.y)], [[2, 3], [0, 2, 4, 1, 3, 5]]);
    await m.run({ x, shape: cpuTensor("int64", [2], [2, 3]) });
    assertEquals(m.planCount, 2);
    await rejects(() => m.plan({ x: [6], shape: [2] }), /input 'shape' feeds a shape/);
    await rejects(
      () => m.run({ x, shape: cpuTensor("int64", [2], [4, -1]) }),
      (e: Error) => e instanceof NodeError && /Reshape_0.*cannot reshape \[6\]/.test(e.message),
    );
  } finally {
    m.dispose();
  }
});

Deno.test("onnx: activations reuse buffers; views and graph outputs stay intact", async () => {
  // x -> T -> T -> ... (8 transposes) with a Reshape view in the middle exposed as an output.
  const nodes = [];
  let cur = "x";
  for (let i = 0; i < 8; i++) {
    nodes.push(node("Transpose", [cur], [`t${i}`], [ints("perm", [1, 0])]));
    cur = `t${i}`;
    if (i === 3) {
      nodes.push(node("Reshape", [cur, "s"], ["view"]));
      nodes.push(node("Reshape", ["view", "s2"], ["back"]));
      cur = "back";
    }
  }
  nodes.push(node("Concat", [cur, "x"], ["y"], [int("axis", 0)]));
  const m = await load({
    nodes,
    inputs: [vi("x", "float32", [16, 32])],
    outputs: [vi("y", "float32", [32, 32]), vi("view", "float32", [512])],
    initializers: [
      init("s", cpuTensor("int64", [1], [512])),
      init("s2", cpuTensor("int64", [2], [16, 32])),
    ],
  });
  try {
    const x = cpuTensor("float32", [16, 32], randomFloats(512, 1));
    const plan = await m.plan({ x: [16, 32] });
    const out = await m.run({ x });
    const ref = runOnCpu(m, { x });
    assertEquals(values(out.y), values(ref.y));
    assertEquals(values(out.view), values(ref.view));
    assertEquals([...out.view.shape], [512]);
    // 9 GPU results of 2 KiB each; lifetimes overlap at most 3 at a time (plus the pinned view).
    ok(plan.memory.activations <= 4 * 2048, plan.describe());
    ok(plan.memory.inputs >= 2048, plan.describe());
    // A second run replays the same plan.
    const again = await m.run({ x });
    assertEquals(values(again.y), values(ref.y));
    assertEquals(m.planCount, 1);
  } finally {
    m.dispose();
  }
});

Deno.test("onnx: runGpu keeps data on the GPU between models", async () => {
  const gpu = await getGpu();
  const first = await load({
    nodes: [node("Transpose", ["x"], ["y"], [ints("perm", [1, 0])]), node("Shape", ["y"], ["s"])],
    inputs: [vi("x", "float32", [2, 3])],
    outputs: [vi("y", "float32", [3, 2]), vi("s", "int64", [2])],
  });
  const second = await load({
    nodes: [node("Concat", ["a", "a"], ["b"], [int("axis", 1)])],
    inputs: [vi("a", "float32", [3, 2])],
    outputs: [vi("b", "float32", [3, 4])],
  });
  try {
    const x = uploadCpuTensor(gpu, cpuTensor("float32", [2, 3], [1, 2, 3, 4, 5, 6]));
    const mid = await first.runGpu({ x });
    releaseTensor(gpu, x);
    assertEquals(values(await downloadTensor(gpu, mid.s)), [3, 2]);
    const out = await second.runGpu({ a: mid.y });
    releaseTensor(gpu, mid.y);
    releaseTensor(gpu, mid.s);
    const b = await downloadTensor(gpu, out.b);
    releaseTensor(gpu, out.b);
    assertEquals(values(b), [1, 4, 1, 4, 2, 5, 2, 5, 3, 6, 3, 6]);
  } finally {
    first.dispose();
    second.dispose();
  }
});

Deno.test("onnx: shape values computed from graph inputs are traced back and folded", async () => {
  // Reshape's shape must be known at plan time; here it is Concat(s, s) of graph input 's', so
  // 's' becomes a plan-time value and the Concat folds on the CPU.
  const out = await runOnce(
    {
      nodes: [
        node("Concat", ["s", "s"], ["shape"], [int("axis", 0)]),
        node("Reshape", ["x", "shape"], ["y"]),
      ],
      inputs: [vi("x", "float32", [4]), vi("s", "int64", [1])],
      outputs: [vi("y", "float32", [2, 2])],
    },
    { x: cpuTensor("float32", [4], [1, 2, 3, 4]), s: cpuTensor("int64", [1], [2]) },
  );
  assertEquals([[...out.y.shape], values(out.y)], [[2, 2], [1, 2, 3, 4]]);
});

Deno.test("onnx: Squeeze/Unsqueeze axes as attribute (opset < 13) and input", async () => {
  const x = cpuTensor("float32", [1, 3, 1], [1, 2, 3]);
  const v11 = await runOnce({
    opset: 11,
    nodes: [
      node("Squeeze", ["x"], ["s"], [ints("axes", [0, 2])]),
      node("Unsqueeze", ["s"], ["u"], [ints("axes", [-1, 0])]),
    ],
    inputs: [vi("x", "float32", [1, 3, 1])],
    outputs: [vi("s", "float32", [3]), vi("u", "float32", [1, 3, 1])],
  }, { x });
  assertEquals([[...v11.s.shape], [...v11.u.shape]], [[3], [1, 3, 1]]);
  const v13 = await runOnce({
    opset: 13,
    nodes: [node("Squeeze", ["x", "ax"], ["s"]), node("Unsqueeze", ["s", "ax"], ["u"])],
    inputs: [vi("x", "float32", [1, 3, 1])],
    initializers: [init("ax", cpuTensor("int64", [1], [-1]))],
    outputs: [vi("s", "float32", [1, 3]), vi("u", "float32", [1, 3, 1])],
  }, { x });
  assertEquals([[...v13.s.shape], [...v13.u.shape], values(v13.u)], [[1, 3], [1, 3, 1], [1, 2, 3]]);
});

Deno.test("tensor proto: int64 clamp sentinels round-trip (INT64_MAX stays INT64_MAX)", () => {
  const values = [2 ** 63, -(2 ** 63), 5, -7];
  const proto = tensorToProto("ends", cpuTensor("int64", [4], Float64Array.from(values)));
  const raw = proto.rawData as Uint8Array;
  const written = new BigInt64Array(raw.buffer, raw.byteOffset, 4);
  assertEquals([...written], [2n ** 63n - 1n, -(2n ** 63n), 5n, -7n]);
  assertEquals([...readTensorProto(proto).tensor.data], values);
});
