/** The feature cache is keyed by what determines a feature: image contents (not just names),
 * encoder files, input sizes and normalisation, view transforms. A second dataset with the same
 * file names, or an image edited in place, must never reuse the first one's features; a copy of
 * the same images may, and the log says which cache was reused and why it matched. Also:
 * non-finite features are refused when a cache is read, naming the array and row. CPU stand-in
 * encoders keep this fast and GPU-free. */
import {
  deepStrictEqual as assertEquals,
  notDeepStrictEqual,
  ok,
  rejects,
  throws,
} from "node:assert/strict";
import { join } from "node:path";
import { cpSync } from "node:fs";
import { EngineError } from "../../src/util/errors.ts";
import type { CpuTensor } from "../../src/util/tensor.ts";
import { writeDemoImageFolder } from "../../src/data/demo_data.ts";
import { loadImageFolder } from "../../src/data/datasets.ts";
import {
  buildFeatures,
  type FeatureJob,
  type LazyImageTower,
  type LazyTextTower,
} from "../../src/data/feature_pipeline.ts";
import { FEATURES_FILE, readFeatureCache } from "../../src/data/feature_cache.ts";
import { readNpz, writeNpz } from "../../src/util/npz.ts";
import { FileHashes } from "../../src/data/file_hashes.ts";
import { CLIP_NORMALIZATION, IMAGENET_NORMALIZATION } from "../../src/models/preprocessing.ts";

const DIM = 4;

/** Per-channel means and one pixel: a cheap, exact, content-sensitive stand-in encoder. */
function imageTower(role: string, size: number, normalization = "CLIP mean/std"): LazyImageTower {
  return {
    file: { role, path: `/models/${role}.onnx`, sha256: role.padEnd(64, "0"), bytes: 1 },
    sizeOverride: null,
    normalization,
    load: () =>
      Promise.resolve({
        role,
        size,
        normalization: role === "aux" ? IMAGENET_NORMALIZATION : CLIP_NORMALIZATION,
        featureDim: DIM,
        dispose() {},
        encode(batch: CpuTensor) {
          const rows = batch.shape[0], plane = size * size;
          const out = new Float32Array(rows * DIM);
          for (let r = 0; r < rows; r++) {
            for (let c = 0; c < 3; c++) {
              let s = 0;
              for (let p = 0; p < plane; p++) s += batch.data[(r * 3 + c) * plane + p];
              out[r * DIM + c] = s / plane;
            }
            out[r * DIM + 3] = batch.data[r * 3 * plane + 5];
          }
          return Promise.resolve({ data: out, dim: DIM });
        },
      }),
  };
}

const textTower: LazyTextTower = {
  file: { role: "clip_text", path: "/models/text.onnx", sha256: "t".padEnd(64, "0"), bytes: 1 },
  tokenizerId: "bytes",
  load: () =>
    Promise.resolve({
      contextLength: 8,
      featureDim: DIM,
      tokenizer: {
        tokenizeBatch: (texts, { contextLength }) =>
          Float64Array.from({ length: texts.length * contextLength }, (_, i) => i % 7),
      },
      encode: (ids: CpuTensor) => {
        const rows = ids.shape[0];
        return Promise.resolve({
          data: Float32Array.from({ length: rows * DIM }, (_, i) => 1 + (i % 5)),
          dim: DIM,
        });
      },
      dispose() {},
    }),
};

function job(root: string, over: Partial<FeatureJob> = {}): FeatureJob {
  const data = loadImageFolder(root);
  return {
    dataset: "imagefolder",
    root,
    classnames: data.classnames,
    templates: ["a photo of a {}."],
    train: data.train,
    test: data.test,
    val: data.val,
    shots: null,
    seed: null,
    augmentSeed: 1,
    views: 1,
    clip: imageTower("clip_visual", 16),
    aux: imageTower("aux", 12, "ImageNet mean/std"),
    text: textTower,
    ...over,
  };
}

async function build(
  root: string,
  cacheDir: string,
  log: string[],
  over: Partial<FeatureJob> = {},
) {
  return await buildFeatures(job(root, over), {
    cacheDir,
    train: "auto",
    test: "auto",
    batchSize: 4,
    log: (l) => log.push(l),
    progress: false,
    hashes: new FileHashes(),
  });
}

Deno.test("feature cache: another dataset with the same file names is not reused; edits in place make the cache stale; a copy is reused and says why", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "feature_keys_" });
  try {
    const rootA = join(dir, "a"), rootB = join(dir, "b");
    writeDemoImageFolder(rootA, { trainPerClass: 2, testPerClass: 2, size: 24, seed: 1 });
    // Same classes and file names, other pixels.
    writeDemoImageFolder(rootB, { trainPerClass: 2, testPerClass: 2, size: 24, seed: 2 });
    const caches = join(dir, "caches");
    const logA: string[] = [];
    const a = await build(rootA, join(caches, "a"), logA);
    assertEquals(a.sources, { train: "extracted", test: "extracted", text: "extracted" });

    // B has the same relative paths and labels: before content keys, its train and test parts
    // were taken from the sibling cache of A.
    const logB: string[] = [];
    const b = await build(rootB, join(caches, "b"), logB);
    assertEquals(b.sources.train, "extracted", logB.join("\n"));
    assertEquals(b.sources.test, "extracted", logB.join("\n"));
    notDeepStrictEqual(b.features.trainClip.data, a.features.trainClip.data);
    // The text weights depend on class names and the text tower only: reused, saying why.
    ok(
      logB.some((l) =>
        /text weights: reused from the feature cache .*\/a \(same \d+ class names/.test(l)
      ),
      logB.join("\n"),
    );

    // A copy of A's images in another folder: same contents, so A's features are reused.
    const rootC = join(dir, "c");
    cpSync(rootA, rootC, { recursive: true });
    const logC: string[] = [];
    const c = await build(rootC, join(caches, "c"), logC);
    assertEquals(c.sources.train, join(caches, "a"));
    ok(
      logC.some((l) =>
        /training features: reused from the feature cache .*\/a \(same \d+ images by path, label and content/
          .test(l)
      ),
      logC.join("\n"),
    );

    // An image of A edited in place (same name): A's own cache is stale and says so.
    const edited = a.trainKept[0].path;
    const other = a.trainKept[a.trainKept.length - 1].path;
    Deno.writeFileSync(edited, Deno.readFileSync(other));
    const logA2: string[] = [];
    const a2 = await build(rootA, join(caches, "a"), logA2);
    assertEquals(a2.sources.train, "extracted", logA2.join("\n"));
    ok(
      logA2.some((l) =>
        /training features are stale \(images \(paths, labels and contents\) was/.test(l)
      ),
      logA2.join("\n"),
    );

    // Other normalisation of the auxiliary input: stale too.
    const logN: string[] = [];
    const n = await build(rootA, join(caches, "a"), logN, {
      aux: imageTower("aux", 12, "CLIP mean/std"),
    });
    assertEquals(n.sources.train, "extracted");
    ok(
      logN.some((l) => /auxiliary input normalisation was "ImageNet mean\/std"/.test(l)),
      logN.join("\n"),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("feature cache: a NaN or infinity in the features is refused on read, naming the array and row", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "feature_nan_" });
  try {
    const root = join(dir, "data");
    writeDemoImageFolder(root, { trainPerClass: 2, testPerClass: 1, size: 24, seed: 1 });
    const cache = join(dir, "cache");
    await build(root, cache, []);
    const npz = join(cache, FEATURES_FILE);
    for (const [name, value] of [["train_aux", NaN], ["test_clip", Infinity]] as const) {
      const arrays = readNpz(npz);
      const original = arrays.get(name)!;
      const data = Float32Array.from(original.data as Float32Array);
      data[DIM + 2] = value; // row 1, column 2
      arrays.set(name, { ...original, data });
      writeNpz(npz, Object.fromEntries(arrays));
      throws(
        () => readFeatureCache(cache),
        (e: Error) =>
          e instanceof EngineError &&
          new RegExp(`${name} row 1 \\(column 2\\) is ${value}: features must be finite`).test(
            e.message,
          ),
      );
      arrays.set(name, original);
      writeNpz(npz, Object.fromEntries(arrays));
    }
    readFeatureCache(cache); // restored: reads again
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("feature cache: a --cache_dir holding a user's own files is refused and left as it was", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "feature_foreign_" });
  try {
    const root = join(dir, "data");
    writeDemoImageFolder(root, { trainPerClass: 1, testPerClass: 1, size: 24, seed: 1 });
    const mine = join(dir, "mine");
    Deno.mkdirSync(join(mine, "partial"), { recursive: true });
    Deno.writeTextFileSync(join(mine, "manifest.json"), '{"my": "own"}\n');
    Deno.writeTextFileSync(join(mine, "partial", "draft.txt"), "keep\n");
    await rejects(
      build(root, mine, []),
      (e: Error) =>
        e instanceof EngineError &&
        e.message.includes(`the feature cache folder ${mine} holds manifest.json, partial but no`),
    );
    assertEquals(Deno.readTextFileSync(join(mine, "manifest.json")), '{"my": "own"}\n');
    assertEquals(Deno.readTextFileSync(join(mine, "partial", "draft.txt")), "keep\n");
    // An empty folder is fine.
    const empty = join(dir, "empty");
    Deno.mkdirSync(empty);
    assertEquals((await build(root, empty, [])).sources.train, "extracted");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("feature cache: the validation split and each training row's image are extracted, saved and read back; a manifest without format loads with a warning", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "feature_val_" });
  try {
    const root = join(dir, "data");
    writeDemoImageFolder(root, { trainPerClass: 2, testPerClass: 1, size: 24, seed: 1 });
    // A val/ split: a copy of test/.
    cpSync(join(root, "test"), join(root, "val"), { recursive: true });
    const cache = join(dir, "cache");
    const views = 2;
    const built = await build(root, cache, [], { views });
    const f = built.features;
    const images = f.trainClip.rows / views;
    assertEquals(f.valClip?.rows, f.testClip.rows);
    assertEquals(f.valClip?.data, f.testClip.data); // same images, same evaluation view
    assertEquals(
      Array.from(f.trainImage!),
      [...Array(f.trainClip.rows).keys()].map((r) => r % images),
    );
    const read = readFeatureCache(cache);
    assertEquals(read.features.valLabels, f.valLabels);
    assertEquals(read.features.trainImage, f.trainImage);
    assertEquals(read.warnings, []);

    // Hand-made in numpy: no "format" in the manifest.
    const manifest = JSON.parse(Deno.readTextFileSync(join(cache, "manifest.json")));
    delete manifest.format;
    Deno.writeTextFileSync(join(cache, "manifest.json"), JSON.stringify(manifest));
    const hand = readFeatureCache(cache);
    ok(/has no "format" \(made by hand\?\); read as an amu-feature-cache/.test(hand.warnings[0]));
    assertEquals(hand.features.trainClip, f.trainClip);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
