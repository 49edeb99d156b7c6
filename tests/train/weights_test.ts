/** Where `deno task train` finds its models: OpenAI's .pt in weights/ or clip.load's cache (checked
 * against the published hash) before the ONNX pair, MoCo v3's release downloaded on first use
 * (from a server on 127.0.0.1), a clear list of where it looked under --no-download; and a whole
 * run from checkpoint files. */
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import { writeDemoImageFolder } from "../../src/data/demo_data.ts";
import { resolveModelPaths } from "../../tasks/train/models.ts";
import type { ModelChoice } from "../../tasks/train/settings.ts";
import { runTask, sharedPath } from "../helpers.ts";

function choice(over: Partial<ModelChoice>): ModelChoice {
  return { backbone: "RN50", download: false, ...over };
}

Deno.test("--clip_backbone: weights/NAME.pt, then ~/.cache/clip/NAME.pt, then the ONNX pair; --no-download lists where it looked", async () => {
  const jit = sharedPath("checkpoints", "clip_rn_ckpt.jit.pt");
  const moco = sharedPath("checkpoints", "mocov3_resnet_ckpt.pth.tar");
  if (!jit || !moco) return;
  const dir = Deno.makeTempDirSync();
  try {
    const weightsDir = join(dir, "weights"), cacheDir = join(dir, "cache", "clip");
    mkdirSync(weightsDir, { recursive: true });
    const opts = { weightsDir, cacheDir };
    const aux = { auxModel: moco };
    await assert.rejects(
      resolveModelPaths(choice({ backbone: "ViT-B/16", ...aux }), opts),
      (e: Error) =>
        e instanceof EngineError && e.message.includes(join(weightsDir, "ViT-B-16.pt")) &&
        e.message.includes(join(cacheDir, "ViT-B-16.pt")) &&
        e.message.includes(join(weightsDir, "ViT-B-16.visual.onnx")) &&
        /--no-download is set; .*openaipublic.*\/5806e77c[0-9a-f]+\/ViT-B-16\.pt/.test(e.message),
    );
    await assert.rejects(
      resolveModelPaths(choice({ backbone: "ViT-Q/99", ...aux }), opts),
      (e: Error) => /not one of OpenAI's released models \(RN50, RN101/.test(e.message),
    );
    // The ONNX pair in weights/ is used when no checkpoint is there; half of it is not used.
    const onnx = ["visual", "text"].map((t) => join(weightsDir, `RN50.${t}.onnx`));
    Deno.writeTextFileSync(onnx[0], "");
    await assert.rejects(
      resolveModelPaths(choice(aux), opts),
      (e: Error) =>
        e.message.includes(`CLIP RN50 not found; looked at:`) &&
        e.message.includes(`${onnx[0]}\n    ${onnx[1]}`),
    );
    Deno.writeTextFileSync(onnx[1], "");
    let p = await resolveModelPaths(choice(aux), opts);
    assert.deepEqual([p.clipVisual, p.clipText, p.tag], [...onnx, "RN50"]);
    // clip.load's cache comes before the ONNX pair and is checked against OpenAI's published
    // hash: these bytes are not RN50's, so with downloads off they are refused.
    mkdirSync(cacheDir, { recursive: true });
    copyFileSync(jit, join(cacheDir, "RN50.pt"));
    await assert.rejects(
      resolveModelPaths(choice(aux), opts),
      (e: Error) =>
        e instanceof EngineError &&
        e.message.startsWith(`CLIP RN50: ${join(cacheDir, "RN50.pt")} has SHA-256 `) &&
        /expected afeb0e10f9e5[0-9a-f]+ \(the published hash\)\n {2}--no-download is set/.test(
          e.message,
        ),
    );
    // weights/ comes before the cache, and a file placed there is used as it is for both towers.
    copyFileSync(jit, join(weightsDir, "RN50.pt"));
    p = await resolveModelPaths(choice(aux), opts);
    assert.deepEqual([p.clipVisual, p.clipText, p.tag], [
      join(weightsDir, "RN50.pt"),
      join(weightsDir, "RN50.pt"),
      "RN50",
    ]);
    // --clip_weights names the file; the tag comes from its name.
    p = await resolveModelPaths(choice({ clipWeights: jit, ...aux }), opts);
    assert.deepEqual([p.clipVisual, p.clipText, p.tag, p.aux], [
      jit,
      jit,
      "clip_rn_ckpt.jit",
      moco,
    ]);
    // No auxiliary encoder anywhere and no downloads: where it looked.
    await assert.rejects(
      resolveModelPaths(choice({ clipWeights: jit }), opts),
      (e: Error) =>
        /auxiliary encoder \(MoCo v3 ResNet-50\) not found/.test(e.message) &&
        e.message.includes(join(weightsDir, "r-50-1000ep.pth.tar")) &&
        /r-50-1000ep\/r-50-1000ep\.pth\.tar/.test(e.message),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--aux_weights mocov3 downloads MoCo v3's release once (served on 127.0.0.1), then reuses it", async () => {
  const jit = sharedPath("checkpoints", "clip_rn_ckpt.jit.pt");
  const moco = sharedPath("checkpoints", "mocov3_resnet_ckpt.pth.tar");
  if (!jit || !moco) return;
  const body = Deno.readFileSync(moco);
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    requests.push(new URL(req.url).pathname);
    return new Response(body, { headers: { "content-length": String(body.length) } });
  });
  const dir = Deno.makeTempDirSync();
  const saved = Deno.env.get("CLIP_WEIGHTS_BASE_URL");
  try {
    Deno.env.set("CLIP_WEIGHTS_BASE_URL", `http://127.0.0.1:${server.addr.port}/files`);
    const opts = { weightsDir: join(dir, "weights"), cacheDir: join(dir, "cache", "clip") };
    const lines: string[] = [];
    const p = await resolveModelPaths(
      choice({ clipWeights: jit, auxModel: "mocov3", download: true }),
      { ...opts, log: (l) => lines.push(l) },
    );
    const target = join(dir, "cache", "mocov3", "r-50-1000ep.pth.tar");
    assert.equal(p.aux, target);
    assert.deepEqual(requests, ["/files/r-50-1000ep.pth.tar"]);
    assert.ok(existsSync(`${target}.sha256`) && !existsSync(`${target}.part`));
    assert.ok(
      lines.some((l) => /no published SHA-256; recorded [0-9a-f]{64}/.test(l)),
      lines.join("\n"),
    );
    assert.deepEqual(Deno.readFileSync(target), body);
    await resolveModelPaths(choice({ clipWeights: jit, auxModel: "mocov3", download: true }), opts);
    assert.equal(requests.length, 1, "the second run finds the file");
  } finally {
    if (saved === undefined) Deno.env.delete("CLIP_WEIGHTS_BASE_URL");
    else Deno.env.set("CLIP_WEIGHTS_BASE_URL", saved);
    await server.shutdown();
    Deno.removeSync(dir, { recursive: true });
  }
});

const train = (args: string[]) => runTask("train", args);

Deno.test("deno task train from checkpoint files: TorchScript CLIP + MoCo v3 .pth.tar on an image folder", async () => {
  const jit = sharedPath("checkpoints", "clip_rn_ckpt.jit.pt");
  const moco = sharedPath("checkpoints", "mocov3_resnet_ckpt.pth.tar");
  if (!jit || !moco) return;
  const dir = Deno.makeTempDirSync();
  try {
    const root = join(dir, "data");
    writeDemoImageFolder(root, { trainPerClass: 2, testPerClass: 2, size: 40, seed: 5 });
    const out = join(dir, "run");
    const base = ["--dataset", "imagefolder", "--root_path", root, "--shots", "2"];
    const r = await train([
      ...base,
      "--clip_weights",
      jit,
      "--aux_weights",
      moco,
      "--train_epoch",
      "2",
      "--aux_size",
      "64",
      "--tune",
      "off",
      "--out",
      out,
      "--cache_dir",
      join(dir, "cache"),
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const log = r.stdout + r.stderr;
    assert.match(
      log,
      /loaded clip_visual .*clip_rn_ckpt\.jit\.pt \(64px, CLIP normalisation, 32-d\)/,
    );
    assert.match(log, /loaded clip_text .*\(context 77, vocabulary 49408, 32-d\)/);
    assert.match(
      log,
      /loaded aux .*mocov3_resnet_ckpt\.pth\.tar \(64px, ImageNet normalisation, 512-d\)/,
    );
    const metrics = JSON.parse(Deno.readTextFileSync(join(out, "metrics.json")));
    assert.equal(metrics.epochs.length, 2);
    // A backbone that is nowhere, with downloads off: one clear error before any image is read.
    const missing = await train([
      ...base,
      "--clip_backbone",
      "RN101",
      "--aux_weights",
      moco,
      "--no-download",
      "--out",
      join(dir, "missing"),
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /error: CLIP RN101 not found; looked at:/);
    assert.doesNotMatch(missing.stderr, /^\s+at /m);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
