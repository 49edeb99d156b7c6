/** Encoders end to end on the shared tiny fixtures (PyTorch exports with float64 references): CLIP
 * ViT (opset 14, opset 17, float16 weights), CLIP ModifiedResNet, CLIP text (tiny and full
 * vocabulary), the torchvision ResNet aux encoder (BatchNorm folded), plus a committed aux ResNet
 * with BatchNormalization nodes kept and opaque names (tests/models/data). Each runs at the
 * fixture's batch, at batch 1 and at batch 7 (rows cycled), through the encoder API. */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cpuTensor } from "../../src/util/tensor.ts";
import { downloadTensor, getGpu, releaseTensor, uploadCpuTensor } from "../../src/gpu/mod.ts";
import {
  BatchInputError,
  CLIP_TEXT,
  clipImage,
  type Encoder,
  EncoderError,
  loadEncoder,
} from "../../src/models/mod.ts";
import { sharedPath } from "../helpers.ts";
import {
  assertMatchesReference,
  type EncoderCase,
  encoderCases,
  pickRefRows,
  pickRows,
  preprocessingFor,
} from "./fixture.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const BN_FIXTURE = join(HERE, "data", "aux_resnet_bn_tiny");

/** Runs the three batch sizes of the issue on one case: the fixture's batch on host tensors,
 * batch 1 for each row, batch 7 (rows cycled) with GPU input and GPU features. */
async function checkCase(c: EncoderCase): Promise<void> {
  const encoder = await loadEncoder(c.path, preprocessingFor(c));
  try {
    const [batch, dim] = c.outputShape;
    if (encoder.featureDim !== undefined) assert.equal(encoder.featureDim, dim);
    const all = [...Array(batch).keys()];
    const y = await encoder.encodeToCpu(c.input);
    assert.deepEqual(y.shape, [batch, dim]);
    const s = assertMatchesReference(y.data, c.reference, `${c.label} batch ${batch}`);
    console.log(
      `  ${c.label}: max|y - ref| ${s.maxErr.toExponential(2)}, max|ref| ${s.maxRef.toFixed(3)}`,
    );

    for (const r of all) {
      const y1 = await encoder.encodeToCpu(pickRows(c.input, [r]));
      assertMatchesReference(y1.data, pickRefRows(c.reference, dim, [r]), `${c.label} row ${r}`);
    }

    const rows7 = Array.from({ length: 7 }, (_, i) => i % batch);
    const gpu = await getGpu();
    const x7 = uploadCpuTensor(gpu, pickRows(c.input, rows7));
    const f7 = await encoder.encode(x7);
    releaseTensor(gpu, x7);
    const y7 = await downloadTensor(gpu, f7);
    releaseTensor(gpu, f7);
    assert.deepEqual(y7.shape, [7, dim]);
    assertMatchesReference(y7.data, pickRefRows(c.reference, dim, rows7), `${c.label} batch 7`);
  } finally {
    encoder.dispose();
  }
}

const FIXTURES = [
  "clip_vit_tiny",
  "clip_rn_tiny",
  "clip_text_tiny",
  "clip_text_fullvocab_tiny",
  "aux_resnet_tiny",
];

for (const name of FIXTURES) {
  const dir = sharedPath("fixtures", name);
  if (!dir) continue;
  for (const c of encoderCases(dir)) {
    Deno.test(`encoder fixture ${c.label} (opset ${c.opset}, ${c.weightsDtype} weights)`, () =>
      checkCase(c));
  }
}

for (const c of encoderCases(BN_FIXTURE)) {
  Deno.test(`encoder fixture ${c.label} (BatchNormalization kept, opaque names)`, () =>
    checkCase(c));
}

// ---- input checks and batch splitting ----

Deno.test("text encoder: a vocabulary smaller than the tokenizer's is rejected at load", async () => {
  const dir = sharedPath("fixtures", "clip_text_tiny");
  if (!dir) return;
  const c = encoderCases(dir)[0];
  // The tiny model's table has 512 rows; CLIP's tokenizer emits ids up to 49407.
  await assert.rejects(
    () => loadEncoder(c.path, { ...CLIP_TEXT, contextLength: 16 }),
    (e: Error) => {
      assert.ok(e instanceof EncoderError, String(e));
      assert.match(e.message, /token-embedding table has 512 rows.*ids up to 49407/);
      return true;
    },
  );
  // The same model with its own tokenizer range loads, reports its vocabulary, and rejects ids
  // past the table before running.
  const encoder = await loadEncoder(c.path, { kind: "text", contextLength: 16, maxTokenId: 511 });
  try {
    assert.equal(encoder.vocabSize, 512);
    const bad = pickRows(c.input, [0, 1]);
    bad.data[5] = 600;
    await assert.rejects(() => encoder.encodeToCpu(bad), /token id 600 at row 0, position 5/);
  } finally {
    encoder.dispose();
  }
});

Deno.test("text encoder: CLIP's full vocabulary passes the tokenizer check", async () => {
  const dir = sharedPath("fixtures", "clip_text_fullvocab_tiny");
  if (!dir) return;
  const encoder = await loadEncoder(encoderCases(dir)[0].path, CLIP_TEXT);
  assert.equal(encoder.vocabSize, 49408);
  assert.deepEqual(encoder.itemShape, [77]);
  encoder.dispose();
});

Deno.test("encoders reject inputs of the wrong rank, shape or dtype before running", async () => {
  const dir = sharedPath("fixtures", "clip_vit_tiny");
  const tdir = sharedPath("fixtures", "clip_text_tiny");
  if (!dir || !tdir) return;
  const c = encoderCases(dir)[0];
  const image = await loadEncoder(c.path, clipImage(32));
  try {
    const cases = [
      cpuTensor("float32", [3, 32, 32]), // missing batch axis
      cpuTensor("float32", [2, 32, 32, 3]), // NHWC
      cpuTensor("float32", [2, 3, 64, 64]), // wrong size
      cpuTensor("int64", [2, 3, 32, 32]), // wrong dtype
    ];
    for (const x of cases) {
      await assert.rejects(() => image.encodeToCpu(x), (e: Error) => {
        assert.ok(e instanceof BatchInputError, String(e));
        assert.match(e.message, /image encoder input must be float32 \[batch,3,32,32\]/);
        return true;
      });
    }
    const text = await loadEncoder(encoderCases(tdir)[0].path, {
      kind: "text",
      contextLength: 16,
    });
    try {
      await assert.rejects(
        () => text.encodeToCpu(cpuTensor("float32", [2, 16])),
        /text encoder input must be int64 token ids \[batch,16\], got float32 \[2,16\]/,
      );
      await assert.rejects(
        () => text.encodeToCpu(cpuTensor("int64", [2, 77])),
        /got int64 \[2,77\]/,
      );
    } finally {
      text.dispose();
    }
    // Preprocessing that does not match the model's declared input is caught at load.
    await assert.rejects(() => loadEncoder(c.path, clipImage(224)), EncoderError);
  } finally {
    image.dispose();
  }
});

async function chunkedEncoder(c: EncoderCase, rowsPerChunk: number): Promise<Encoder> {
  // Budget from the 1-row plan's estimate so the encoder itself derives `rowsPerChunk`.
  const probe = await loadEncoder(c.path, preprocessingFor(c));
  const one = await probe.planBatch(1);
  probe.dispose();
  const perRow = one.planMemory.total - one.planMemory.weights - one.planMemory.packedWeights;
  return await loadEncoder(c.path, preprocessingFor(c), {
    memoryBudget: perRow * rowsPerChunk + perRow / 2,
  });
}

Deno.test("batches are split into chunks sized from the plan's memory estimate", async () => {
  const dir = sharedPath("fixtures", "clip_vit_tiny");
  if (!dir) return;
  const c = encoderCases(dir)[0];
  const encoder = await chunkedEncoder(c, 2);
  const gpu = await getGpu();
  try {
    const rows7 = [0, 1, 2, 0, 1, 2, 0];
    const plan = await encoder.planBatch(7, { outputs: true, inputs: true });
    assert.equal(plan.chunkRows, 2);
    assert.deepEqual(plan.chunks.map((k) => k.rows), [2, 2, 2, 1]);
    assert.ok(plan.peakBytes >= plan.planMemory.total + plan.outputBytes);
    assert.equal(plan.outputBytes, 7 * 32 * 4);
    const ref = pickRefRows(c.reference, 32, rows7);
    // Host input, host output.
    const y = await encoder.encodeToCpu(pickRows(c.input, rows7));
    assertMatchesReference(y.data, ref, "chunked host");
    // GPU input (chunks after the first are copied out of it), GPU output stitched on the GPU.
    const x = uploadCpuTensor(gpu, pickRows(c.input, rows7));
    const f = await encoder.encode(x);
    releaseTensor(gpu, x);
    assert.deepEqual(f.shape, [7, 32]);
    const yg = await downloadTensor(gpu, f);
    releaseTensor(gpu, f);
    assertMatchesReference(yg.data, ref, "chunked GPU");
  } finally {
    encoder.dispose();
  }
});

Deno.test("text batches split into chunks match the unsplit reference", async () => {
  const dir = sharedPath("fixtures", "clip_text_tiny");
  if (!dir) return;
  const c = encoderCases(dir)[0];
  const encoder = await chunkedEncoder(c, 3);
  try {
    const rows = [2, 1, 0, 2, 1];
    const plan = await encoder.planBatch(rows.length);
    assert.deepEqual(plan.chunks.map((k) => k.rows), [3, 2]);
    const y = await encoder.encodeToCpu(pickRows(c.input, rows));
    assertMatchesReference(y.data, pickRefRows(c.reference, 32, rows), "chunked text");
  } finally {
    encoder.dispose();
  }
});
