/** Architectures built from checkpoint weights: every tower of every shared checkpoint matches its
 * float64 reference within 1e-4 * max|ref| + 1e-5; hyper-parameters are inferred for shapes the
 * fixtures do not have; missing, misshapen and unknown keys are refused naming the key. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { getGpu } from "../../src/gpu/mod.ts";
import { Model, OPS } from "../../src/onnx/mod.ts";
import { readNpy } from "../../src/util/npy.ts";
import { loadTowerModel, type TowerName } from "../../src/models/model_file.ts";
import { describeCheckpoint, selectTower } from "../../src/models/arch/mod.ts";
import {
  CheckpointError,
  type StateDict,
  type WeightInfo,
} from "../../src/models/checkpoint/state_dict.ts";
import { memoryStateDict } from "../../src/models/checkpoint/memory.ts";
import { openCheckpoint } from "../../src/models/checkpoint/open.ts";
import { randomFloats, sharedPath } from "../helpers.ts";

function npyInput(path: string): CpuTensor {
  const a = readNpy(path);
  return a.dtype === "int64"
    ? cpuTensor("int64", a.shape, Array.from(a.data as BigInt64Array, Number))
    : cpuTensor("float32", a.shape, a.data as Float32Array);
}

async function assertTowerMatches(
  file: string,
  tower: TowerName | undefined,
  input: string,
  reference: string,
) {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const model = await loadTowerModel(join(dir, file), tower);
  try {
    const x = npyInput(join(dir, input));
    const out = Object.values(await model.run({ [model.inputs[0].name]: x }))[0];
    const ref = readNpy(join(dir, reference)).data as Float64Array;
    assert.equal(out.data.length, ref.length, `${file} ${tower}: output size`);
    let maxRef = 0, maxErr = 0;
    for (let i = 0; i < ref.length; i++) {
      maxRef = Math.max(maxRef, Math.abs(ref[i]));
      maxErr = Math.max(maxErr, Math.abs(ref[i] - out.data[i]));
    }
    const tol = 1e-4 * maxRef + 1e-5;
    assert.ok(maxErr <= tol, `${file} ${tower ?? ""}: max error ${maxErr} > ${tol}`);
  } finally {
    model.dispose();
  }
}

const VIT = "clip_vit_ckpt";
const RN = "clip_rn_ckpt";
const MOCO = "mocov3_resnet_ckpt";

for (
  const [file, prefix] of [
    [`${VIT}.state_dict.pt`, ""],
    [`${VIT}.legacy.pt`, ""],
    [`${VIT}.hf.safetensors`, ""],
    [`${VIT}.jit.pt`, "jit_"],
  ]
) {
  Deno.test(`CLIP ViT towers from ${file} match the float64 reference`, async () => {
    await assertTowerMatches(
      file,
      "visual",
      `${VIT}.io/image.npy`,
      `${VIT}.io/${prefix}image_embedding.npy`,
    );
    await assertTowerMatches(
      file,
      "text",
      `${VIT}.io/tokens.npy`,
      `${VIT}.io/${prefix}text_embedding.npy`,
    );
  });
}

Deno.test("CLIP ModifiedResNet and full-vocabulary text towers from a TorchScript archive", async () => {
  await assertTowerMatches(
    `${RN}.jit.pt`,
    "visual",
    `${RN}.io/image.npy`,
    `${RN}.io/jit_image_embedding.npy`,
  );
  await assertTowerMatches(
    `${RN}.jit.pt`,
    "text",
    `${RN}.io/tokens.npy`,
    `${RN}.io/jit_text_embedding.npy`,
  );
});

for (const file of [`${MOCO}.pth.tar`, `${MOCO}.legacy.pth.tar`]) {
  Deno.test(`MoCo v3 base encoder from ${file} matches its pooled features`, async () => {
    await assertTowerMatches(file, undefined, `${MOCO}.io/image.npy`, `${MOCO}.io/features.npy`);
  });
}

Deno.test("hyper-parameters are read from the shared files' shapes", () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const index = JSON.parse(Deno.readTextFileSync(join(dir, "index.json")));
  const vit = openCheckpoint(join(dir, `${VIT}.jit.pt`));
  try {
    const s = describeCheckpoint(vit);
    const c = index[VIT].config;
    assert.equal(s.layout, "OpenAI CLIP");
    assert.equal(s.towers[0].inputSize, c.res);
    assert.match(
      s.towers[0].description,
      new RegExp(`patch ${c.patch}, width ${c.width}, ${c.layers} layers`),
    );
    assert.equal(s.towers[1].contextLength, c.ctx);
    assert.match(s.towers[1].description, new RegExp(`vocabulary ${c.vocab}`));
  } finally {
    vit.close();
  }
  const moco = openCheckpoint(join(dir, `${MOCO}.pth.tar`));
  try {
    const s = describeCheckpoint(moco);
    assert.equal(s.towers.length, 1);
    assert.equal(s.towers[0].embedDim, index[MOCO].feature_dim);
    assert.match(s.towers[0].description, /bottleneck blocks 1-1-1-1, stem width 16/);
  } finally {
    moco.close();
  }
});

// ---- synthetic state dicts: other shapes than the fixtures, and broken ones ----

/** An in-memory state dict of random weights with the given shapes (BatchNorm variances
 * positive). */
function randomStateDict(shapes: Record<string, number[]>, seed = 1): StateDict {
  const tensors = new Map<string, { info: WeightInfo; read: () => CpuTensor }>();
  let s = seed;
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = randomFloats(
      n,
      s++,
      name.endsWith("running_var") ? 0.5 : -0.2,
      name.endsWith("running_var") ? 1.5 : 0.2,
    );
    tensors.set(name, {
      info: { name, dtype: "float32", shape },
      read: () => cpuTensor("float32", shape, values),
    });
  }
  return memoryStateDict("synthetic.pt", "torch-zip", tensors);
}

function vitShapes(
  opts: { width: number; patch: number; grid: number; layers: number; embed: number },
) {
  const { width: w, patch: p, grid: g, layers, embed } = opts;
  const shapes: Record<string, number[]> = {
    "visual.conv1.weight": [w, 3, p, p],
    "visual.class_embedding": [w],
    "visual.positional_embedding": [g * g + 1, w],
    "visual.ln_pre.weight": [w],
    "visual.ln_pre.bias": [w],
    "visual.ln_post.weight": [w],
    "visual.ln_post.bias": [w],
    "visual.proj": [w, embed],
  };
  for (let i = 0; i < layers; i++) {
    const b = `visual.transformer.resblocks.${i}`;
    Object.assign(shapes, {
      [`${b}.attn.in_proj_weight`]: [3 * w, w],
      [`${b}.attn.in_proj_bias`]: [3 * w],
      [`${b}.attn.out_proj.weight`]: [w, w],
      [`${b}.attn.out_proj.bias`]: [w],
      [`${b}.ln_1.weight`]: [w],
      [`${b}.ln_1.bias`]: [w],
      [`${b}.ln_2.weight`]: [w],
      [`${b}.ln_2.bias`]: [w],
      [`${b}.mlp.c_fc.weight`]: [4 * w, w],
      [`${b}.mlp.c_fc.bias`]: [4 * w],
      [`${b}.mlp.c_proj.weight`]: [w, 4 * w],
      [`${b}.mlp.c_proj.bias`]: [w],
    });
  }
  return shapes;
}

function basicResNetShapes(stem: number, stages: number[]) {
  const shapes: Record<string, number[]> = { "conv1.weight": [stem, 3, 7, 7] };
  const bn = (p: string, c: number) => {
    for (const k of ["weight", "bias", "running_mean", "running_var"]) shapes[`${p}.${k}`] = [c];
  };
  bn("bn1", stem);
  let inC = stem;
  stages.forEach((blocks, s) => {
    const c = stem * 2 ** s;
    for (let b = 0; b < blocks; b++) {
      const p = `layer${s + 1}.${b}`;
      shapes[`${p}.conv1.weight`] = [c, inC, 3, 3];
      bn(`${p}.bn1`, c);
      shapes[`${p}.conv2.weight`] = [c, c, 3, 3];
      bn(`${p}.bn2`, c);
      if (b === 0 && (s > 0 || inC !== c)) {
        shapes[`${p}.downsample.0.weight`] = [c, inC, 1, 1];
        bn(`${p}.downsample.1`, c);
      }
      inC = c;
    }
  });
  shapes["fc.weight"] = [10, inC];
  shapes["fc.bias"] = [10];
  return shapes;
}

Deno.test("a ViT of other shapes (patch 4, width 128, 3 layers, 24 px) is inferred and runs", async () => {
  const sd = randomStateDict(vitShapes({ width: 128, patch: 4, grid: 6, layers: 3, embed: 24 }));
  const tower = selectTower(sd, "visual");
  assert.equal(tower.inputSize, 24);
  assert.match(tower.description, /24 px, patch 4, width 128, 3 layers, 2 heads, 24-d/);
  const parsed = tower.build().toParsedModel("synthetic.pt", OPS);
  assert.deepEqual(parsed.graph.inputs[0].dims, ["batch", 3, 24, 24]);
  const model = new Model(await getGpu(), parsed, OPS);
  try {
    const x = cpuTensor("float32", [2, 3, 24, 24], randomFloats(2 * 3 * 24 * 24, 5));
    const out = Object.values(await model.run({ image: x }))[0];
    assert.deepEqual(out.shape, [2, 24]);
    assert.ok(Array.from(out.data).every(Number.isFinite));
  } finally {
    model.dispose();
  }
});

Deno.test("a BasicBlock ResNet (ResNet-18 layout) is inferred, its fc head dropped, and runs", async () => {
  const sd = randomStateDict(basicResNetShapes(8, [2, 2, 2, 2]));
  const tower = selectTower(sd);
  assert.match(tower.description, /ResNet-18 \(basic blocks 2-2-2-2, stem width 8\), 64-d/);
  const model = new Model(await getGpu(), tower.build().toParsedModel("synthetic.pt", OPS), OPS);
  try {
    const x = cpuTensor("float32", [2, 3, 40, 40], randomFloats(2 * 3 * 40 * 40, 3));
    const out = Object.values(await model.run({ image: x }))[0];
    assert.deepEqual(out.shape, [2, 64]);
    assert.ok(Array.from(out.data).every(Number.isFinite));
  } finally {
    model.dispose();
  }
});

Deno.test("a missing key, a misshapen key and an unknown layout are refused naming the key", () => {
  const shapes = vitShapes({ width: 64, patch: 8, grid: 2, layers: 1, embed: 16 });
  delete shapes["visual.transformer.resblocks.0.ln_2.bias"];
  assert.throws(
    () => selectTower(randomStateDict(shapes), "visual").build(),
    (e: Error) =>
      e instanceof CheckpointError &&
      /synthetic\.pt: missing key 'visual\.transformer\.resblocks\.0\.ln_2\.bias'/.test(e.message),
  );
  const bad = vitShapes({ width: 64, patch: 8, grid: 2, layers: 1, embed: 16 });
  bad["visual.transformer.resblocks.0.mlp.c_proj.weight"] = [64, 100];
  assert.throws(
    () => selectTower(randomStateDict(bad), "visual").build(),
    (e: Error) =>
      e instanceof CheckpointError &&
      /'visual\.transformer\.resblocks\.0\.mlp\.c_proj\.weight' has shape \[64,100\], expected \[64,256\]/
        .test(e.message),
  );
  assert.throws(
    () =>
      describeCheckpoint(randomStateDict({ "encoder.block.0.weight": [4, 4], "head.bias": [4] })),
    (e: Error) =>
      e instanceof CheckpointError && /encoder\.block\.0\.weight/.test(e.message) &&
      /Expected OpenAI CLIP keys/.test(e.message),
  );
  const text = randomStateDict({
    "token_embedding.weight": [10, 64],
    "visual.conv1.weight": [64, 3, 8, 8],
  });
  assert.throws(
    () => describeCheckpoint(text),
    (e: Error) => e instanceof CheckpointError && /neither a CLIP ViT/.test(e.message),
  );
  const two = randomStateDict(vitShapes({ width: 64, patch: 8, grid: 2, layers: 1, embed: 16 }));
  assert.throws(
    () => selectTower(two, "text"),
    (e: Error) =>
      e instanceof CheckpointError && /has no text tower \(it holds: visual\)/.test(e.message),
  );
});
