/** `deno task train` end to end on a tiny generated image folder with the tiny fixture models
 * (a complete small CLIP: `clip_vit_tiny` image tower, `clip_text_fullvocab_tiny` text tower with
 * CLIP's real BPE file, and `aux_resnet_tiny`): result files, sane metrics, the feature cache
 * reused by a second run, an interrupted run resumed to the same result, stale caches refused,
 * a text model over a smaller vocabulary refused before anything runs, and flag errors. Also
 * extraction itself with a CPU stand-in encoder: row layout, determinism across batch sizes and
 * segments, resuming from saved segments, unreadable images skipped and listed. */
import { deepStrictEqual as assertEquals, ok, rejects, throws } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fixtureModelFlags, sharedPath } from "../helpers.ts";
import { EngineError } from "../../src/util/errors.ts";
import type { CpuTensor } from "../../src/util/tensor.ts";
import { writeDemoImageFolder } from "../../src/data/demo_data.ts";
import { loadImageFolder } from "../../src/data/datasets.ts";
import { extractFeatures, type ImageTower } from "../../src/data/extract.ts";
import { readFeatureCache } from "../../src/data/feature_cache.ts";
import { readNpz } from "../../src/util/npz.ts";
import { CLIP_NORMALIZATION, IMAGENET_NORMALIZATION } from "../../src/models/preprocessing.ts";
import { parseExperimentArgs } from "../../tasks/train/settings.ts";
import { runExperiment } from "../../tasks/train/experiment.ts";
import { experimentFlagGroups, experimentHelp } from "../../tasks/train/flags.ts";

function tempDir(): string {
  return Deno.makeTempDirSync({ prefix: "train_pipeline_" });
}

/** 5 classes x 3 train / 3 test PNGs, plus one corrupt training image (in a class that then has
 * 4 images, all sampled at 4 shots) and one corrupt test image. */
function tinyImageFolder(root: string): string {
  writeDemoImageFolder(root, { trainPerClass: 3, testPerClass: 3, size: 48, seed: 3 });
  Deno.writeFileSync(join(root, "train/red_circle/999.png"), new Uint8Array([0x89, 0x50, 1, 2]));
  Deno.writeFileSync(join(root, "test/green_square/998.jpg"), new Uint8Array([0xff, 0xd8, 0xff]));
  return root;
}

// ---------------------------------------------------------------------------------------------
// Extraction with a CPU stand-in encoder (per-channel means and a pixel sample: fast, exact).

function fakeTower(size: number, role: string, failAfterBatches = Infinity): ImageTower {
  let batches = 0;
  return {
    role,
    size,
    normalization: role === "aux" ? IMAGENET_NORMALIZATION : CLIP_NORMALIZATION,
    encode(batch: CpuTensor) {
      if (++batches > failAfterBatches) return Promise.reject(new Error("encoder crashed"));
      const rows = batch.shape[0], plane = size * size;
      const dim = 4;
      const out = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let p = 0; p < plane; p++) s += batch.data[(r * 3 + c) * plane + p];
          out[r * dim + c] = s / plane;
        }
        out[r * dim + 3] = batch.data[r * 3 * plane + 5]; // one pixel: sees flips and crops
      }
      return Promise.resolve({ data: out, dim });
    },
  };
}

Deno.test("extraction: view-major rows, deterministic across batch sizes and segments, resumable, unreadable images skipped", async () => {
  const dir = tempDir();
  try {
    const data = loadImageFolder(tinyImageFolder(join(dir, "data")));
    const items = data.train;
    const towers = () => [fakeTower(16, "clip_visual"), fakeTower(24, "aux")];
    const plan = { kind: "train" as const, views: 2, seed: 7 };
    let progressText = "";
    const ref = await extractFeatures(items, towers(), plan, {
      batchSize: 5,
      label: "training views",
      progress: { write: (t) => progressText += t, inPlace: false, quietMs: 0 },
    });
    const good = items.length - 1;
    assertEquals(ref.rows, 2 * good);
    assertEquals(ref.kept.length, good);
    assertEquals(ref.skipped.length, 1);
    ok(ref.skipped[0].path.endsWith("999.png"), ref.skipped[0].path);
    ok(/not a JPEG or PNG/.test(ref.skipped[0].reason), ref.skipped[0].reason);
    assertEquals(ref.dims, [4, 4]);
    ok(/training views \[#+\] 32\/32 views .* views\/s/.test(progressText), progressText);
    // View-major: the second half repeats the labels of the first, and differs in pixels.
    assertEquals(ref.labels.subarray(good), ref.labels.subarray(0, good));
    assertEquals(Array.from(ref.labels.subarray(0, good)), ref.kept.map((i) => items[i].label));
    ok(ref.features[0].subarray(0, good * 4).some((v, i) => v !== ref.features[0][good * 4 + i]));

    // Other batch sizes and segment sizes give the same rows.
    const other = await extractFeatures(items, towers(), plan, {
      batchSize: 3,
      label: "again",
      progress: false,
      segmentImages: 4,
    });
    assertEquals(other.features, ref.features);
    assertEquals(other.labels, ref.labels);

    // An extraction that fails midway resumes from its saved segments.
    const segmentDir = join(dir, "segments");
    const opts = { batchSize: 2, label: "resumable", progress: false as const, segmentDir };
    await rejects(
      extractFeatures(items, [fakeTower(16, "clip_visual", 3), fakeTower(24, "aux")], plan, {
        ...opts,
        segmentKey: "k1",
        segmentImages: 2,
      }),
      /encoder crashed/,
    );
    ok(existsSync(join(segmentDir, "segment-00000.npz")));
    const notes: string[] = [];
    const resumed = await extractFeatures(items, towers(), plan, {
      ...opts,
      segmentKey: "k1",
      segmentImages: 2,
      log: (l) => notes.push(l),
    });
    ok(resumed.resumedImages > 0, "some images came from saved segments");
    ok(notes.some((n) => n.includes("interrupted run")), notes.join("\n"));
    assertEquals(resumed.features, ref.features);
    // Another key discards the saved segments.
    const fresh = await extractFeatures(items, towers(), plan, {
      ...opts,
      segmentKey: "k2",
      segmentImages: 2,
    });
    assertEquals(fresh.resumedImages, 0);
    assertEquals(fresh.features, ref.features);

    // Evaluation views: one row per readable image.
    const test = await extractFeatures(data.test, towers(), { kind: "eval" }, {
      batchSize: 64,
      label: "test",
      progress: false,
    });
    assertEquals(test.rows, data.test.length - 1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Flags.

Deno.test("flags: unknown, malformed and contradictory flags are clear errors; help lists every flag", () => {
  throws(() => parseExperimentArgs(["--lrr", "1"]), /unknown flag --lrr \(did you mean --lr\?\)/);
  throws(() => parseExperimentArgs(["--shots", "0"]), /--shots: must be >= 1/);
  throws(() => parseExperimentArgs(["--lr", "fast"]), /--lr: expected a number/);
  throws(() => parseExperimentArgs(["stray"]), /unexpected argument 'stray'/);
  throws(
    () => parseExperimentArgs(["--dataset", "mnist", "--root_path", "/x"]),
    /unknown dataset 'mnist'/,
  );
  throws(() => parseExperimentArgs(["--clip_backbone", "RN50"]), /--root_path DIR is needed/);
  throws(
    () => parseExperimentArgs(["--features", "/x", "--shots", "4"]),
    /--features trains from a feature cache; --shots only apply/,
  );
  throws(() => parseExperimentArgs(["--demo", "--dataset", "dtd"]), /--demo uses its own/);
  const help = experimentHelp();
  for (const group of experimentFlagGroups()) {
    for (const f of group.flags) ok(help.includes(`--${f.name}`), `--help documents --${f.name}`);
  }
  assertEquals(parseExperimentArgs(["-h"]), "help");

  // Defaults (the reference's default.yaml and run script), the demo when nothing is given.
  const demo = parseExperimentArgs([]);
  if (demo === "help") throw new Error("unexpected help");
  assertEquals(demo.mode, "demo");
  assertEquals(demo.amu.expName, "demo");
  assertEquals([demo.shots, demo.augmentEpoch, demo.valBatchSize], [16, 1, 256]);
  assertEquals(
    [demo.amu.lr, demo.amu.batchSize, demo.amu.epochs, demo.amu.alpha, demo.amu.lambdaMerge],
    [1e-3, 8, 50, 0.5, 0.35],
  );
  const real = parseExperimentArgs(["--root_path", "/data", "--dataset", "FGVCAircraft"]);
  if (real === "help") throw new Error("unexpected help");
  assertEquals([real.mode, real.dataset, real.models.backbone], ["dataset", "fgvc", "RN50"]);
});

Deno.test("flags: a YAML or JSON config file sets the same keys, command-line flags win", () => {
  const dir = tempDir();
  try {
    // The reference's default.yaml, as shipped.
    const yaml = join(dir, "default.yaml");
    Deno.writeTextFileSync(
      yaml,
      `root_path: "" #input your root path\nalpha: 0.5\n\n# ------ Basic Config ------\n` +
        `dataset: 'ImageNet'\nshots: 16\nclip_backbone: 'RN50'\n\nlr: 1.0e-3\naugment_epoch: 1\n` +
        `batch_size: 8\nval_batch_size: 256\nnum_classes: 1000\ntrain_epoch: 50\n`,
    );
    const s = parseExperimentArgs(["--config", yaml, "--root_path", "/data", "--lr", "0.01"]);
    if (s === "help") throw new Error("unexpected help");
    assertEquals(s.mode, "dataset");
    assertEquals(s.dataset, "imagenet");
    assertEquals(s.numClasses, 1000);
    assertEquals(s.amu.lr, 0.01);
    assertEquals(s.sources.get("lr"), "command line");
    assertEquals(s.sources.get("shots"), "config file");
    const json = join(dir, "c.json");
    Deno.writeTextFileSync(json, JSON.stringify({ train_epoch: 3, uncent_type: "entropy" }));
    const j = parseExperimentArgs(["--config", json]);
    if (j === "help") throw new Error("unexpected help");
    assertEquals([j.amu.epochs, j.amu.uncertainty, j.mode], [3, "entropy", "demo"]);
    Deno.writeTextFileSync(json, JSON.stringify({ learning_rate: 3 }));
    throws(
      () => parseExperimentArgs(["--config", json]),
      /--config .*unknown flag --learning_rate/,
    );
    Deno.writeTextFileSync(json, JSON.stringify({ shots: [1, 2] }));
    throws(() => parseExperimentArgs(["--config", json]), /'shots' must be a single value/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// The whole pipeline with the tiny fixture models.

function settings(argv: string[]) {
  const s = parseExperimentArgs(argv);
  if (s === "help") throw new Error("unexpected help");
  return s;
}

Deno.test("pipeline: image folder -> features -> training -> results; cache reused; resume; stale cache and small-vocabulary text model refused", async () => {
  const models = fixtureModelFlags();
  if (!models) return;
  const dir = tempDir();
  try {
    const root = tinyImageFolder(join(dir, "data"));
    const cache = join(dir, "cache");
    const flags: Record<string, string> = {
      dataset: "imagefolder",
      root_path: root,
      ...models,
      shots: "4",
      augment_epoch: "2",
      train_epoch: "3",
      batch_size: "4",
      val_batch_size: "7",
      cache_dir: cache,
      // Kernel tuning is tested on its own (tests/onnx/tuning_test.ts); here it would only
      // slow the runs down.
      tune: "off",
    };
    /** The base flags with some replaced or added ("" for a boolean flag). */
    const args = (over: Record<string, string>) =>
      Object.entries({ ...flags, ...over }).flatMap(([k, v]) =>
        v === "" ? [`--${k}`] : [`--${k}`, v]
      );
    const io = { progress: false as const, cacheRoot: join(dir, "cacheroot") };

    // A text model whose vocabulary is smaller than the tokenizer's ids: refused at load, before
    // any image is decoded or any feature written.
    const tinyText = sharedPath("fixtures", "clip_text_tiny", "clip_text_tiny.opset14.onnx")!;
    await rejects(
      runExperiment(settings(args({ clip_text: tinyText, out: join(dir, "bad") })), {
        ...io,
        print: () => {},
      }),
      (e: Error) =>
        e instanceof EngineError &&
        /CLIP text tower rejected: .*token-embedding table has 512 rows, but the tokenizer emits ids up to 49407/
          .test(e.message),
    );
    ok(!existsSync(join(cache, "features.npz")) && !existsSync(join(cache, "partial")));

    // First run: extracts everything.
    const outA = join(dir, "runA");
    const lines: string[] = [];
    const a = await runExperiment(settings(args({ out: outA })), {
      ...io,
      print: (l) => lines.push(l),
    });
    const log = lines.join("\n");
    assertEquals(a.sources, { train: "extracted", test: "extracted", text: "extracted" });
    ok(/adapter: /.test(log) && /zero-shot CLIP accuracy: /.test(log), log);
    ok(/epoch 3\/3 .* test acc .*\(aux /.test(log), log);
    ok(/skipped 2 unreadable image\(s\)/.test(log), log);
    // 20 sampled (the corrupt one included) -> 19 readable x 2 views; 16 test images, 1 corrupt.
    assertEquals(a.features.trainAux.rows, 38);
    assertEquals(a.features.trainAux.cols, 512);
    assertEquals(a.features.testClip.rows, 15);
    assertEquals([a.features.clipWeights.rows, a.features.clipWeights.cols], [32, 5]);
    assertEquals(a.skipped.map((x) => x.split), ["train", "test"]);

    // Result files exist and parse.
    for (
      const f of [
        "experiment.json",
        "few_shot.json",
        "metrics.json",
        "metrics.csv",
        "accuracy.svg",
        "checkpoint_best.npz",
        "checkpoint_last.npz",
        "order.npy",
        "config.json",
        "train.log",
        "skipped_images.txt",
      ]
    ) ok(existsSync(join(outA, f)), `${f} written`);
    const metrics = JSON.parse(Deno.readTextFileSync(join(outA, "metrics.json")));
    assertEquals(metrics.epochs.length, 3);
    for (const e of metrics.epochs) {
      for (const k of ["train_acc", "test_acc", "aux_acc"]) {
        ok(e[k] >= 0 && e[k] <= 100, `${k} ${e[k]}`);
      }
      ok(Number.isFinite(e.train_loss) && e.train_loss > 0, `train_loss ${e.train_loss}`);
      ok(Number.isFinite(e.test_loss) && e.test_loss > 0, `test_loss ${e.test_loss}`);
    }
    assertEquals(metrics.epochs[2].lr, 0);
    ok(metrics.zero_shot_acc >= 0 && metrics.zero_shot_acc <= 100);
    const csv = Deno.readTextFileSync(join(outA, "metrics.csv")).trim().split("\n");
    assertEquals(csv.length, 4);
    assertEquals(csv[0], "epoch,lr,train_loss,train_acc,test_acc,aux_acc,test_loss,zero_shot_acc");
    assertEquals(Number(csv[3].split(",")[4]), metrics.epochs[2].test_acc);
    const svg = Deno.readTextFileSync(join(outA, "accuracy.svg"));
    ok(svg.startsWith("<svg") && svg.trim().endsWith("</svg>"));
    assertEquals(svg.match(/<polyline/g)?.length, 3);
    const best = readNpz(join(outA, "checkpoint_best.npz"));
    assertEquals(best.get("weight")!.shape, [5, 512]);
    const fewShot = JSON.parse(Deno.readTextFileSync(join(outA, "few_shot.json")));
    assertEquals(fewShot.images.length, 20);
    assertEquals(fewShot.skipped.length, 1);
    ok(!fewShot.images[0].path.startsWith("/"), "paths relative to the dataset root");
    const experiment = JSON.parse(Deno.readTextFileSync(join(outA, "experiment.json")));
    assertEquals(experiment.settings.shots, 4);
    assertEquals(experiment.settings.augment_epoch, 2);
    assertEquals(experiment.models.map((m: { role: string }) => m.role), [
      "clip_visual",
      "clip_text",
      "aux",
    ]);
    ok(/^[0-9a-f]{64}$/.test(experiment.models[0].sha256));
    assertEquals(
      Deno.readTextFileSync(join(outA, "skipped_images.txt")).trim().split("\n").length,
      2,
    );
    ok(Deno.readTextFileSync(join(outA, "train.log")).includes("zero-shot CLIP accuracy"));
    const cached = readFeatureCache(cache);
    assertEquals(cached.features.trainClip, a.features.trainClip);
    assertEquals(cached.manifest.augment_views, 2);
    ok(!existsSync(join(cache, "partial")), "segments removed once the cache is written");

    // A second run uses the cache (no model is loaded) and, interrupted after one epoch and run
    // again, resumes to the same result as the uninterrupted run.
    const outB = join(dir, "runB");
    const linesB: string[] = [];
    const b1 = await runExperiment(settings(args({ out: outB })), {
      ...io,
      print: (l) => linesB.push(l),
      stopAfterEpochs: 1,
    });
    assertEquals(b1.sources, { train: "cache", test: "cache", text: "cache" });
    ok(!linesB.some((l) => l.startsWith("loaded ")), "no encoder loaded on a cache hit");
    await rejects(
      runExperiment(settings(args({ out: outB, lr: "0.01" })), { ...io, print: () => {} }),
      /holds an interrupted run with lr 0.001, now 0.01/,
    );
    const b2 = await runExperiment(settings(args({ out: outB })), {
      ...io,
      print: (l) => linesB.push(l),
    });
    ok(b2.resumed);
    ok(linesB.some((l) => l.includes("resuming the interrupted run")), linesB.join("\n"));
    assertEquals(b2.metrics, a.metrics);
    // A finished run is not overwritten by accident.
    await rejects(
      runExperiment(settings(args({ out: outB })), { ...io, print: () => {} }),
      /already holds a finished run/,
    );

    // Another shot count in its own cache: test features and text weights come from the first
    // cache (same images, same models), only the training views are extracted.
    const cache3 = join(dir, "cache3");
    const c = await runExperiment(
      settings(args({ shots: "3", train_epoch: "1", cache_dir: cache3, out: join(dir, "runS") })),
      { ...io, print: () => {} },
    );
    assertEquals(c.sources, { train: "extracted", test: cache, text: cache });
    assertEquals(c.features.testAux, a.features.testAux);
    const unreadable = c.skipped.filter((x) => x.split === "train").length;
    assertEquals(c.features.trainAux.rows, 2 * (15 - unreadable));

    // Training straight from a feature cache directory.
    const f = await runExperiment(
      settings([
        "--features",
        cache,
        "--train_epoch",
        "3",
        "--batch_size",
        "4",
        "--out",
        join(dir, "runF"),
      ]),
      { ...io, print: () => {} },
    );
    assertEquals(f.metrics, a.metrics);

    // Reusing a cache made for other settings is refused, naming what differs.
    await rejects(
      runExperiment(
        settings(args({ shots: "3", load_aux_weight: "", out: join(dir, "runC") })),
        { ...io, print: () => {} },
      ),
      /--load_aux_weight: the feature cache .* holds training features for other settings \(.*shots was 4, now 3/,
    );
    await rejects(
      runExperiment(
        settings(args({ load_pre_feat: "", cache_dir: join(dir, "none"), out: join(dir, "runD") })),
        { ...io, print: () => {} },
      ),
      /--load_pre_feat: there is no feature cache at/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
