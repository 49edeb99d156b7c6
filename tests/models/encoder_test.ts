/** The encoder API on small graphs built here (fast, no shared data): finding the ids input and
 * the token-embedding table whatever the names, casts and reshapes, Hugging Face-style attention
 * masks, chunking on GPU and host, and the run task's batching helper. */
import assert from "node:assert/strict";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { downloadTensor, getGpu, releaseTensor, uploadCpuTensor } from "../../src/gpu/mod.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/mod.ts";
import {
  attentionMaskFor,
  BatchedModel,
  BatchInputError,
  Encoder,
  EncoderError,
  imagenetImage,
  type Preprocessing,
  tokenEmbeddingRows,
} from "../../src/models/mod.ts";
import { randomFloats } from "../helpers.ts";

const VOCAB = 50, WIDTH = 6, CTX = 5;
const TABLE = randomFloats(VOCAB * WIDTH, 7);

/** Text tower stand-in: mean over positions of the embedded ids (through a Cast to int32 and a
 * Reshape round trip, with opaque names), optionally weighted by an attention mask input. */
function textModel(opts: { mask?: boolean; fp16Table?: boolean } = {}): Uint8Array {
  const g = new GraphBuilder("t", 14);
  const ids = g.input("q0", "int64", ["B", CTX]);
  const mask = opts.mask ? g.input("q1", "int64", ["B", CTX]) : undefined;
  const flat = g.op("Reshape", [
    g.op("Cast", [ids], { to: 6 }),
    g.constant("c", cpuTensor("int64", [1], [-1])),
  ]);
  const back = g.op("Reshape", [flat, g.op("Shape", [ids])]);
  let table = g.constant(
    "p",
    cpuTensor(opts.fp16Table ? "float16" : "float32", [VOCAB, WIDTH], TABLE),
  );
  if (opts.fp16Table) table = g.op("Cast", [table], { to: 1 });
  let x = g.op("Gather", [table, back], { axis: 0 });
  if (mask) {
    const m = g.op("Unsqueeze", [
      g.op("Cast", [mask], { to: 1 }),
      g.constant("a", cpuTensor("int64", [1], [2])),
    ]);
    x = g.op("Mul", [x, m]);
  }
  g.op("ReduceMean", [x], { axes: [1], keepdims: 0 }, "o");
  g.output("o", "float32", ["B", WIDTH]);
  return g.encode();
}

/** Image tower stand-in: per-channel means and maxima, [B,3,8,8] -> [B,6]. */
function imageModel(): Uint8Array {
  const g = new GraphBuilder("i", 14);
  const x = g.input("pixels", "float32", ["N", 3, 8, 8]);
  const mean = g.op("ReduceMean", [x], { axes: [2, 3], keepdims: 0 });
  const max = g.op("ReduceMax", [x], { axes: [2, 3], keepdims: 0 });
  g.op("Concat", [mean, max], { axis: 1 }, "feat");
  g.output("feat", "float32", ["N", 6]);
  return g.encode();
}

function textReference(ids: CpuTensor, mask?: CpuTensor, fp16 = false): Float64Array {
  const rows = ids.shape[0];
  const out = new Float64Array(rows * WIDTH);
  const table = fp16 ? cpuTensor("float16", [VOCAB, WIDTH], TABLE).data : TABLE;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < CTX; j++) {
      const w = mask ? mask.data[r * CTX + j] : 1;
      const id = ids.data[r * CTX + j];
      for (let c = 0; c < WIDTH; c++) out[r * WIDTH + c] += (w * table[id * WIDTH + c]) / CTX;
    }
  }
  return out;
}

function imageReference(x: Float32Array, rows: number): Float64Array {
  const out = new Float64Array(rows * 6);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < 3; c++) {
      let s = 0, m = -Infinity;
      for (let i = 0; i < 64; i++) {
        const v = x[(r * 3 + c) * 64 + i];
        s += v;
        m = Math.max(m, v);
      }
      out[r * 6 + c] = s / 64;
      out[r * 6 + 3 + c] = m;
    }
  }
  return out;
}

function ids(rows: number, seed: number): CpuTensor {
  const r = randomFloats(rows * CTX, seed, 0, VOCAB - 2);
  const t = cpuTensor("int64", [rows, CTX], Array.from(r, Math.floor));
  // End-of-text (largest id) at a row-dependent position, zeros after it.
  for (let i = 0; i < rows; i++) {
    const end = 1 + (i % (CTX - 1));
    t.data[i * CTX + end] = VOCAB - 1;
    for (let j = end + 1; j < CTX; j++) t.data[i * CTX + j] = 0;
  }
  return t;
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, label: string): void {
  assert.equal(a.length, b.length, label);
  for (let i = 0; i < a.length; i++) {
    assert.ok(
      Math.abs(a[i] - b[i]) <= 1e-5 + 1e-5 * Math.abs(b[i]),
      `${label}[${i}]: ${a[i]} vs ${b[i]}`,
    );
  }
}

async function encoderOf(bytes: Uint8Array, pre: Preprocessing, memoryBudget?: number) {
  const model = await loadModelBytes(bytes, { source: "built.onnx" });
  return new Encoder(model, pre, { memoryBudget });
}

Deno.test("token-embedding table found through casts, reshapes and opaque names", async () => {
  const model = await loadModelBytes(textModel(), { source: "t.onnx" });
  assert.equal(tokenEmbeddingRows(model.graph, "q0"), VOCAB);
  model.dispose();
  const f16 = await loadModelBytes(textModel({ fp16Table: true }), { source: "t16.onnx" });
  assert.equal(tokenEmbeddingRows(f16.graph, "q0"), VOCAB);
  f16.dispose();
  await assert.rejects(
    () => encoderOf(textModel(), { kind: "text", contextLength: CTX, maxTokenId: VOCAB }),
    /table has 50 rows, but the tokenizer emits ids up to 50/,
  );
  const e = await encoderOf(textModel(), {
    kind: "text",
    contextLength: CTX,
    maxTokenId: VOCAB - 1,
  });
  assert.equal(e.vocabSize, VOCAB);
  assert.equal(e.inputName, "q0");
  const x = ids(4, 3);
  close((await e.encodeToCpu(x)).data, textReference(x), "text");
  e.dispose();
});

Deno.test("float16 table behind a Cast encodes with rounded weights", async () => {
  const e = await encoderOf(textModel({ fp16Table: true }), { kind: "text", contextLength: CTX });
  const x = ids(3, 4);
  close((await e.encodeToCpu(x)).data, textReference(x, undefined, true), "fp16 table");
  e.dispose();
});

Deno.test("Hugging Face-style ids + attention mask: ids found by the table, mask derived", async () => {
  const e = await encoderOf(textModel({ mask: true }), { kind: "text", contextLength: CTX });
  assert.equal(e.inputName, "q0");
  assert.equal(e.maskInput?.name, "q1");
  const x = ids(5, 5);
  const mask = attentionMaskFor(x, "int64");
  assert.deepEqual(Array.from(mask.data.subarray(0, CTX)), [1, 1, 0, 0, 0]);
  close((await e.encodeToCpu(x)).data, textReference(x, mask), "masked");
  e.dispose();
});

Deno.test("image encoder: host and GPU batches split into chunks by a memory budget", async () => {
  const gpu = await getGpu();
  const probe = await encoderOf(imageModel(), {
    kind: "image",
    size: 8,
    normalization: imagenetImage().normalization,
  });
  const one = await probe.planBatch(1);
  probe.dispose();
  const perRow = one.planMemory.total - one.planMemory.weights;
  const e = await encoderOf(imageModel(), {
    kind: "image",
    size: 8,
    normalization: imagenetImage().normalization,
  }, perRow * 3);
  const rows = 11;
  const data = randomFloats(rows * 3 * 64, 9);
  const x = cpuTensor("float32", [rows, 3, 8, 8], data);
  const plan = await e.planBatch(rows, { outputs: true, inputs: true });
  assert.deepEqual(plan.chunks.map((c) => c.rows), [3, 3, 3, 2]);
  assert.ok(plan.peakBytes >= plan.planMemory.total + rows * 6 * 4);
  const ref = imageReference(data, rows);
  close((await e.encodeToCpu(x)).data, ref, "host chunks");
  const xg = uploadCpuTensor(gpu, x);
  const f = await e.encode(xg);
  releaseTensor(gpu, xg);
  assert.deepEqual(f.shape, [rows, 6]);
  close((await downloadTensor(gpu, f)).data, ref, "GPU chunks");
  releaseTensor(gpu, f);
  // Wrong inputs are named before anything runs.
  await assert.rejects(() => e.encode(cpuTensor("float32", [2, 3, 8])), BatchInputError);
  e.dispose();
});

Deno.test("encoder construction errors name what is wrong", async () => {
  // A text preprocessing on an image model, and an image size that does not match.
  await assert.rejects(
    () => encoderOf(imageModel(), { kind: "text", contextLength: CTX }),
    EncoderError,
  );
  await assert.rejects(
    () => encoderOf(imageModel(), imagenetImage(224)),
    /'pixels' is \[N,3,8,8\], but the preprocessing makes \[batch,3,224,224\]/,
  );
});

Deno.test("BatchedModel needs a shared symbolic batch axis", async () => {
  const g = new GraphBuilder("fixed", 14);
  g.input("x", "float32", [2, 3]);
  g.op("Relu", ["x"], {}, "y");
  g.output("y", "float32", [2, 3]);
  const model = await loadModelBytes(g.encode(), { source: "fixed.onnx" });
  assert.equal(BatchedModel.canBatch(model), false);
  assert.throws(() => new BatchedModel(model), /do not share a symbolic leading/);
  model.dispose();
});
