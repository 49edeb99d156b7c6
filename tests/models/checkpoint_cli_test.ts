/** The command line on checkpoint files: `deno task run FILE --tower`, `inspect`, `export` (the
 * ONNX it writes runs in onnxruntime-node with the reference's outputs), and bad files getting one
 * clear error without a stack; Hugging Face style ONNX towers (pixel_values -> image_embeds). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readNpy } from "../../src/util/npy.ts";
import { cpuTensor } from "../../src/util/tensor.ts";
import { EngineError } from "../../src/util/errors.ts";
import { GraphBuilder } from "../../src/onnx/mod.ts";
import { clipImage, loadEncoder } from "../../src/models/mod.ts";
import { runTask, sharedPath } from "../helpers.ts";

const task = runTask;

function maxError(got: ArrayLike<number>, ref: ArrayLike<number>) {
  let err = 0, max = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(Number(got[i]) - ref[i]));
    max = Math.max(max, Math.abs(ref[i]));
  }
  return { err, tol: 1e-4 * max + 1e-5 };
}

/** One clear error: exit 1, `error: ` with the file named, no stack trace. */
function assertCleanError(r: { code: number; stderr: string }, pattern: RegExp) {
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^error: /m);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
}

Deno.test("deno task run: each tower of a TorchScript CLIP file and a MoCo checkpoint", async () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const tmp = Deno.makeTempDirSync();
  try {
    const rn = join(dir, "clip_rn_ckpt.jit.pt");
    const common = ["--no-tune", "--variant-cache", "none"];
    for (
      const [tower, input, ref] of [
        ["visual", "image.npy", "jit_image_embedding.npy"],
        ["text", "tokens.npy", "jit_text_embedding.npy"],
      ]
    ) {
      const out = join(tmp, `${tower}.npy`);
      const r = await task("run", [
        rn,
        "--tower",
        tower,
        "--input",
        join(dir, "clip_rn_ckpt.io", input),
        "--output",
        out,
        ...common,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const { err, tol } = maxError(
        readNpy(out).data as Float32Array,
        readNpy(join(dir, "clip_rn_ckpt.io", ref)).data as Float64Array,
      );
      assert.ok(err <= tol, `${tower}: ${err} > ${tol}`);
    }
    // A single-tower file needs no --tower.
    const out = join(tmp, "moco.npy");
    const moco = await task("run", [
      join(dir, "mocov3_resnet_ckpt.pth.tar"),
      "--input",
      join(dir, "mocov3_resnet_ckpt.io", "image.npy"),
      "--output",
      out,
      ...common,
    ]);
    assert.equal(moco.code, 0, moco.stderr);
    assert.deepEqual(readNpy(out).shape, [3, 512]);
    // Two towers and no --tower: say so.
    const both = await task("run", [rn, "--input", join(dir, "clip_rn_ckpt.io", "image.npy")]);
    assertCleanError(both, /clip_rn_ckpt\.jit\.pt holds 2 towers \(visual, text\); choose one/);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("deno task inspect: format, layout, architecture and sizes without loading weights", async () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const jit = await task("inspect", [join(dir, "clip_vit_ckpt.jit.pt")]);
  assert.equal(jit.code, 0, jit.stderr);
  assert.match(jit.stdout, /TorchScript archive, .* OpenAI CLIP key names/);
  assert.match(jit.stdout, /visual: CLIP ViT image tower: 32 px, patch 8, width 64, 2 layers/);
  assert.match(jit.stdout, /stored as float16 \(\d+%\), float32; input 32x32/);
  assert.match(jit.stdout, /text: CLIP text tower: vocabulary 512, context 16/);
  const moco = await task("inspect", [join(dir, "mocov3_resnet_ckpt.legacy.pth.tar"), "--json"]);
  assert.equal(moco.code, 0, moco.stderr);
  const summary = JSON.parse(moco.stdout);
  assert.equal(summary.format, "torch-legacy");
  assert.equal(summary.towers[0].architecture, "torchvision-resnet");
  assert.equal(summary.towers[0].embedDim, 512);
  assert.equal(summary.extras.epoch, 1000);
  const onnx = sharedPath("fixtures", "clip_vit_tiny", "clip_vit_tiny.opset17.onnx");
  if (!onnx) return;
  const r = await task("inspect", [onnx]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /ONNX model \(opset 17/);
  // An ONNX file is recognised by its bytes whatever its name (a download saved as model.bin).
  const tmp = Deno.makeTempDirSync({ prefix: "inspect_" });
  try {
    const renamed = join(tmp, "model.bin");
    Deno.copyFileSync(onnx, renamed);
    const byBytes = await task("inspect", [renamed]);
    assert.equal(byBytes.code, 0, byBytes.stderr);
    assert.match(byBytes.stdout, /ONNX model \(opset 17/);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("deno task export: the ONNX file runs in onnxruntime-node with the reference's outputs", async () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const tmp = Deno.makeTempDirSync();
  try {
    const ort = await import("onnxruntime-node");
    for (
      const [file, tower, input, ref] of [
        ["clip_vit_ckpt.hf.safetensors", "text", "tokens.npy", "text_embedding.npy"],
        ["clip_rn_ckpt.jit.pt", "visual", "image.npy", "jit_image_embedding.npy"],
      ]
    ) {
      const io = join(dir, file.startsWith("clip_vit") ? "clip_vit_ckpt.io" : "clip_rn_ckpt.io");
      const out = join(tmp, `${tower}.onnx`);
      const r = await task("export", [join(dir, file), "--tower", tower, "--out", out]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /opset 17/);
      const session = await ort.InferenceSession.create(out);
      const x = readNpy(join(io, input));
      const feed = x.dtype === "int64"
        ? new ort.Tensor("int64", x.data as BigInt64Array, [...x.shape])
        : new ort.Tensor("float32", x.data as Float32Array, [...x.shape]);
      const result = await session.run({ [session.inputNames[0]]: feed });
      const y = result[session.outputNames[0]];
      assert.equal(y.dims[0], x.shape[0]);
      const { err, tol } = maxError(
        y.data as Float32Array,
        readNpy(join(io, ref)).data as Float64Array,
      );
      assert.ok(err <= tol, `${file} ${tower} in onnxruntime: ${err} > ${tol}`);
    }
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("bad checkpoint files: one clear error naming the file, exit 1, no stack", async () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const tmp = Deno.makeTempDirSync();
  try {
    const bytes = Deno.readFileSync(join(dir, "clip_vit_ckpt.jit.pt"));
    const cut = join(tmp, "cut.pt");
    Deno.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    assertCleanError(await task("inspect", [cut]), /cut\.pt: .*(truncated|corrupt)/);
    const text = join(tmp, "notes.pt");
    Deno.writeTextFileSync(text, "these are not weights\n");
    assertCleanError(await task("inspect", [text]), /notes\.pt: not a checkpoint/);
    assertCleanError(
      await task("run", [join(tmp, "absent.pt"), "--tower", "visual"]),
      /cannot read .*absent\.pt: file not found/,
    );
    assertCleanError(
      await task("export", [
        join(dir, "mocov3_resnet_ckpt.pth.tar"),
        "--tower",
        "text",
        "--out",
        join(tmp, "x.onnx"),
      ]),
      /has no text tower \(it holds: image\)/,
    );
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

/** A Hugging Face / transformers.js style vision tower: input pixel_values, outputs
 * last_hidden_state [B, L, W] and (optionally) image_embeds [B, E]. */
function hfStyleVision(withEmbeds: boolean): Uint8Array {
  const g = new GraphBuilder("vision_model", 17);
  const x = g.input("pixel_values", "float32", ["batch", 3, 8, 8]);
  const tokens = g.op("Reshape", [x, g.constant("shape", cpuTensor("int64", [3], [0, 3, 64]))]);
  g.op("Transpose", [tokens], { perm: { ints: [0, 2, 1] } }, "last_hidden_state");
  g.output("last_hidden_state", "float32", ["batch", 64, 3]);
  if (withEmbeds) {
    const pooled = g.op("ReduceMean", [tokens], { axes: { ints: [2] }, keepdims: 0 });
    g.op("Mul", [pooled, g.constant("two", cpuTensor("float32", [], [2]))], {}, "image_embeds");
    g.output("image_embeds", "float32", ["batch", 3]);
  }
  return g.encode();
}

Deno.test("Hugging Face style ONNX towers: image_embeds is the feature; last_hidden_state alone is refused", async () => {
  const tmp = Deno.makeTempDirSync();
  try {
    const good = join(tmp, "vision_model.onnx");
    Deno.writeFileSync(good, hfStyleVision(true));
    const encoder = await loadEncoder(good, clipImage(8));
    try {
      assert.equal(encoder.inputName, "pixel_values");
      assert.equal(encoder.outputName, "image_embeds");
    } finally {
      encoder.dispose();
    }
    const bad = join(tmp, "hidden_only.onnx");
    Deno.writeFileSync(bad, hfStyleVision(false));
    await assert.rejects(
      loadEncoder(bad, clipImage(8)),
      (e: Error) =>
        e instanceof EngineError && /hidden_only\.onnx/.test(e.message) &&
        /last_hidden_state/.test(e.message),
    );
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
