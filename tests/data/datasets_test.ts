import { deepStrictEqual, throws } from "node:assert/strict";
import { join } from "node:path";
import { loadDataset, loadImageFolder, sampleFewShot } from "../../src/data/datasets.ts";
import { seededRandom } from "../../src/util/random.ts";

function touch(path: string): void {
  Deno.mkdirSync(join(path, ".."), { recursive: true });
  Deno.writeFileSync(path, new Uint8Array([0]));
}

Deno.test("datasets: imagefolder layout, zhou split, unknown names", () => {
  const root = Deno.makeTempDirSync();
  for (const c of ["cat", "dog"]) {
    for (let i = 0; i < 3; i++) touch(join(root, "folder", "train", c, `${i}.jpg`));
    touch(join(root, "folder", "test", c, "t.png"));
  }
  touch(join(root, "folder", "train", "cat", "notes.txt"));
  const ds = loadImageFolder(join(root, "folder"));
  deepStrictEqual(ds.classnames, ["cat", "dog"]);
  deepStrictEqual([ds.train.length, ds.test.length, ds.val.length], [6, 2, 0]);

  const dtd = join(root, "dtd");
  Deno.mkdirSync(dtd, { recursive: true });
  Deno.writeTextFileSync(
    join(dtd, "split_zhou_DescribableTextures.json"),
    JSON.stringify({
      train: [["banded/a.jpg", 0, "banded"], ["dotted/b.jpg", 1, "dotted"]],
      val: [],
      test: [["dotted/c.jpg", 1, "dotted"]],
    }),
  );
  const d = loadDataset("dtd", root);
  deepStrictEqual(d.classnames, ["banded", "dotted"]);
  deepStrictEqual(d.test[0].path, join(dtd, "images", "dotted/c.jpg"));
  throws(() => loadDataset("mnist", root), /--dataset: unknown dataset 'mnist'/);
  throws(() => loadDataset("eurosat", root), /eurosat split file not found/);
  Deno.removeSync(root, { recursive: true });
});

Deno.test("datasets: few-shot sampling is seeded, per class, with replacement when short", () => {
  const items = [
    ...Array.from({ length: 10 }, (_, i) => ({ path: `a${i}`, label: 0 })),
    { path: "b0", label: 1 },
  ];
  const s1 = sampleFewShot(items, 2, 4, seededRandom(1));
  const s2 = sampleFewShot(items, 2, 4, seededRandom(1));
  deepStrictEqual(s1, s2);
  deepStrictEqual(s1.map((x) => x.label), [0, 0, 0, 0, 1, 1, 1, 1]);
  deepStrictEqual(new Set(s1.slice(0, 4).map((x) => x.path)).size, 4);
  throws(() => sampleFewShot(items, 3, 1, seededRandom(1)), /class 2 has no images/);
});
