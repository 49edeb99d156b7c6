/** Run directories: feature cache files, metrics.json, saved batch orders, checkpoints, resume,
 * and the `deno task train` command line. */
import "../gpu_teardown.ts";
import { deepStrictEqual as assertEquals, ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type AmuFeatures } from "../../src/models/features.ts";
import {
  type FeatureCacheManifest,
  readFeatureCache,
  writeFeatureCache,
} from "../../src/data/feature_cache.ts";
import { readNpy } from "../../src/util/npy.ts";
import { readNpz } from "../../src/util/npz.ts";
import { amuConfig } from "../../src/amu/config.ts";
import { syntheticFeatures } from "../../src/amu/synthetic.ts";
import { trainAmu } from "../../src/amu/train.ts";
import { orderFromNpy } from "../../src/amu/order.ts";
import { CannotResumeError } from "../../src/amu/run_dir.ts";
import { parseExperimentArgs } from "../../tasks/train/settings.ts";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

function tinyFeatures(): AmuFeatures {
  return syntheticFeatures({
    trainRows: 30,
    testRows: 17,
    classes: 7,
    clipDim: 6,
    auxDim: 9,
    seed: 5,
    noise: 1.5,
  });
}

const MANIFEST: FeatureCacheManifest = {
  format: "amu-feature-cache",
  version: 1,
  dataset: "synthetic",
  split: { train: "train (synthetic)", test: "test (synthetic)" },
  shots: null,
  seed: 5,
  augment_views: 1,
  class_names: ["a", "b", "c", "d", "e", "f", "g"],
  encoders: [{ role: "clip_visual", path: "none.onnx", sha256: "0".repeat(64) }],
};

function withTempDir<T>(fn: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = Deno.makeTempDirSync({ prefix: "amu_run_" });
  return Promise.resolve(fn(dir)).finally(() => Deno.removeSync(dir, { recursive: true }));
}

Deno.test("feature cache: write, read back, validation errors name the array", async () => {
  await withTempDir((dir) => {
    const f = tinyFeatures();
    writeFeatureCache(dir, f, MANIFEST);
    const { features, manifest } = readFeatureCache(dir);
    assertEquals(features, f);
    assertEquals(manifest.dataset, "synthetic");
    assertEquals(manifest.shapes?.train_aux, [30, 9]);
    const z = readNpz(join(dir, "features.npz"));
    assertEquals(z.get("train_labels")!.dtype, "int64");
    assertEquals([...z.get("clip_weights")!.shape], [6, 7]);

    const badLabel = { ...f, testLabels: f.testLabels.map((v, i) => i === 3 ? 7 : v) };
    throws(() => writeFeatureCache(dir, badLabel, MANIFEST), /test_labels\[3\] = 7 is outside/);
    const badDim = { ...f, testAux: { ...f.trainAux, cols: 8 } };
    throws(() => writeFeatureCache(dir, badDim, MANIFEST), /test_aux has 8 columns/);
    throws(
      () => writeFeatureCache(dir, f, { ...MANIFEST, class_names: ["x"] }),
      /names 1 classes/,
    );
    throws(() => readFeatureCache(join(dir, "nope")), /not a feature cache/);
  });
});

Deno.test("run directory: metrics.json, order.npy, checkpoints; resume equals a straight run", async () => {
  await withTempDir(async (root) => {
    const f = tinyFeatures();
    const config = amuConfig({ epochs: 4, batchSize: 7, uncertainty: "energy", lr: 3e-3 });
    const straightDir = join(root, "straight");
    const straight = await trainAmu(config, f, { outDir: straightDir });

    const metricsText = Deno.readTextFileSync(join(straightDir, "metrics.json"));
    const metrics = JSON.parse(metricsText);
    assertEquals(Object.keys(metrics), ["zero_shot_acc", "epochs", "best", "method", "final"]);
    // A complete run states its result as every method does (src/amu/method.ts).
    assertEquals(metrics.method, "amu");
    assertEquals(metrics.final, {
      test_acc: metrics.best.test_acc,
      best_epoch: metrics.best.epoch,
    });
    assertEquals(Object.keys(metrics.epochs[0]), [
      "epoch",
      "lr",
      "train_loss",
      "train_acc",
      "test_acc",
      "aux_acc",
      "test_loss",
    ]);
    assertEquals(Object.keys(metrics.best), ["epoch", "test_acc"]);
    assertEquals(metrics.epochs.map((e: { epoch: number }) => e.epoch), [1, 2, 3, 4]);
    assertEquals(metrics.epochs[3].lr, 0);

    const order = readNpy(join(straightDir, "order.npy"));
    assertEquals(order.dtype, "int64");
    assertEquals([...order.shape], [4, 30]);
    for (let e = 0; e < 4; e++) {
      const row = Array.from(order.data.subarray(e * 30, (e + 1) * 30), Number).sort((a, b) =>
        a - b
      );
      assertEquals(row, Array.from({ length: 30 }, (_, i) => i), "each epoch is a permutation");
    }
    const best = readNpz(join(straightDir, "checkpoint_best.npz"));
    assertEquals(Number((best.get("epoch")!.data as BigInt64Array)[0]), metrics.best.epoch);
    assertEquals(best.get("weight")!.data, straight.bestWeight);
    const last = readNpz(join(straightDir, "checkpoint_last.npz"));
    assertEquals(Number((last.get("step")!.data as BigInt64Array)[0]), 4 * 5);
    assertEquals(last.get("weight")!.data, straight.finalWeight);

    // Interrupted after 2 epochs, then resumed.
    const resumedDir = join(root, "resumed");
    const printed: string[] = [];
    const log = (line: string) => printed.push(line);
    const first = await trainAmu(config, f, { outDir: resumedDir, stopAfterEpochs: 2, log });
    assertEquals(first.epochsDone, 2);
    const resumed = await trainAmu(config, f, { outDir: resumedDir, resume: true, log });
    assertEquals(resumed.epochsDone, 4);
    // train.log holds every printed line of both calls, in order.
    assertEquals(Deno.readTextFileSync(join(resumedDir, "train.log")), printed.join("\n") + "\n");
    ok(printed.includes(`resuming ${resumedDir} after epoch 2 of 4`), printed.join("\n"));
    assertEquals(Deno.readTextFileSync(join(resumedDir, "metrics.json")), metricsText);
    assertEquals(resumed.finalWeight, straight.finalWeight, "final weights bit-identical");
    assertEquals(resumed.bestWeight, straight.bestWeight, "best weights bit-identical");
    assertEquals(
      Deno.readFileSync(join(resumedDir, "order.npy")),
      Deno.readFileSync(join(straightDir, "order.npy")),
    );

    // Replaying the saved order elsewhere gives the same run.
    const saved = orderFromNpy(order, "order.npy");
    const replay = await trainAmu(config, f, { order: saved.order });
    assertEquals(replay.metrics, straight.metrics);

    // Splitting each epoch's submission for progress reports changes nothing.
    const seen: number[] = [];
    const progressed = await trainAmu(config, f, {
      order: saved.order,
      progressSteps: 2,
      onProgress: (p) => seen.push(p.iter),
    });
    assertEquals(progressed.metrics, straight.metrics);
    assertEquals(progressed.finalWeight, straight.finalWeight);
    assertEquals(seen.slice(0, 2), [2, 4]);

    // Guard rails.
    await rejects(() => trainAmu(config, f, { outDir: straightDir }), /already holds a run/);
    // A run that cannot continue in its folder says so with a type of its own.
    const cannotResume = (message: RegExp) => (e: Error) =>
      e instanceof CannotResumeError && message.test(e.message);
    await rejects(
      () => trainAmu({ ...config, lr: 1e-2 }, f, { outDir: resumedDir, resume: true }),
      cannotResume(/^cannot resume .*: --lr was 0\.003, now 0\.01/),
    );
    const other = { ...f, trainAux: { ...f.trainAux, data: f.trainAux.data.map((v) => v * 2) } };
    await rejects(
      () => trainAmu(config, other, { outDir: resumedDir, resume: true }),
      cannotResume(/features differ/),
    );
    await rejects(
      () => trainAmu(config, f, { outDir: join(root, "none"), resume: true }),
      cannotResume(/config\.json does not exist \(no run to resume\)/),
    );
  });
});

Deno.test("train flags: reference names, defaults, unknown flags and bad values are errors", () => {
  const parse = (argv: string[]) => {
    const settings = parseExperimentArgs(argv);
    if (settings === "help") throw new Error("unexpected help");
    return settings;
  };
  const s = parse([
    "--features",
    "cache",
    "--lr=0.002",
    "--train_epoch",
    "3",
    "--uncent_type",
    "max-min",
    "--resume",
    "--exp_name",
    "x1",
  ]);
  assertEquals(s.mode, "features");
  assertEquals(s.featuresDir, "cache");
  assertEquals(s.amu.lr, 0.002);
  assertEquals(s.amu.epochs, 3);
  assertEquals(s.amu.batchSize, 8);
  assertEquals(s.amu.lambdaMerge, 0.35);
  assertEquals(s.amu.uncertainty, "max-min");
  assertEquals(s.resume, true);
  assertEquals(s.outDir.endsWith(join("results", "x1")), true);
  assertEquals(parseExperimentArgs(["--help"]), "help");
  throws(() => parse(["--features", "c", "--batchsize", "4"]), /unknown flag --batchsize/);
  throws(() => parse(["--features", "c", "--lr", "fast"]), /--lr: expected a number/);
  throws(() => parse(["--features", "c", "--train_epoch", "1.5"]), /expected an integer/);
  throws(() => parse(["--features", "c", "--uncent_type", "kl"]), /'kl' is not one of/);
  throws(
    () => parse(["--features", "c", "--shots", "4"]),
    /--features trains from a feature cache; --shots only apply when extracting/,
  );
  throws(() => parse(["--features", "c", "stray"]), /unexpected argument 'stray'/);
});

async function runTask(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(repoRoot, "tasks/train.ts"), ...args],
    cwd: repoRoot,
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

Deno.test("deno task train: trains from a cache directory, errors are one line", async () => {
  await withTempDir(async (root) => {
    const cache = join(root, "cache");
    writeFeatureCache(cache, tinyFeatures(), MANIFEST);
    const out = join(root, "run");
    const ok = await runTask([
      "--features",
      cache,
      "--out",
      out,
      "--train_epoch",
      "2",
      "--batch_size",
      "4",
      "--uncent_type",
      "entropy",
    ]);
    if (ok.code !== 0) throw new Error(`train failed:\n${ok.out}\n${ok.err}`);
    for (const line of ["adapter:", "zero-shot CLIP accuracy", "epoch 2/2"]) {
      if (!ok.out.includes(line)) throw new Error(`output lacks '${line}':\n${ok.out}`);
    }
    const metrics = JSON.parse(Deno.readTextFileSync(join(out, "metrics.json")));
    assertEquals(metrics.epochs.length, 2);
    const log = Deno.readTextFileSync(join(out, "train.log"));
    if (!log.includes("epoch 2/2")) throw new Error(`train.log lacks epochs:\n${log}`);
    // Replaying the saved order through --order reproduces the metrics.
    const replay = join(root, "replay");
    const again = await runTask([
      "--features",
      cache,
      "--out",
      replay,
      "--batch_size",
      "4",
      "--uncent_type",
      "entropy",
      "--order",
      join(out, "order.npy"),
    ]);
    if (again.code !== 0) throw new Error(`replay failed:\n${again.out}\n${again.err}`);
    assertEquals(
      Deno.readTextFileSync(join(replay, "metrics.json")),
      JSON.stringify(metrics, null, 2) + "\n",
    );

    const bad = await runTask(["--features", cache, "--bogus", "1"]);
    assertEquals(bad.code, 1);
    assertEquals(bad.err.trim().split("\n").filter((l) => l.startsWith("error:")).length, 1);
    if (!bad.err.includes("unknown flag --bogus")) throw new Error(bad.err);
  });
});
