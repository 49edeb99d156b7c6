/** What an image file is, from its first bytes, and how large it claims to be, from its header
 * alone: so files we cannot decode get a specific message, and huge images are refused before
 * any pixel memory is allocated. */

/** Formats recognised by their magic bytes. Only "png" and "jpeg" are decoded. */
export type ImageFormat =
  | "png"
  | "jpeg"
  | "gif"
  | "webp"
  | "bmp"
  | "tiff"
  | "jpeg2000"
  | "heif"
  | "avif"
  | "ico"
  | "pnm"
  | "psd";

/** Names used in messages. */
export const FORMAT_NAMES: Record<ImageFormat, string> = {
  png: "PNG",
  jpeg: "JPEG",
  gif: "GIF",
  webp: "WebP",
  bmp: "BMP",
  tiff: "TIFF",
  jpeg2000: "JPEG 2000",
  heif: "HEIF/HEIC",
  avif: "AVIF",
  ico: "ICO",
  pnm: "PNM/PPM",
  psd: "Photoshop PSD",
};

function startsWith(bytes: Uint8Array, magic: readonly number[], at = 0): boolean {
  return magic.every((b, i) => bytes[at + i] === b);
}

function ascii(s: string): number[] {
  return [...s].map((c) => c.charCodeAt(0));
}

/** The format `bytes` start with, or undefined when no known magic matches. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (startsWith(bytes, [0xff, 0xd8])) return "jpeg";
  if (startsWith(bytes, ascii("GIF87a")) || startsWith(bytes, ascii("GIF89a"))) return "gif";
  if (startsWith(bytes, ascii("RIFF")) && startsWith(bytes, ascii("WEBP"), 8)) return "webp";
  if (startsWith(bytes, ascii("BM"))) return "bmp";
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) {
    return "tiff";
  }
  if (
    startsWith(bytes, [0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20]) ||
    startsWith(bytes, [0xff, 0x4f, 0xff, 0x51])
  ) return "jpeg2000";
  if (startsWith(bytes, ascii("ftyp"), 4)) {
    const brand = String.fromCharCode(...bytes.subarray(8, 12));
    if (brand === "avif" || brand === "avis") return "avif";
    if (["heic", "heix", "hevc", "hevx", "mif1", "msf1"].includes(brand)) return "heif";
  }
  if (startsWith(bytes, [0, 0, 1, 0])) return "ico";
  if (bytes[0] === 0x50 && bytes[1] >= 0x31 && bytes[1] <= 0x36 && bytes[2] <= 0x20) return "pnm";
  if (startsWith(bytes, ascii("8BPS"))) return "psd";
  return undefined;
}

/** Dimensions and sample layout read from a header. */
export interface ImageHeader {
  readonly width: number;
  readonly height: number;
  /** Colour components (JPEG: 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK; PNG: samples per pixel). */
  readonly components: number;
}

function u16(b: Uint8Array, i: number): number {
  return (b[i] << 8) | b[i + 1];
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i] << 24) >>> 0) + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
}

const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** PNG dimensions from IHDR, which the format requires to be the first chunk. */
export function pngHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length < 33 || String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") {
    throw new Error("PNG has no IHDR chunk");
  }
  return {
    width: u32(bytes, 16),
    height: u32(bytes, 20),
    components: PNG_CHANNELS[bytes[25]] ?? 0,
  };
}

/** Where a walk over a JPEG's marker segments stopped: at the first start of scan (SOS), at the
 * end of the data, at an end-of-image marker, or at bytes that are not a marker. */
interface JpegWalk {
  frame?: ImageHeader;
  stop: "scan" | "end of data" | "end of image" | "bad marker";
  /** Offset of the stop. */
  at: number;
}

/** Walks JPEG marker segments from the start of the file to the first start of scan, noting the
 * first frame header (SOF) met. Segments are skipped by their length fields, so markers inside
 * them (an EXIF thumbnail's, say) are not mistaken for the image's own. */
function walkJpeg(bytes: Uint8Array): JpegWalk {
  let frame: ImageHeader | undefined;
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return { frame, stop: "bad marker", at: i };
    const marker = bytes[i + 1];
    if (marker === 0xff) { // fill byte
      i++;
      continue;
    }
    if (marker === 0xda) return { frame, stop: "scan", at: i };
    if (marker === 0xd9) return { frame, stop: "end of image", at: i };
    i += 2;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length field
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
      marker !== 0xcc;
    if (isFrame && !frame && i + 8 <= bytes.length) {
      frame = { height: u16(bytes, i + 3), width: u16(bytes, i + 5), components: bytes[i + 7] };
    }
    i += u16(bytes, i);
  }
  return { frame, stop: "end of data", at: i };
}

/** JPEG dimensions from the first start-of-frame marker. */
export function jpegHeader(bytes: Uint8Array): ImageHeader {
  const walk = walkJpeg(bytes);
  if (walk.frame) return walk.frame;
  if (walk.stop === "bad marker") throw new Error(`JPEG marker expected at byte ${walk.at}`);
  if (walk.stop === "end of data") throw new Error("the JPEG file is truncated (before its frame)");
  throw new Error("JPEG has no frame header (SOF marker)");
}

/** Whether the data ends before the image does: before the first scan, or with no end-of-image
 * marker after it (entropy-coded data cannot hold one: 0xFF is stuffed). A file whose markers
 * are broken is left for the decoder to report. */
export function jpegIsTruncated(bytes: Uint8Array): boolean {
  const walk = walkJpeg(bytes);
  if (walk.stop === "end of data") return true;
  if (walk.stop !== "scan") return false;
  for (let i = walk.at; i + 1 < bytes.length; i++) {
    if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return false;
  }
  return true;
}

/** Largest image decoded, in pixels. PIL warns above ~89 MP and refuses above ~179 MP
 * (DecompressionBombError); 100 MP is far beyond any photo a dataset holds, and keeps the
 * decoded RGB copy and its resize buffers to a few hundred megabytes. */
export const MAX_IMAGE_PIXELS = 100_000_000;

/** Why an image of `header`'s size is refused, or undefined when it is within the limit. */
export function oversizeReason(header: ImageHeader): string | undefined {
  const pixels = header.width * header.height;
  if (pixels <= MAX_IMAGE_PIXELS) return undefined;
  const mp = (n: number) => `${(n / 1e6).toFixed(1)} MP`;
  return `image is ${header.width}x${header.height} (${mp(pixels)}), over the ` +
    `${mp(MAX_IMAGE_PIXELS)} limit for decoding (MAX_IMAGE_PIXELS in src/data/image_format.ts)`;
}

/** An 8-bit RGB image, row-major, interleaved (HWC). */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}
