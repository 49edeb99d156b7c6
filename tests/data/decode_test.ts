/** Image decoding against PIL: every PNG colour type and bit depth, interlaced or not, and JPEG
 * baseline / progressive / grey / CMYK / YCCK / chroma subsamplings, each compared pixel for pixel
 * with `Image.open(path).convert("RGB")` (tests/data/pil_modes/make_corpus.py made the files and
 * the expected pixels). Also: huge images refused from the header, other formats named, and the
 * `deno task decode` CLI. */
import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { decodeImage, MAX_IMAGE_PIXELS } from "../../src/data/decode.ts";
import { makeViews } from "../../src/data/extract.ts";
import { decodeNpy } from "../../src/util/npy.ts";
import { CLIP_NORMALIZATION, toNormalizedChw } from "../../src/data/preprocess.ts";
import { EngineError } from "../../src/util/errors.ts";
import { runTask } from "../helpers.ts";

const dir = new URL("./pil_modes/", import.meta.url);

interface ModeCase {
  file: string;
  width: number;
  height: number;
  /** The mode PIL opened the file in, before convert("RGB"). */
  pil_mode: string;
  note: string;
}

const cases = JSON.parse(Deno.readTextFileSync(new URL("cases.json", dir))) as ModeCase[];

function load(name: string): Uint8Array {
  return Deno.readFileSync(new URL(name, dir));
}

function expectedPixels(c: ModeCase): Uint8Array {
  return load(c.file.replace(/\.\w+$/, ".rgb"));
}

/** Index and values of the first differing element, or undefined when equal. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | undefined {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  let count = 0, first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      count++;
      if (first < 0) first = i;
    }
  }
  return first < 0
    ? undefined
    : `${count} values differ, first at ${first}: got ${a[first]}, expected ${b[first]}`;
}

function assertCorpusCase(c: ModeCase, data: ArrayLike<number>): void {
  const diff = firstDifference(data, expectedPixels(c));
  if (diff) throw new Error(`${c.file} (${c.note}, PIL mode ${c.pil_mode}): ${diff}`);
}

Deno.test("decode: the corpus covers every PNG colour type and the JPEG variants", () => {
  const files = new Set(cases.map((c) => c.file));
  for (
    const f of [
      ...[1, 2, 4, 8, 16].map((d) => `grey${d}.png`),
      ...[1, 2, 4, 8].flatMap((d) => [`pal${d}.png`, `pal${d}_trns.png`]),
      "rgb8.png",
      "rgb16.png",
      "greyalpha8.png",
      "greyalpha16.png",
      "rgba8.png",
      "rgba16.png",
      "grey2_adam7.png",
      "jpeg_444.jpg",
      "jpeg_422.jpg",
      "jpeg_420.jpg",
      "jpeg_progressive.jpg",
      "jpeg_grey.jpg",
      "jpeg_cmyk.jpg",
      "jpeg_ycck.jpg",
    ]
  ) ok(files.has(f), `corpus lacks ${f}`);
});

// One test per file, so a failure names the colour type at once.
for (const c of cases) {
  Deno.test(`decode: ${c.file} (${c.note}) matches PIL's convert("RGB") exactly`, async () => {
    const img = await decodeImage(load(c.file), c.file);
    deepStrictEqual([img.width, img.height], [c.width, c.height]);
    assertCorpusCase(c, img.data);
  });
}

/** A PNG signature and IHDR claiming `width` x `height`, with no image data after it. */
function pngHeaderOnly(width: number, height: number): Uint8Array {
  const b = new Uint8Array(33);
  b.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  const dv = new DataView(b.buffer);
  dv.setUint32(16, width);
  dv.setUint32(20, height);
  b.set([8, 2, 0, 0, 0], 24); // 8-bit RGB
  return b;
}

/** A JPEG start, an APP0 segment, and a baseline SOF claiming `width` x `height`. */
function jpegHeaderOnly(width: number, height: number): Uint8Array {
  const app0 = [0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0];
  const sof = [0xff, 0xc0, 0, 17, 8, height >> 8, height & 255, width >> 8, width & 255, 3];
  for (let c = 1; c <= 3; c++) sof.push(c, 0x11, 0);
  return new Uint8Array([0xff, 0xd8, ...app0, ...sof]);
}

Deno.test("decode: images over the pixel limit are refused from the header", async () => {
  ok(MAX_IMAGE_PIXELS >= 50e6 && MAX_IMAGE_PIXELS < 20000 * 20000);
  for (
    const [bytes, name] of [
      [pngHeaderOnly(20000, 20000), "huge.png"],
      [jpegHeaderOnly(20000, 20000), "huge.jpg"],
    ] as const
  ) {
    await rejects(decodeImage(bytes, name), (e: Error) => {
      ok(e instanceof EngineError, `${name}: ${e}`);
      ok(e.message.startsWith(`${name}: `), e.message);
      ok(e.message.includes("20000x20000 (400.0 MP)"), e.message);
      ok(e.message.includes("100.0 MP limit"), e.message);
      return true;
    });
  }
  // Just under the limit the header is accepted and decoding fails on the missing data instead.
  await rejects(decodeImage(pngHeaderOnly(10000, 10000), "big.png"), /big.png: cannot decode PNG/);
});

Deno.test("decode: other formats are named, broken files are EngineErrors naming the file", async () => {
  const ascii = (s: string) => [...s].map((ch) => ch.charCodeAt(0));
  const samples: [number[], string][] = [
    [ascii("GIF89a\x01\x00\x01\x00"), "GIF"],
    [[...ascii("RIFF"), 0, 0, 0, 0, ...ascii("WEBPVP8 ")], "WebP"],
    [ascii("BM\x3a\x00\x00\x00"), "BMP"],
    [[0x49, 0x49, 0x2a, 0, 8, 0, 0, 0], "TIFF"],
    [[0, 0, 0, 0x1c, ...ascii("ftypheic")], "HEIF"],
  ];
  for (const [bytes, format] of samples) {
    await rejects(
      decodeImage(new Uint8Array(bytes), "img.x"),
      new RegExp(`img\\.x: not a JPEG or PNG file \\(it is a ${format}`),
    );
  }
  await rejects(decodeImage(new Uint8Array([1, 2, 3]), "x.bin"), /x.bin: not a JPEG or PNG/);
  // A 4-channel JPEG whose entropy-coded data is garbage goes through the CMYK decoder's error path.
  const cmyk = load("jpeg_cmyk.jpg").slice();
  const sos = cmyk.findIndex((b, i) => b === 0xff && cmyk[i + 1] === 0xda);
  cmyk.fill(0xff, sos, sos + 12);
  await rejects(
    decodeImage(cmyk, "bad_cmyk.jpg"),
    (e: Error) => e instanceof EngineError && /^bad_cmyk.jpg: cannot decode JPEG/.test(e.message),
  );
});

Deno.test("decode: truncated files are refused as PIL refuses them, trailing bytes are not", async () => {
  // PIL raises "image file is truncated" for all of these (checked with Pillow 9.4); libjpeg
  // alone would fill the missing part grey.
  for (const file of ["jpeg_420.jpg", "jpeg_progressive.jpg", "jpeg_cmyk.jpg", "jpeg_ycck.jpg"]) {
    const bytes = load(file);
    for (const cut of [2, 10, bytes.length >> 1, bytes.length - 20]) {
      await rejects(
        decodeImage(bytes.subarray(0, bytes.length - cut), file),
        (e: Error) =>
          e instanceof EngineError && e.message.startsWith(`${file}: `) &&
          /the JPEG file is truncated \((no end-of-image marker|before its frame)\)$/.test(
            e.message,
          ),
      );
    }
    // Bytes after the end-of-image marker are ignored, by PIL and here.
    const c = caseOf(file);
    assertCorpusCase(c, (await decodeImage(new Uint8Array([...bytes, 1, 2, 3]), file)).data);
  }
  const png = load("rgb8.png");
  await rejects(
    decodeImage(png.subarray(0, png.length - 40), "cut.png"),
    (e: Error) => e instanceof EngineError && /^cut.png: cannot decode PNG/.test(e.message),
  );
  // Without its IEND chunk a PNG still decodes, in PIL and here.
  const noEnd = await decodeImage(png.subarray(0, png.length - 12), "rgb8.png");
  assertCorpusCase(caseOf("rgb8.png"), noEnd.data);
});

function caseOf(file: string): ModeCase {
  const c = cases.find((c) => c.file === file);
  if (!c) throw new Error(`no corpus case ${file}`);
  return c;
}

Deno.test("deno task decode: writes PIL's pixels and the pipeline's normalised tensor", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    for (const file of ["pal2.png", "jpeg_ycck.jpg"]) {
      const out = `${tmp}/${file}.npy`;
      const r = await runTask("decode", [new URL(file, dir).pathname, "--out", out]);
      deepStrictEqual(r.code, 0, r.stderr);
      const c = caseOf(file);
      const arr = decodeNpy(Deno.readFileSync(out), out);
      deepStrictEqual([arr.dtype, arr.shape], ["uint8", [c.height, c.width, 3]]);
      assertCorpusCase(c, arr.data as Uint8Array);
    }
    const file = "jpeg_420.jpg", size = 9;
    const out = `${tmp}/clip.npy`;
    const path = new URL(file, dir).pathname;
    const r = await runTask("decode", [
      path,
      "--preprocess",
      "clip",
      "--size",
      `${size}`,
      "--out",
      out,
    ]);
    deepStrictEqual(r.code, 0, r.stderr);
    const arr = decodeNpy(Deno.readFileSync(out), out);
    deepStrictEqual([arr.dtype, arr.shape], ["float32", [3, size, size]]);
    const view = makeViews(await decodeImage(load(file), file), [size], { kind: "eval" }, 0)[0][0];
    const expected = new Float32Array(3 * size * size);
    toNormalizedChw(view, CLIP_NORMALIZATION, expected);
    const diff = firstDifference(arr.data as Float32Array, expected);
    if (diff) throw new Error(`preprocessed tensor differs from the pipeline's: ${diff}`);
    // --size alone: the same view before normalisation.
    const viewOut = `${tmp}/view.npy`;
    const v = await runTask("decode", [path, "--size", `${size}`, "--out", viewOut]);
    deepStrictEqual(v.code, 0, v.stderr);
    const viewArr = decodeNpy(Deno.readFileSync(viewOut), viewOut);
    deepStrictEqual([viewArr.dtype, viewArr.shape], ["uint8", [size, size, 3]]);
    const viewDiff = firstDifference(viewArr.data as Uint8Array, view.data);
    if (viewDiff) throw new Error(`--size view differs from the pipeline's: ${viewDiff}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("deno task decode: a missing file is one clear error, exit 1, no stack", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const missing = `${tmp}/no_such_image.jpg`;
    const r = await runTask("decode", [missing, "--out", `${tmp}/x.npy`]);
    deepStrictEqual(r.code, 1);
    ok(r.stderr.includes(`error: ${missing}: cannot read`), r.stderr);
    ok(!/^\s+at /m.test(r.stderr), `stack trace printed:\n${r.stderr}`);
    const bad = await runTask("decode", [missing, "--preprocess", "vit", "--out", `${tmp}/x.npy`]);
    deepStrictEqual(bad.code, 1);
    ok(bad.stderr.includes("--preprocess: expected clip or imagenet, got 'vit'"), bad.stderr);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
