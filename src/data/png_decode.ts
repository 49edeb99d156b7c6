/** PNG decoding to 8-bit RGB with the pixels PIL's `Image.open(path).convert("RGB")` gives, for
 * every colour type, bit depth and interlace method. Decoded here rather than through fast-png,
 * which returns packed samples below 8 bits and mis-sizes Adam7 passes below 8 bits; inflating
 * is fflate's. PIL's conversions, per colour type (Pillow's PngImagePlugin modes, then
 * Convert.c):
 * - grey 1-bit is mode "1": 0 or 255; grey 2/4-bit is "L" scaled by 85/17; grey 16-bit is
 *   mode "I", which converts to RGB by clipping the value to 255 (not by taking the high byte);
 * - RGB, grey+alpha and RGBA at 16 bits keep each sample's high byte; alpha is dropped;
 * - palette indices map through PLTE; indices past its end get PIL's default greyscale palette
 *   entry (i, i, i). Transparency (tRNS) does not change RGB pixels. */
import { printable } from "../util/text.ts";
import { unzlibSync } from "fflate";
import type { RgbImage } from "./image_format.ts";
import { pngHeader } from "./image_format.ts";

interface Ihdr {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlaced: boolean;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, readonly number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};

/** Adam7 passes: x0, y0, dx, dy. */
const ADAM7: readonly (readonly [number, number, number, number])[] = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

function readChunks(bytes: Uint8Array): { ihdr: Ihdr; palette?: Uint8Array; idat: Uint8Array } {
  const header = pngHeader(bytes);
  const ihdr: Ihdr = {
    width: header.width,
    height: header.height,
    depth: bytes[24],
    colorType: bytes[25],
    interlaced: bytes[28] === 1,
  };
  if (ihdr.width === 0 || ihdr.height === 0) {
    throw new Error(`PNG says ${ihdr.width}x${ihdr.height} pixels: a zero size is invalid`);
  }
  if (!DEPTHS[ihdr.colorType]?.includes(ihdr.depth)) {
    throw new Error(`PNG colour type ${ihdr.colorType} with bit depth ${ihdr.depth} is invalid`);
  }
  if (bytes[26] !== 0 || bytes[27] !== 0 || bytes[28] > 1) {
    throw new Error("PNG uses an unknown compression, filter or interlace method");
  }
  let palette: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const len = ((bytes[pos] << 24) >>> 0) + (bytes[pos + 1] << 16) + (bytes[pos + 2] << 8) +
      bytes[pos + 3];
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + len);
    if (data.length < len) {
      throw new Error(`PNG truncated inside its ${JSON.stringify(printable(type))} chunk`);
    }
    if (type === "PLTE") palette = data;
    else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  if (idat.length === 0) throw new Error("PNG has no image data (IDAT)");
  if (ihdr.colorType === 3 && !palette) throw new Error("palette PNG has no PLTE chunk");
  const total = idat.reduce((n, c) => n + c.length, 0);
  const joined = new Uint8Array(total);
  let o = 0;
  for (const c of idat) {
    joined.set(c, o);
    o += c.length;
  }
  return { ihdr, palette, idat: joined };
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Reverses one scanline's filter in place; `prev` is the unfiltered line above (zeros first). */
function unfilter(type: number, line: Uint8Array, prev: Uint8Array, bpp: number): void {
  const n = line.length;
  switch (type) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) line[i] = (line[i] + line[i - bpp]) & 0xff;
      return;
    case 2:
      for (let i = 0; i < n; i++) line[i] = (line[i] + prev[i]) & 0xff;
      return;
    case 3:
      for (let i = 0; i < n; i++) {
        const left = i >= bpp ? line[i - bpp] : 0;
        line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xff;
      }
      return;
    case 4:
      for (let i = 0; i < n; i++) {
        const left = i >= bpp ? line[i - bpp] : 0;
        const upLeft = i >= bpp ? prev[i - bpp] : 0;
        line[i] = (line[i] + paeth(left, prev[i], upLeft)) & 0xff;
      }
      return;
    default:
      throw new Error(`PNG scanline has unknown filter type ${type}`);
  }
}

/** Writes pixel `x` of an unfiltered scanline as RGB at `out[o..o+3)`. */
type PixelWriter = (line: Uint8Array, x: number, out: Uint8Array, o: number) => void;

function pixelWriter(ihdr: Ihdr, palette: Uint8Array | undefined): PixelWriter {
  const { depth, colorType } = ihdr;
  const grey = (out: Uint8Array, o: number, v: number) => {
    out[o] = out[o + 1] = out[o + 2] = v;
  };
  // Sub-byte samples, most significant bits first.
  const packed = (line: Uint8Array, x: number) => {
    const bit = x * depth;
    return (line[bit >> 3] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
  };
  if (colorType === 3) {
    const entries = palette!.length / 3 | 0;
    return (line, x, out, o) => {
      const i = depth === 8 ? line[x] : packed(line, x);
      if (i < entries) {
        out[o] = palette![i * 3];
        out[o + 1] = palette![i * 3 + 1];
        out[o + 2] = palette![i * 3 + 2];
      } else grey(out, o, i);
    };
  }
  if (colorType === 0) {
    if (depth === 16) {
      return (line, x, out, o) => grey(out, o, Math.min(255, (line[2 * x] << 8) | line[2 * x + 1]));
    }
    if (depth === 8) return (line, x, out, o) => grey(out, o, line[x]);
    const scale = 255 / ((1 << depth) - 1);
    return (line, x, out, o) => grey(out, o, packed(line, x) * scale);
  }
  // 8 or 16 bits: the high byte of each sample; samples per pixel from the colour type.
  const step = CHANNELS[colorType] * (depth / 8);
  const sample = depth / 8;
  if (colorType === 4) return (line, x, out, o) => grey(out, o, line[x * step]);
  return (line, x, out, o) => {
    const s = x * step;
    out[o] = line[s];
    out[o + 1] = line[s + sample];
    out[o + 2] = line[s + 2 * sample];
  };
}

/** Decodes PNG bytes to RGB; the size check against the caller's limit is done before this. */
export function decodePngRgb(bytes: Uint8Array): RgbImage {
  const { ihdr, palette, idat } = readChunks(bytes);
  const { width, height } = ihdr;
  const bitsPerPixel = CHANNELS[ihdr.colorType] * ihdr.depth;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const passes = ihdr.interlaced ? ADAM7 : [[0, 0, 1, 1] as const];
  let expected = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx), ph = Math.ceil((height - y0) / dy);
    if (pw > 0 && ph > 0) expected += ph * (1 + Math.ceil(pw * bitsPerPixel / 8));
  }
  let raw: Uint8Array;
  try {
    raw = unzlibSync(idat);
  } catch (e) {
    throw new Error(`PNG image data is corrupt (${(e as Error).message})`);
  }
  if (raw.length < expected) {
    throw new Error(`PNG image data is truncated (${raw.length} of ${expected} bytes)`);
  }
  const write = pixelWriter(ihdr, palette);
  const out = new Uint8Array(width * height * 3);
  let pos = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx), ph = Math.ceil((height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const lineBytes = Math.ceil(pw * bitsPerPixel / 8);
    let prev: Uint8Array = new Uint8Array(lineBytes);
    for (let r = 0; r < ph; r++) {
      const line = raw.subarray(pos + 1, pos + 1 + lineBytes);
      unfilter(raw[pos], line, prev, bpp);
      pos += 1 + lineBytes;
      const y = y0 + r * dy;
      for (let c = 0; c < pw; c++) write(line, c, out, (y * width + x0 + c * dx) * 3);
      prev = line;
    }
  }
  return { width, height, data: out };
}
