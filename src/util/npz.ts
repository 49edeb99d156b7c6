/** NumPy `.npz` archives: a zip of `.npy` members named `<key>.npy`, as `np.savez` writes and
 * `np.load` reads. Written and read with `fflate`. We write members stored (no compression, like
 * `np.savez`; features do not compress) or deflated (`compress: true`, like
 * `np.savez_compressed`), and read both. fflate does not write ZIP64, so one archive must stay
 * under 4 GiB; larger feature sets need a split cache. */
import * as fflate from "fflate";
import { EngineError } from "./errors.ts";
import { decodeNpy, encodeNpy, type NpyArray, writeFileAtomic } from "./npy.ts";
import { printable } from "./text.ts";

const ZIP32_LIMIT = 0xffffffff;

export interface NpzWriteOptions {
  /** Deflate members (np.savez_compressed); default false (np.savez). */
  compress?: boolean;
}

/** Builds an `.npz` archive from named arrays (insertion order kept). */
export function encodeNpz(
  arrays: Record<string, NpyArray>,
  options: NpzWriteOptions = {},
): Uint8Array {
  const members: fflate.Zippable = {};
  let total = 0;
  for (const [name, array] of Object.entries(arrays)) {
    if (!/^[A-Za-z0-9_.\-]+$/.test(name)) throw new EngineError(`npz: bad member name '${name}'`);
    const bytes = encodeNpy(array);
    total += bytes.length;
    members[`${name}.npy`] = [bytes, { level: options.compress ? 6 : 0 }];
  }
  if (total >= ZIP32_LIMIT) {
    throw new EngineError(
      `npz: ${total} bytes of arrays; archives over 4 GiB need ZIP64, which is not supported`,
    );
  }
  return fflate.zipSync(members);
}

/** Parses an `.npz` archive into named arrays (member `x.npy` becomes key `x`). */
export function decodeNpz(bytes: Uint8Array, label = "npz"): Map<string, NpyArray> {
  let files: fflate.Unzipped;
  try {
    files = fflate.unzipSync(bytes, {
      // fflate allocates each deflated member's stated size before inflating it: a corrupt size
      // (up to 4 GiB) is refused first. Deflate expands at most 1032-fold.
      filter: (f) => {
        if (f.compression === 8 && f.originalSize > f.size * 1032 + 1024) {
          throw new EngineError(
            printable(
              `${label}: member '${f.name.slice(0, 120)}' claims ${f.originalSize} bytes ` +
                `inflated from ${f.size} (more than deflate can produce); the archive is corrupt`,
            ),
          );
        }
        return true;
      },
    });
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError(`${label}: not a readable zip archive (${(e as Error).message})`);
  }
  const out = new Map<string, NpyArray>();
  for (const [member, data] of Object.entries(files)) {
    if (member.endsWith("/")) continue;
    const key = member.endsWith(".npy") ? member.slice(0, -4) : member;
    // A corrupt directory gives names of any bytes and length: escaped, shortened.
    const name = member.length > 120 ? `${member.slice(0, 120)}...` : member;
    out.set(key, decodeNpy(data, `${label}:${printable(name)}`));
  }
  return out;
}

export function writeNpz(
  path: string,
  arrays: Record<string, NpyArray>,
  options: NpzWriteOptions = {},
): void {
  writeFileAtomic(path, encodeNpz(arrays, options));
}

export function readNpz(path: string): Map<string, NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw new EngineError(`cannot read ${path}: ${(e as Error).message}`);
  }
  return decodeNpz(bytes, path);
}

/** The array `key` of an archive, or an error naming the archive and what it holds. */
export function npzGet(archive: Map<string, NpyArray>, key: string, label = "npz"): NpyArray {
  const a = archive.get(key);
  if (!a) {
    throw new EngineError(
      printable(
        `${label}: no array '${key}' (has: ${[...archive.keys()].join(", ") || "nothing"})`,
      ),
    );
  }
  return a;
}
