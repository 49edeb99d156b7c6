/** Saved extraction segments: each finished run of `segmentImages` images is written as one .npz
 * in the segment directory, so an interrupted extraction continues where it stopped. The
 * directory's key file names the work; a directory saved under another key is emptied. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { EngineError } from "../util/errors.ts";
import { type NpyArray, npyArray, toNumbers, writeFileAtomic } from "../util/npy.ts";
import { npzGet, readNpz, writeNpz } from "../util/npz.ts";

/** An image extraction could not read or decode, and why. */
export interface SkippedImage {
  readonly path: string;
  readonly reason: string;
}

/** One segment's results, image-major: row `k * views + v`. */
export interface Segment {
  kept: number[];
  skipped: SkippedImage[];
  features: Float32Array[];
}

/** A segment read back from disk with its per-tower feature sizes. */
export interface SavedSegment {
  seg: Segment;
  dims: number[];
}

const KEY_FILE = "key.txt";

/** The file of segment `index` in `dir`. */
export function segmentPath(dir: string, index: number): string {
  return join(dir, `segment-${String(index).padStart(5, "0")}.npz`);
}

/** Prepares the segment directory: keeps it when its key matches, empties it otherwise. */
export function openSegmentDir(dir: string, key: string): void {
  const keyPath = join(dir, KEY_FILE);
  if (existsSync(keyPath) && Deno.readTextFileSync(keyPath) === key) return;
  if (existsSync(dir)) Deno.removeSync(dir, { recursive: true });
  Deno.mkdirSync(dir, { recursive: true });
  writeFileAtomic(keyPath, key);
}

/** Writes `seg` to `path`: `views` rows per kept image, `dims[t]` wide for tower `t`. */
export function saveSegment(path: string, seg: Segment, dims: number[], views: number): void {
  const json = new TextEncoder().encode(JSON.stringify(seg.skipped));
  const arrays: Record<string, NpyArray> = {
    kept: npyArray("int64", [seg.kept.length], seg.kept),
    skipped_json: { dtype: "uint8", shape: [json.length], data: json },
  };
  seg.features.forEach((f, t) => {
    arrays[`features_${t}`] = {
      dtype: "float32",
      shape: [seg.kept.length * views, dims[t]],
      data: f,
    };
  });
  writeNpz(path, arrays);
}

/** The segment an earlier run saved at `path`, or undefined when there is none or it cannot be
 * read (said through `log`: the caller extracts it again). */
export function readSavedSegment(
  path: string,
  towers: number,
  log: ((line: string) => void) | undefined,
): SavedSegment | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return loadSegment(path, towers);
  } catch (e) {
    log?.(`ignoring unreadable saved segment ${path}: ${(e as Error).message}`);
    return undefined;
  }
}

function loadSegment(path: string, towers: number): SavedSegment {
  const z = readNpz(path);
  const kept = Array.from(toNumbers(npzGet(z, "kept", path)));
  const skipped = JSON.parse(
    new TextDecoder().decode(npzGet(z, "skipped_json", path).data as Uint8Array),
  ) as SkippedImage[];
  const features: Float32Array[] = [];
  const dims: number[] = [];
  for (let t = 0; t < towers; t++) {
    const a = npzGet(z, `features_${t}`, path);
    if (a.dtype !== "float32" || a.shape.length !== 2) {
      throw new EngineError(`${path}: features_${t} is not a float32 matrix`);
    }
    features.push(a.data as Float32Array);
    dims.push(a.shape[1]);
  }
  return { seg: { kept, skipped, features }, dims };
}
