import { deepStrictEqual, rejects } from "node:assert/strict";
import { decodeImage } from "../../src/data/decode.ts";
import {
  centerCrop,
  CLIP_NORMALIZATION,
  randomResizedCropBox,
  resizeBicubic,
  resizeShorter,
  toNormalizedChw,
} from "../../src/data/preprocess.ts";
import { rng } from "../helpers.ts";

const dir = new URL("./pil/", import.meta.url);

interface PilCase {
  file: string;
  width: number;
  height: number;
  size: number;
  box: [number, number, number, number];
}

const cases = JSON.parse(Deno.readTextFileSync(new URL("cases.json", dir))) as PilCase[];

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function load(name: string): Uint8Array {
  return Deno.readFileSync(new URL(name, dir));
}

Deno.test("decode: PNG and JPEG pixels identical to PIL's", async () => {
  for (const c of cases) {
    const img = await decodeImage(load(c.file), c.file);
    deepStrictEqual([img.width, img.height], [c.width, c.height]);
    const stem = c.file.replace(/\.\w+$/, "");
    const diff = maxDiff(img.data, load(`${stem}.decoded.bin`));
    if (diff > 0) throw new Error(`${c.file}: decoded differs from PIL by ${diff}`);
  }
  await rejects(decodeImage(new Uint8Array([1, 2, 3]), "x.bin"), /x.bin: not a JPEG or PNG/);
  await rejects(decodeImage(new Uint8Array([0xff, 0xd8, 0, 0]), "bad.jpg"), /bad.jpg: cannot/);
});

Deno.test("preprocess: bicubic resize + center crop and box resize match Pillow", () => {
  for (const c of cases) {
    const stem = c.file.replace(/\.\w+$/, "");
    // Start from PIL's own decoded pixels so only the resampling is compared.
    const src = { width: c.width, height: c.height, data: load(`${stem}.decoded.bin`) };
    const evalView = centerCrop(resizeShorter(src, c.size), c.size);
    const dEval = maxDiff(evalView.data, load(`${stem}.eval.bin`));
    const [l, t, r, b] = c.box;
    const cropped = {
      width: r - l,
      height: b - t,
      data: new Uint8Array((r - l) * (b - t) * 3),
    };
    for (let y = t; y < b; y++) {
      cropped.data.set(
        src.data.subarray((y * c.width + l) * 3, (y * c.width + r) * 3),
        (y - t) * (r - l) * 3,
      );
    }
    const dBox = maxDiff(resizeBicubic(cropped, c.size, c.size).data, load(`${stem}.box.bin`));
    if (dEval > 1 || dBox > 1) throw new Error(`${c.file}: eval diff ${dEval}, box diff ${dBox}`);
  }
});

Deno.test("preprocess: random resized crop boxes stay inside and cover 50-100% area", () => {
  const r = rng(5);
  for (let i = 0; i < 200; i++) {
    const w = 20 + Math.floor(r() * 300), h = 20 + Math.floor(r() * 300);
    const [l, t, rr, b] = randomResizedCropBox(w, h, r);
    if (l < 0 || t < 0 || rr > w || b > h || rr <= l || b <= t) throw new Error("box outside");
  }
  const out = new Float32Array(3 * 4);
  toNormalizedChw(
    { width: 2, height: 2, data: new Uint8Array(12).fill(255) },
    CLIP_NORMALIZATION,
    out,
  );
  const expected = (1 - CLIP_NORMALIZATION.mean[1]) / CLIP_NORMALIZATION.std[1];
  if (Math.abs(out[4] - expected) > 1e-6) throw new Error(`normalize ${out[4]} vs ${expected}`);
});
