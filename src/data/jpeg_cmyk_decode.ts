/** CMYK and YCCK JPEG decoding to 8-bit RGB with the pixels PIL's
 * `Image.open(path).convert("RGB")` gives. MozJPEG's build only outputs RGB, which libjpeg
 * cannot produce from 4-channel JPEGs, so these go through the TurboJPEG API of libjpeg-turbo's
 * WebAssembly build in @cwasm/jpeg-turbo, asked for CMYK output (libjpeg turns YCCK into CMYK
 * itself; accurate IDCT and fancy upsampling, as PIL's libjpeg). PIL then reads CMYK as
 * Adobe-inverted ("CMYK;I", for every CMYK JPEG, marker or not) and converts it with Convert.c's
 * `cmyk2rgb`: R = (255 - K) - C * (255 - K) / 255, rounded as its MULDIV255 does. */
import type { RgbImage } from "./image_format.ts";
// Imported so Deno installs the package and resolves its wasm file below to a path on disk.
import "@cwasm/jpeg-turbo/package.json" with { type: "json" };

let turboModule: Promise<WebAssembly.Module> | undefined;

function compileTurbo(): Promise<WebAssembly.Module> {
  turboModule ??= (async () => {
    const url = new URL(import.meta.resolve("@cwasm/jpeg-turbo/jpeg-turbo.wasm"));
    return WebAssembly.compile(await Deno.readFile(url));
  })();
  return turboModule;
}

interface TurboExports {
  memory: WebAssembly.Memory;
  malloc(size: number): number;
  tjInitDecompress(): number;
  tjDecompressHeader3(
    handle: number,
    src: number,
    size: number,
    width: number,
    height: number,
    subsamp: number,
    colorspace: number,
  ): number;
  tjDecompress2(
    handle: number,
    src: number,
    size: number,
    dst: number,
    width: number,
    pitch: number,
    height: number,
    pixelFormat: number,
    flags: number,
  ): number;
}

/** TurboJPEG's TJPF_CMYK; flags 0 keep libjpeg's defaults (accurate IDCT, fancy upsampling). */
const TJPF_CMYK = 11;

const DECODE_FAILED = "libjpeg-turbo could not decode the data";

/** A fresh instance per image: libjpeg reports errors by longjmp, which this build turns into a
 * thrown exception that leaves the instance's heap in an unknown state. 4-channel JPEGs are
 * rare, so the extra instantiation costs nothing that matters. Nothing is freed: the instance's
 * memory goes with it. */
async function turboInstance(): Promise<TurboExports> {
  const fail = (what: string) => () => {
    throw new Error(`libjpeg-turbo called ${what}`);
  };
  const instance = await WebAssembly.instantiate(await compileTurbo(), {
    env: {
      setjmp: () => 0,
      longjmp: () => {
        throw new Error(DECODE_FAILED);
      },
    },
    wasi_snapshot_preview1: {
      environ_sizes_get: () => 0,
      environ_get: fail("environ_get"),
      proc_exit: fail("proc_exit"),
      fd_close: fail("fd_close"),
      fd_seek: fail("fd_seek"),
      fd_write: fail("fd_write"),
    },
  });
  return instance.exports as unknown as TurboExports;
}

/** libjpeg's CMYK samples (as stored: Adobe-inverted) of a CMYK or YCCK JPEG. */
async function decodeCmykSamples(
  bytes: Uint8Array,
): Promise<{ width: number; height: number; cmyk: Uint8Array }> {
  const tj = await turboInstance();
  const src = tj.malloc(bytes.length);
  new Uint8Array(tj.memory.buffer, src, bytes.length).set(bytes);
  const handle = tj.tjInitDecompress();
  const info = tj.malloc(16);
  if (handle === 0 || src === 0 || info === 0) throw new Error("libjpeg-turbo: out of memory");
  if (tj.tjDecompressHeader3(handle, src, bytes.length, info, info + 4, info + 8, info + 12)) {
    throw new Error("libjpeg-turbo cannot read the JPEG header");
  }
  const [width, height] = new Uint32Array(tj.memory.buffer, info, 2);
  const dst = tj.malloc(width * height * 4);
  if (dst === 0) throw new Error("libjpeg-turbo: out of memory");
  // Errors longjmp (and so throw). A non-zero status without one means libjpeg only warned,
  // which PIL ignores too (truncated files, which PIL refuses, are caught before decoding).
  tj.tjDecompress2(handle, src, bytes.length, dst, width, width * 4, height, TJPF_CMYK, 0);
  return { width, height, cmyk: new Uint8Array(tj.memory.buffer, dst, width * height * 4).slice() };
}

/** Pillow's MULDIV255: a * b / 255 rounded, in integers. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/** Decodes a 4-component (CMYK or YCCK) JPEG to RGB the way PIL does. */
export async function decodeCmykJpegRgb(bytes: Uint8Array): Promise<RgbImage> {
  const { width, height, cmyk } = await decodeCmykSamples(bytes);
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    // PIL's "CMYK;I" raw mode inverts every sample, so its K is 255 - stored and 255 - K is the
    // stored value; then cmyk2rgb.
    const nk = cmyk[p * 4 + 3];
    for (let c = 0; c < 3; c++) out[p * 3 + c] = nk - mulDiv255(255 - cmyk[p * 4 + c], nk);
  }
  return { width, height, data: out };
}
