/** Image decoding with well-kept codecs into 8-bit RGB, as PIL's
 * `Image.open(path).convert("RGB")` gives it: JPEG through libjpeg-turbo's decoder compiled to
 * WebAssembly (MozJPEG via @jsquash/jpeg, so pixels match PIL's libjpeg exactly, fancy chroma
 * upsampling included), PNG through fast-png. */
import decodeJpegWasm, { init as initJpeg } from "@jsquash/jpeg/decode.js";
import { decode as decodePng } from "fast-png";
import { EngineError } from "../gpu/errors.ts";

/** An 8-bit RGB image, row-major, interleaved (HWC). */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

function isPng(bytes: Uint8Array): boolean {
  return PNG_MAGIC.every((b, i) => bytes[i] === b);
}

function isJpeg(bytes: Uint8Array): boolean {
  return bytes[0] === 0xff && bytes[1] === 0xd8;
}

let jpegReady: Promise<void> | undefined;

/** Compiles the JPEG decoder once, from the wasm file inside the npm package. */
function ensureJpeg(): Promise<void> {
  jpegReady ??= (async () => {
    const url = new URL(import.meta.resolve("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm"));
    await initJpeg(await WebAssembly.compile(await Deno.readFile(url)));
  })();
  return jpegReady;
}

/** Decodes JPEG or PNG bytes; `source` names the file in errors. */
export async function decodeImage(bytes: Uint8Array, source: string): Promise<RgbImage> {
  try {
    if (isJpeg(bytes)) return await decodeJpeg(bytes);
    if (isPng(bytes)) return decodePngRgb(bytes);
  } catch (e) {
    throw new EngineError(`${source}: cannot decode image: ${(e as Error).message}`);
  }
  throw new EngineError(`${source}: not a JPEG or PNG file`);
}

export async function readImage(path: string): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new EngineError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return decodeImage(bytes, path);
}

async function decodeJpeg(bytes: Uint8Array): Promise<RgbImage> {
  await ensureJpeg();
  const copy = bytes.slice().buffer;
  const img = await decodeJpegWasm(copy);
  const rgba = new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  return { width: img.width, height: img.height, data: dropAlpha(rgba, 4) };
}

function decodePngRgb(bytes: Uint8Array): RgbImage {
  const png = decodePng(bytes);
  const { width, height } = png;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  // 16-bit samples keep their high byte, as PIL's conversion to 8-bit RGB does.
  const sample = png.depth === 16 ? (i: number) => png.data[i] >> 8 : (i: number) => png.data[i];
  if (png.palette) {
    const palette = png.palette;
    for (let p = 0; p < n; p++) {
      const entry = palette[png.data[p]] ?? [0, 0, 0];
      out[p * 3] = entry[0];
      out[p * 3 + 1] = entry[1];
      out[p * 3 + 2] = entry[2];
    }
    return { width, height, data: out };
  }
  const ch = png.channels;
  for (let p = 0; p < n; p++) {
    if (ch >= 3) {
      out[p * 3] = sample(p * ch);
      out[p * 3 + 1] = sample(p * ch + 1);
      out[p * 3 + 2] = sample(p * ch + 2);
    } else {
      const g = sample(p * ch); // grey or grey+alpha
      out[p * 3] = out[p * 3 + 1] = out[p * 3 + 2] = g;
    }
  }
  return { width, height, data: out };
}

function dropAlpha(rgba: Uint8Array, channels: number): Uint8Array {
  const n = rgba.length / channels;
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    out[p * 3] = rgba[p * channels];
    out[p * 3 + 1] = rgba[p * channels + 1];
    out[p * 3 + 2] = rgba[p * channels + 2];
  }
  return out;
}
