/** Image decoding into 8-bit RGB, as PIL's `Image.open(path).convert("RGB")` gives it, for the
 * JPEG and PNG files datasets hold (every PNG colour type and bit depth; grey, YCbCr, CMYK and
 * YCCK JPEGs, baseline or progressive). The format comes from the magic bytes, not the file
 * name; other formats PIL reads are named in a clear refusal. Images over MAX_IMAGE_PIXELS are
 * refused from their header, before any pixel memory is allocated. */
import { EngineError } from "../util/errors.ts";
import {
  FORMAT_NAMES,
  type ImageHeader,
  jpegHeader,
  jpegIsTruncated,
  oversizeReason,
  pngHeader,
  type RgbImage,
  sniffFormat,
} from "./image_format.ts";
import { decodeCmykJpegRgb } from "./jpeg_cmyk_decode.ts";
import { decodeJpegRgb } from "./jpeg_decode.ts";
import { decodePngRgb } from "./png_decode.ts";

export { MAX_IMAGE_PIXELS } from "./image_format.ts";

/** Decodes JPEG or PNG bytes; `source` names the file in errors. */
export async function decodeImage(bytes: Uint8Array, source: string): Promise<RgbImage> {
  const format = sniffFormat(bytes);
  if (format !== "png" && format !== "jpeg") {
    const what = format
      ? `it is a ${FORMAT_NAMES[format]} image, which is not supported`
      : "unrecognised format";
    throw new EngineError(`${source}: not a JPEG or PNG file (${what})`);
  }
  let header: ImageHeader;
  try {
    header = format === "png" ? pngHeader(bytes) : jpegHeader(bytes);
  } catch (e) {
    throw new EngineError(`${source}: cannot decode image: ${(e as Error).message}`);
  }
  const oversize = oversizeReason(header);
  if (oversize) throw new EngineError(`${source}: ${oversize}`);
  if (format === "jpeg" && jpegIsTruncated(bytes)) {
    // PIL refuses these ("image file is truncated"); libjpeg would fill the rest grey.
    throw new EngineError(`${source}: the JPEG file is truncated (no end-of-image marker)`);
  }
  try {
    if (format === "png") return decodePngRgb(bytes);
    if (header.components === 4) return await decodeCmykJpegRgb(bytes);
    return await decodeJpegRgb(bytes);
  } catch (e) {
    throw new EngineError(
      `${source}: cannot decode ${FORMAT_NAMES[format]} image: ${(e as Error).message}`,
    );
  }
}

/** Reads and decodes an image file. */
export async function readImage(path: string): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new EngineError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return decodeImage(bytes, path);
}
