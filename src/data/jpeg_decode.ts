/** Grey and YCbCr JPEG decoding to 8-bit RGB with the pixels PIL's
 * `Image.open(path).convert("RGB")` gives: through MozJPEG's decoder (libjpeg-turbo compiled to
 * WebAssembly, @jsquash/jpeg), which has the same IDCT and fancy chroma upsampling as PIL's
 * libjpeg, so pixels match exactly. 4-channel JPEGs are jpeg_cmyk_decode.ts's. */
import decodeJpegWasm, { init as initJpeg } from "@jsquash/jpeg/decode.js";
import type { RgbImage } from "./image_format.ts";

/** The package's typings declare `init(overrides)`; at run time it also takes
 * `(module, overrides)`, and Emscripten reads `print` / `printErr` from the overrides. */
const initWithOverrides = initJpeg as unknown as (
  module: WebAssembly.Module,
  overrides: { print(text: string): void; printErr(text: string): void },
) => Promise<void>;

let mozjpegCompiled: Promise<WebAssembly.Module> | undefined;
/** Whether the next decode needs a fresh instance (at first, and after a failed decode). */
let mozjpegStale = true;
/** What libjpeg printed during the current decode (warnings, then any error message). */
const mozjpegMessages: string[] = [];
/** Decodes run one at a time, so each one's messages are its own. */
let mozjpegQueue: Promise<unknown> = Promise.resolve();

/** Compiles the decoder once, from the wasm file inside the npm package, and instantiates it
 * (again after a failed decode), with libjpeg's printed messages collected instead of written to
 * the console. A decode that fails leaves libjpeg's state in the instance's memory unreliable
 * (after a few dozen corrupt files a later decode spun forever), so it is not reused. */
async function ensureMozjpeg(): Promise<void> {
  mozjpegCompiled ??= (async () => {
    const url = new URL(import.meta.resolve("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm"));
    return await WebAssembly.compile(await Deno.readFile(url));
  })();
  if (!mozjpegStale) return;
  const record = (text: string) => mozjpegMessages.push(String(text).trim());
  await initWithOverrides(await mozjpegCompiled, { print: record, printErr: record });
  mozjpegStale = false;
}

/** libjpeg's warning for data that ends before the image does (end-of-image marker included).
 * libjpeg fills the rest grey; PIL refuses such files ("image file is truncated"), so we do. */
const TRUNCATED = "the file is truncated (libjpeg: Premature end of JPEG file)";

/** The error for a decode that threw `error` or warned of truncation, else undefined. */
function failure(messages: readonly string[], error: Error | undefined): Error | undefined {
  const said = messages.filter((m) => m.length > 0);
  if (said.includes("Premature end of JPEG file")) return new Error(TRUNCATED);
  if (!error) return undefined;
  // The wasm build ends with "Program terminated with exit(1)"; libjpeg's message says why.
  return new Error(said.length > 0 ? `libjpeg: ${said.join("; ")}` : error.message);
}

async function decodeRgba(bytes: Uint8Array): Promise<ImageData> {
  mozjpegMessages.length = 0;
  let error: Error | undefined;
  let decoded: ImageData | undefined;
  try {
    decoded = await decodeJpegWasm(bytes.slice().buffer);
  } catch (e) {
    error = e as Error;
  }
  const failed = failure(mozjpegMessages.splice(0), error);
  if (failed) {
    mozjpegStale = true;
    throw failed;
  }
  return decoded!;
}

/** Decodes a 1- or 3-component JPEG. */
export async function decodeJpegRgb(bytes: Uint8Array): Promise<RgbImage> {
  const run = mozjpegQueue.then(async () => {
    await ensureMozjpeg();
    return await decodeRgba(bytes);
  });
  mozjpegQueue = run.catch(() => {});
  const img = await run;
  const rgba = new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    out[p * 3] = rgba[p * 4];
    out[p * 3 + 1] = rgba[p * 4 + 1];
    out[p * 3 + 2] = rgba[p * 4 + 2];
  }
  return { width: img.width, height: img.height, data: out };
}
