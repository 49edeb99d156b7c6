/** Benchmark datasets in their standard layouts (CoOp / Tip-Adapter / AMU-Tuning), a generic
 * image-folder dataset, and seeded few-shot sampling. */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { EngineError } from "../util/errors.ts";

export interface LabeledImage {
  readonly path: string;
  readonly label: number;
}

export interface Dataset {
  readonly name: string;
  readonly classnames: readonly string[];
  readonly train: readonly LabeledImage[];
  readonly val: readonly LabeledImage[];
  readonly test: readonly LabeledImage[];
}

/** Folder and split file of each dataset with a `split_zhou_*.json` split (CoOp's layout). */
const ZHOU_LAYOUTS: Record<string, { dir: string; images: string; split: string }> = {
  caltech101: {
    dir: "caltech-101",
    images: "101_ObjectCategories",
    split: "split_zhou_Caltech101.json",
  },
  oxford_pets: { dir: "oxford_pets", images: "images", split: "split_zhou_OxfordPets.json" },
  stanford_cars: { dir: "stanford_cars", images: "", split: "split_zhou_StanfordCars.json" },
  oxford_flowers: { dir: "oxford_flowers", images: "jpg", split: "split_zhou_OxfordFlowers.json" },
  food101: { dir: "food-101", images: "images", split: "split_zhou_Food101.json" },
  sun397: { dir: "sun397", images: "SUN397", split: "split_zhou_SUN397.json" },
  dtd: { dir: "dtd", images: "images", split: "split_zhou_DescribableTextures.json" },
  eurosat: { dir: "eurosat", images: "2750", split: "split_zhou_EuroSAT.json" },
  ucf101: { dir: "ucf101", images: "UCF-101-midframes", split: "split_zhou_UCF101.json" },
};

export const DATASET_NAMES = ["imagenet", ...Object.keys(ZHOU_LAYOUTS), "fgvc", "imagefolder"];

const IMAGE_EXT = /\.(jpe?g|png)$/i;
/** The image files a class folder is read for, in words (IMAGE_EXT). */
export const IMAGE_TYPES = "*.jpg, *.jpeg and *.png (any case)";

function mustExist(path: string, what: string): void {
  if (!existsSync(path)) throw new EngineError(`${what} not found: ${path}`);
}

/** Loads a dataset's class names and splits from `root` (the `--root_path`). */
export function loadDataset(name: string, root: string): Dataset {
  mustExist(root, "--root_path");
  if (name === "imagenet") return loadImagenet(root);
  if (name === "fgvc") return loadFgvc(root);
  if (name === "imagefolder") return loadImageFolder(root);
  const layout = ZHOU_LAYOUTS[name];
  if (!layout) {
    throw new EngineError(
      `--dataset: unknown dataset '${name}' (known: ${DATASET_NAMES.join(", ")})`,
    );
  }
  const dir = join(root, layout.dir);
  return loadZhouSplit(name, join(dir, layout.split), join(dir, layout.images));
}

type ZhouEntry = [string, number, string];

/** CoOp's `split_zhou_*.json`: {"train"|"val"|"test": [[relative path, label, classname]...]}. */
export function loadZhouSplit(name: string, splitFile: string, imageDir: string): Dataset {
  mustExist(splitFile, `${name} split file`);
  let json: Record<string, ZhouEntry[]>;
  try {
    json = JSON.parse(Deno.readTextFileSync(splitFile));
  } catch (e) {
    throw new EngineError(`${splitFile}: not valid JSON: ${(e as Error).message}`);
  }
  const names: string[] = [];
  const convert = (part: string): LabeledImage[] => {
    const entries = json[part] ?? [];
    if (!Array.isArray(entries)) throw new EngineError(`${splitFile}: '${part}' is not a list`);
    return entries.map((e, i) => {
      if (!Array.isArray(e) || typeof e[0] !== "string" || typeof e[1] !== "number") {
        throw new EngineError(`${splitFile}: ${part}[${i}] is not [path, label, classname]`);
      }
      names[e[1]] ??= String(e[2]);
      return { path: join(imageDir, e[0]), label: e[1] };
    });
  };
  const train = convert("train"), val = convert("val"), test = convert("test");
  for (let c = 0; c < names.length; c++) {
    if (names[c] === undefined) throw new EngineError(`${splitFile}: no example of label ${c}`);
  }
  return { name, classnames: names, train, val, test };
}

function listImages(dir: string): string[] {
  return readdirSync(dir).filter((f) => IMAGE_EXT.test(f)).sort().map((f) => join(dir, f));
}

function subdirs(dir: string): string[] {
  return readdirSync(dir).filter((d) => statSync(join(dir, d)).isDirectory()).sort();
}

/** `<root>/train/<class>/*` and `<root>/test/<class>/*` (optional `val/`); class names are the
 * folder names (underscores read as spaces in prompts). */
export function loadImageFolder(root: string): Dataset {
  const trainDir = join(root, "train");
  const testDir = join(root, "test");
  mustExist(trainDir, "imagefolder train/ folder");
  mustExist(testDir, "imagefolder test/ folder");
  const classnames = subdirs(trainDir);
  if (classnames.length === 0) throw new EngineError(`${trainDir}: no class folders`);
  const index = new Map(classnames.map((c, i) => [c, i]));
  const split = (dir: string): LabeledImage[] => {
    if (!existsSync(dir)) return [];
    const out: LabeledImage[] = [];
    for (const c of subdirs(dir)) {
      const label = index.get(c);
      if (label === undefined) {
        throw new EngineError(`${join(dir, c)}: class '${c}' is not among train/'s classes`);
      }
      for (const path of listImages(join(dir, c))) out.push({ path, label });
    }
    return out;
  };
  return {
    name: "imagefolder",
    classnames,
    train: split(trainDir),
    val: split(join(root, "val")),
    test: split(testDir),
  };
}

/** ImageNet: `<root>/imagenet/images/{train,val}/<wnid>/*` with class names from
 * `<root>/imagenet/classnames.txt` (CoOp's format: `wnid class name` per line, CLIP's names). */
export function loadImagenet(root: string): Dataset {
  const dir = join(root, "imagenet");
  const namesFile = join(dir, "classnames.txt");
  mustExist(namesFile, "ImageNet class names (CoOp's classnames.txt: 'wnid name' per line)");
  const wnids: string[] = [];
  const classnames: string[] = [];
  Deno.readTextFileSync(namesFile).split("\n").forEach((line, i) => {
    const trimmed = line.trim();
    if (!trimmed) return;
    const space = trimmed.indexOf(" ");
    if (space < 0) throw new EngineError(`${namesFile}:${i + 1}: expected 'wnid class name'`);
    wnids.push(trimmed.slice(0, space));
    classnames.push(trimmed.slice(space + 1));
  });
  const split = (part: string): LabeledImage[] => {
    const partDir = join(dir, "images", part);
    mustExist(partDir, `ImageNet ${part} folder`);
    const out: LabeledImage[] = [];
    wnids.forEach((wnid, label) => {
      const classDir = join(partDir, wnid);
      if (!existsSync(classDir)) return;
      for (const path of listImages(classDir)) out.push({ path, label });
    });
    return out;
  };
  const test = split("val");
  return { name: "imagenet", classnames, train: split("train"), val: [], test };
}

/** FGVC-Aircraft: `<root>/fgvc_aircraft/{images/, variants.txt, images_variant_<split>.txt}`. */
export function loadFgvc(root: string): Dataset {
  const dir = join(root, "fgvc_aircraft");
  const variantsFile = join(dir, "variants.txt");
  mustExist(variantsFile, "FGVC variants.txt");
  const classnames = Deno.readTextFileSync(variantsFile).split("\n").map((l) => l.trim())
    .filter((l) => l);
  const index = new Map(classnames.map((c, i) => [c, i]));
  const split = (part: string): LabeledImage[] => {
    const file = join(dir, `images_variant_${part}.txt`);
    mustExist(file, `FGVC ${part} split`);
    return Deno.readTextFileSync(file).split("\n").filter((l) => l.trim()).map((line, i) => {
      const [id, ...rest] = line.trim().split(" ");
      const label = index.get(rest.join(" "));
      if (label === undefined) throw new EngineError(`${file}:${i + 1}: unknown variant`);
      return { path: join(dir, "images", `${id}.jpg`), label };
    });
  };
  return {
    name: "fgvc",
    classnames,
    train: split("train"),
    val: split("val"),
    test: split("test"),
  };
}

/** Seeded Fisher-Yates-based sampling: `shots` images per class without replacement, with
 * replacement when a class has fewer (as CoOp's `generate_fewshot_dataset`). Output is ordered by
 * class, then draw order, so a recorded list replays exactly. */
export function sampleFewShot(
  items: readonly LabeledImage[],
  classes: number,
  shots: number,
  random: () => number,
  className: (label: number) => string = (label) => `class ${label}`,
): LabeledImage[] {
  const byClass: LabeledImage[][] = Array.from({ length: classes }, () => []);
  for (const it of items) byClass[it.label]?.push(it);
  const out: LabeledImage[] = [];
  byClass.forEach((pool, label) => {
    if (pool.length === 0) {
      throw new EngineError(`few-shot sampling: ${className(label)} has no images`);
    }
    if (pool.length >= shots) {
      const idx = pool.map((_, i) => i);
      for (let i = 0; i < shots; i++) {
        const j = i + Math.floor(random() * (idx.length - i));
        [idx[i], idx[j]] = [idx[j], idx[i]];
        out.push(pool[idx[i]]);
      }
    } else {
      for (let i = 0; i < shots; i++) out.push(pool[Math.floor(random() * pool.length)]);
    }
  });
  return out;
}
