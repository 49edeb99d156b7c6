/** Guards against silent wrong results and lost files in `deno task train`: a diverging run stops
 * with a clear error (non-zero exit, nothing of the diverged epoch saved, train.log ending with
 * the error); run names that resolve outside results/ are refused; an --out folder holding a
 * user's own files with a run file's name is neither taken for a run nor changed. */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { cpSync, existsSync } from "node:fs";
import { join } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import { writeFeatureCache } from "../../src/data/feature_cache.ts";
import { amuConfig } from "../../src/amu/config.ts";
import { syntheticFeatures } from "../../src/amu/synthetic.ts";
import { trainAmu } from "../../src/amu/train.ts";
import { CannotResumeError } from "../../src/amu/run_dir.ts";
import { writeDemoImageFolder } from "../../src/data/demo_data.ts";
import { npyArray, writeNpy } from "../../src/util/npy.ts";
import { parseExperimentArgs } from "../../tasks/train/settings.ts";
import { runExperiment } from "../../tasks/train/experiment.ts";
import { fixtureModelFlags, runTask } from "../helpers.ts";

function parse(argv: string[]) {
  const s = parseExperimentArgs(argv);
  if (s === "help") throw new Error("unexpected help");
  return s;
}

function tinyFeatures() {
  return syntheticFeatures({
    trainRows: 24,
    testRows: 11,
    classes: 5,
    clipDim: 6,
    auxDim: 7,
    seed: 3,
    noise: 1.5,
  });
}

function writeCache(dir: string): string {
  const cache = join(dir, "cache");
  writeFeatureCache(cache, tinyFeatures(), {
    format: "amu-feature-cache",
    version: 1,
    dataset: "synthetic",
    split: { train: "train", test: "test" },
    shots: null,
    seed: 3,
    augment_views: 1,
    class_names: ["a", "b", "c", "d", "e"],
    encoders: [],
  });
  return cache;
}

function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = Deno.makeTempDirSync({ prefix: "train_guards_" });
  return fn(dir).finally(() => Deno.removeSync(dir, { recursive: true }));
}

const noStack = (stderr: string) => ok(!/^\s+at /m.test(stderr), `stack trace in:\n${stderr}`);

Deno.test("divergence: a non-finite loss stops training with an error; nothing of that epoch is saved", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "run");
    const config = amuConfig({ lr: 1e30, epochs: 2, batchSize: 8 });
    await rejects(
      trainAmu(config, tinyFeatures(), { outDir: out }),
      (e: Error) =>
        e instanceof EngineError &&
        /^training diverged: the loss at epoch 1, iteration \d+ is (NaN|Infinity|-Infinity) \(lr 1e\+30\)/
          .test(e.message),
    );
    ok(!existsSync(join(out, "checkpoint_last.npz")), "no checkpoint of the diverged epoch");
    ok(!existsSync(join(out, "metrics.json")), "no metrics of the diverged epoch");

    // Through the command line: exit 1, one error line, and train.log ends with it.
    const cache = writeCache(dir);
    const cliOut = join(dir, "cli");
    const r = await runTask("train", ["--features", cache, "--out", cliOut, "--lr", "1e30"]);
    assertEquals(r.code, 1, r.stdout + r.stderr);
    ok(/^error: training diverged: /m.test(r.stderr), r.stderr);
    noStack(r.stderr);
    const log = Deno.readTextFileSync(join(cliOut, "train.log")).trimEnd().split("\n");
    ok(log[log.length - 1].startsWith("error: training diverged: "), log.join("\n"));
  });
});

Deno.test("run folders: --exp_name . or .. is refused; a folder of a user's files is left alone", async () => {
  await withTempDir(async (dir) => {
    const cache = writeCache(dir);
    for (const name of [".", ".."]) {
      const r = await runTask("train", ["--features", cache, "--exp_name", name]);
      assertEquals(r.code, 1, r.stdout + r.stderr);
      ok(r.stderr.includes(`exp_name '${name}' names no folder inside results/`), r.stderr);
      noStack(r.stderr);
    }

    // A folder holding the user's own config.json (and notes): not a run, with or without
    // --overwrite; nothing there changes.
    const mine = join(dir, "mine");
    Deno.mkdirSync(mine);
    const userConfig = '{"learning_rate": 3, "note": "my own settings"}\n';
    Deno.writeTextFileSync(join(mine, "config.json"), userConfig);
    Deno.writeTextFileSync(join(mine, "notes.txt"), "keep\n");
    for (const extra of [[], ["--overwrite"]]) {
      const r = await runTask("train", ["--features", cache, "--out", mine, ...extra]);
      assertEquals(r.code, 1, r.stdout + r.stderr);
      ok(
        r.stderr.includes(
          "holds config.json, which a run would write, but is not the folder of a run",
        ),
        r.stderr,
      );
      noStack(r.stderr);
      assertEquals(Deno.readTextFileSync(join(mine, "config.json")), userConfig);
      assertEquals([...Deno.readDirSync(mine)].map((e) => e.name).sort(), [
        "config.json",
        "notes.txt",
      ]);
    }

    // A folder of unrelated files only is fine: the run is written beside them, and a second
    // run into it is recognised as the finished run it is.
    const shared = join(dir, "shared");
    Deno.mkdirSync(shared);
    Deno.writeTextFileSync(join(shared, "notes.txt"), "keep\n");
    const first = await runTask("train", [
      "--features",
      cache,
      "--out",
      shared,
      "--train_epoch",
      "1",
    ]);
    assertEquals(first.code, 0, first.stdout + first.stderr);
    ok(existsSync(join(shared, "metrics.json")) && existsSync(join(shared, "notes.txt")));
    const again = await runTask("train", [
      "--features",
      cache,
      "--out",
      shared,
      "--train_epoch",
      "1",
    ]);
    assertEquals(again.code, 1);
    ok(again.stderr.includes("already holds a finished run"), again.stderr);
  });
});

Deno.test("resume refusals: an interrupted run with other settings is a CannotResumeError saying how to start over", async () => {
  await withTempDir(async (dir) => {
    const cache = writeCache(dir);
    const out = join(dir, "run");
    const base = ["--features", cache, "--out", out, "--train_epoch", "3", "--batch_size", "4"];
    const lines: string[] = [];
    const io = { print: (l: string) => lines.push(l), progress: false as const };
    const first = await runExperiment(parse(base), { ...io, stopAfterEpochs: 1 });
    assertEquals(first.result?.epochsDone, 1);

    // Other settings: refused before any feature work, naming the setting.
    await rejects(
      runExperiment(parse([...base, "--lr", "0.01"]), io),
      (e: Error) =>
        e instanceof CannotResumeError &&
        e.message.includes("holds an interrupted run with lr 0.001, now 0.01"),
    );
    // With --order the settings are checked by the trainer; the refusal gains the way out.
    const order = join(out, "order.npy");
    await rejects(
      runExperiment(parse([...base, "--order", order, "--lr", "0.01"]), io),
      (e: Error) =>
        e instanceof CannotResumeError &&
        e.message.startsWith(`cannot resume ${out}: --lr was 0.001, now 0.01`) &&
        e.message.endsWith(
          "\n  (pass --overwrite to start a new run there, or choose another --exp_name)",
        ),
    );
    const log = Deno.readTextFileSync(join(out, "train.log")).trimEnd().split("\n");
    ok(log[log.length - 1].startsWith("  (pass --overwrite"), log.join("\n"));
    ok(log.some((l) => l.startsWith(`error: cannot resume ${out}: --lr was`)), log.join("\n"));

    // The same command resumes it.
    const resumed = await runExperiment(parse(base), io);
    ok(resumed.resumed);
    assertEquals(resumed.result?.epochsDone, 3);
  });
});

Deno.test("early checks: a one-class dataset, an empty class folder and a bad --order fail before any image is decoded; short classes warn", async () => {
  const flags = fixtureModelFlags();
  if (!flags) return;
  const models = Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v]);
  await withTempDir(async (dir) => {
    const root = join(dir, "data");
    writeDemoImageFolder(root, { trainPerClass: 2, testPerClass: 1, size: 24, seed: 1 });
    const classes = [...Deno.readDirSync(join(root, "train"))].map((e) => e.name).sort();
    const lines: string[] = [];
    const run = (over: string[], dataRoot = root) =>
      runExperiment(
        parse([
          "--dataset",
          "imagefolder",
          "--root_path",
          dataRoot,
          "--shots",
          "3",
          "--train_epoch",
          "1",
          "--tune",
          "off",
          "--cache_dir",
          join(dir, "cache"),
          "--out",
          join(dir, "run"),
          ...models,
          ...over,
        ]),
        { print: (l: string) => lines.push(l), progress: false, cacheRoot: join(dir, "cacheroot") },
      );
    const nothingExtracted = () => ok(!existsSync(join(dir, "cache")), "no feature work started");

    // An order for more rows than 5 classes x 3 shots x 1 view can give.
    const order = join(dir, "order.npy");
    writeNpy(order, npyArray("int64", [1, 40], Array.from({ length: 40 }, (_, i) => i)));
    await rejects(
      run(["--order", order]),
      /order\.npy orders 40 training rows per epoch, but this run has at most 15 images x 1 view\(s\) = 15/,
    );
    nothingExtracted();

    // An empty class folder: named, with the file types that are read.
    const emptied = join(root, "train", classes[1]);
    const moved = join(dir, "moved");
    Deno.renameSync(emptied, moved);
    Deno.mkdirSync(emptied);
    Deno.writeTextFileSync(join(emptied, "notes.txt"), "not an image\n");
    await rejects(
      run([]),
      (e: Error) =>
        e.message.includes(`class 1 ('${classes[1]}', folder ${emptied}, read for *.jpg, *.jpeg`) &&
        e.message.includes("has no images"),
    );
    nothingExtracted();
    Deno.removeSync(emptied, { recursive: true });
    Deno.renameSync(moved, emptied);

    // One class only.
    const single = join(dir, "single");
    Deno.mkdirSync(join(single, "train"), { recursive: true });
    Deno.mkdirSync(join(single, "test"), { recursive: true });
    cpSync(join(root, "train", classes[0]), join(single, "train", classes[0]), { recursive: true });
    cpSync(join(root, "test", classes[0]), join(single, "test", classes[0]), { recursive: true });
    await rejects(
      run([], single),
      /has 1 class \(.*\): few-shot classification needs at least 2/,
    );
    nothingExtracted();

    // 2 images per class, 3 shots: a warning before extraction, then the run goes on.
    lines.length = 0;
    await run([]);
    const warning = lines.findIndex((l) =>
      /^warning: 5 class\(es\) have fewer than 3 training images .*sampled with replacement/.test(l)
    );
    const extraction = lines.findIndex((l) => l.startsWith("extracting "));
    ok(warning >= 0 && warning < extraction, lines.join("\n"));
  });
});
