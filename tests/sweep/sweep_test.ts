/** `deno task sweep` on a generated image folder with the tiny fixture models: grid errors named
 * before anything runs; every cell's run folder and the report; images encoded once into the
 * shared store (fewer views than the cells would encode alone); a rerun skips finished cells and
 * encodes nothing; an interrupted cell is run again; a failed cell is reported, never dropped,
 * and the sweep exits 1. */
import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { writeDemoImageFolder } from "../../src/data/demo_data.ts";
import { readGrid } from "../../tasks/sweep/grid.ts";
import { fixtureModelFlags, runTask } from "../helpers.ts";

function fixtureFlags(): Record<string, string> | undefined {
  const models = fixtureModelFlags();
  return models && { ...models, tune: "off" };
}

function writeGrid(dir: string, grid: Record<string, unknown>): string {
  const file = join(dir, "grid.yaml");
  Deno.writeTextFileSync(file, toYaml(grid));
  return file;
}

const noStack = (stderr: string) => ok(!/^\s+at /m.test(stderr), stderr);

Deno.test("sweep grid: unknown keys, methods and flags, and missing roots are named before anything runs", () => {
  const dir = Deno.makeTempDirSync({ prefix: "sweep_grid_" });
  try {
    const base = {
      name: "g",
      datasets: [{ name: "imagefolder", root_path: dir }],
      shots: [1],
      seeds: [1],
      methods: ["zero-shot"],
    };
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...base, shot: [1] }, /unknown key 'shot'/],
      [{ ...base, methods: ["tip"] }, /unknown method "tip" \(known: amu, zero-shot, tip-adapter/],
      [
        { ...base, flags: { learning_rate: 3 } },
        /cell imagefolder zero-shot 1-shot seed 1: .*unknown flag --learning_rate/,
      ],
      [{ ...base, flags: { shots: 4 } }, /'flags' may not set 'shots'/],
      [
        { ...base, method_flags: { amu: { search_step: "1" } } },
        /cell .*amu .*--search_step 1: expected two positive integers/,
      ],
      [{ ...base, datasets: ["caltech101"] }, /datasets\[0\] \(caltech101\) has no root_path/],
      [
        { ...base, datasets: [{ name: "imagefolder", root_path: join(dir, "nope") }] },
        /datasets\[0\] \(imagefolder\): root_path .*nope does not exist/,
      ],
      [{ ...base, shots: [0] }, /'shots' must be a positive integer/],
      [{ ...base, name: ".." }, /'name' must be a plain name/],
    ];
    // The method_flags case needs the method in the grid.
    bad[4][0].methods = ["amu"];
    for (const [grid, want] of bad) {
      throws(() => readGrid(writeGrid(dir, grid)), want, JSON.stringify(grid));
    }
    const g = readGrid(
      writeGrid(dir, { ...base, shots: [1, 2], seeds: [1, 2], methods: ["zero-shot", "amu"] }),
    );
    assertEquals(g.cells.length, 8);
    assertEquals(
      g.cells[7].dir,
      join(Deno.cwd(), "results", "g", "imagefolder", "amu", "2shot-seed2"),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("sweep: local run, shared store, report; rerun skips; an interrupted cell reruns; a failed cell is reported", async () => {
  const flags = fixtureFlags();
  if (!flags) return;
  const dir = Deno.makeTempDirSync({ prefix: "sweep_local_" });
  try {
    const root = join(dir, "data");
    writeDemoImageFolder(root, { trainPerClass: 3, testPerClass: 2, size: 32, seed: 1 });
    const out = join(dir, "out");
    const grid = writeGrid(dir, {
      name: "t",
      datasets: [{ name: "imagefolder", root_path: root }],
      shots: [1, 2],
      seeds: [1, 2],
      methods: ["zero-shot", "tip-adapter"],
      flags: { ...flags, augment_epoch: 2 },
      method_flags: { "tip-adapter": { search_step: "8,4" } },
    });
    const first = await runTask("sweep", [grid, "--out", out]);
    assertEquals(first.code, 0, first.stdout + first.stderr);
    // 5 classes of 3 images: the lists of two seeds draw at most 15 distinct images, 2 views
    // each, plus 10 test images. Alone, each cell encodes its list's views and the test images:
    // 2 methods x 2 seeds x (1-shot: 5 x 2 + 10, 2-shot: 10 x 2 + 10) = 200.
    const m =
      /encoded (\d+) view\(s\) in .*; the 8 cells extracting on their own would encode (\d+)/
        .exec(first.stdout);
    ok(m, first.stdout);
    const [encoded, alone] = [Number(m![1]), Number(m![2])];
    assertEquals(alone, 200);
    ok(encoded < alone, `${encoded} < ${alone}`);
    ok(encoded <= 15 * 2 + 10, `${encoded}`);

    for (const f of ["results.md", "results.csv", "results.svg"]) ok(existsSync(join(out, f)), f);
    const csv = Deno.readTextFileSync(join(out, "results.csv")).trim().split("\n");
    assertEquals(csv[0], "dataset,method,shots,seed,status,test_acc,chosen");
    const cells = csv.slice(1).filter((l) => !l.includes(",mean,"));
    assertEquals(cells.length, 8);
    ok(cells.every((l) => l.split(",")[4] === "done"), csv.join("\n"));
    const tip = cells.filter((l) => l.startsWith("imagefolder,tip-adapter,"));
    ok(tip.every((l) => /""beta"":[\d.]+,""alpha"":[\d.]+/.test(l)), tip.join("\n"));
    const md = Deno.readTextFileSync(join(out, "results.md"));
    ok(/\| tip-adapter \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \|/.test(md), md);
    const svg = Deno.readTextFileSync(join(out, "results.svg"));
    assertEquals(svg.match(/<polyline/g)?.length, 2);
    const cellDir = join(out, "imagefolder", "tip-adapter", "2shot-seed1");
    for (
      const f of ["metrics.json", "experiment.json", "few_shot.json", "train.log", "config.json"]
    ) {
      ok(existsSync(join(cellDir, f)), f);
    }
    const metrics = JSON.parse(Deno.readTextFileSync(join(cellDir, "metrics.json")));
    assertEquals(metrics.method, "tip-adapter");
    assertEquals(metrics.search_split, "test"); // the folder has no val/

    // Run again: nothing encoded, every cell skipped, same table.
    const again = await runTask("sweep", [grid, "--out", out]);
    assertEquals(again.code, 0, again.stderr);
    ok(
      /encoded 0 view\(s\)/.test(again.stdout) && /8 cell\(s\) already finished/.test(again.stdout),
      again.stdout,
    );
    assertEquals(Deno.readTextFileSync(join(out, "results.md")), md);

    // An interrupted cell (no metrics.json) runs again, to the same result.
    Deno.removeSync(join(cellDir, "metrics.json"));
    const resumed = await runTask("sweep", [grid, "--out", out]);
    assertEquals(resumed.code, 0, resumed.stderr);
    ok(/7 cell\(s\) already finished/.test(resumed.stdout), resumed.stdout);
    assertEquals(JSON.parse(Deno.readTextFileSync(join(cellDir, "metrics.json"))), metrics);

    // A cell that fails (an order file that does not exist): listed as failed, exit 1.
    const failing = writeGrid(dir, {
      name: "t",
      datasets: [{ name: "imagefolder", root_path: root }],
      shots: [1],
      seeds: [1],
      methods: ["zero-shot", "tip-adapter-f"],
      flags: { ...flags, augment_epoch: 2 },
      method_flags: { "tip-adapter-f": { order: join(dir, "missing.npy"), train_epoch: 1 } },
    });
    const out2 = join(dir, "out2");
    const r = await runTask("sweep", [failing, "--out", out2]);
    assertEquals(r.code, 1, r.stdout + r.stderr);
    noStack(r.stderr);
    ok(
      /error: 1 cell\(s\) failed: imagefolder\/tip-adapter-f\/1shot-seed1/.test(r.stderr),
      r.stderr,
    );
    const md2 = Deno.readTextFileSync(join(out2, "results.md"));
    ok(/- imagefolder\/tip-adapter-f\/1shot-seed1: failed \(.*missing\.npy/.test(md2), md2);
    ok(/\| zero-shot \| [\d.]+ \|/.test(md2), md2);
    const report = await runTask("sweep", [failing, "--out", out2, "--stage", "report"]);
    assertEquals(report.code, 1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
