/** Released checkpoints by name, as `clip.load` knows them (OpenAI's `_MODELS` table in
 * github.com/openai/CLIP `clip/clip.py`, whose URLs carry each file's SHA-256 as their
 * second-to-last segment, checked by clip.py's `_download`), and MoCo v3's ResNet-50 (published
 * in github.com/facebookresearch/moco-v3 CONFIG.md without a hash). CLIP files go where
 * `clip.load` puts them (`~/.cache/clip/<basename of the URL>`), so both tools share one
 * download; MoCo v3's go to the sibling `~/.cache/mocov3/`.
 *
 * Test hook: the environment variable `CLIP_WEIGHTS_BASE_URL` (or the `baseUrl` option) replaces
 * every URL's origin and folders, everything before `<sha256>/<file>` for OpenAI's files and
 * before `<file>` for MoCo's, so tests serve them from 127.0.0.1. Users never need it. */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { EngineError } from "../util/errors.ts";
import { checkExisting, downloadFile, type DownloadOptions, sidecarPath } from "./download.ts";

export interface ReleasedWeights {
  /** The canonical name ("ViT-B/16", "mocov3"). */
  readonly name: string;
  readonly url: string;
  /** The file name in the cache: the URL's basename, as clip.py names it ("ViT-B-16.pt"). */
  readonly fileName: string;
  /** Expected SHA-256 (hex); undefined where the publisher gives none. */
  readonly sha256?: string;
  /** Which cache folder holds it: clip.load's, or MoCo's beside it. */
  readonly cache: "clip" | "mocov3";
}

export interface ReleaseOptions {
  /** Replaces the publisher's URL prefix (test hook; default: $CLIP_WEIGHTS_BASE_URL). */
  readonly baseUrl?: string;
}

/** The environment variable of the base-URL test hook. */
export const BASE_URL_ENV = "CLIP_WEIGHTS_BASE_URL";

const OPENAI = "https://openaipublic.azureedge.net/clip/models";

/** OpenAI's `_MODELS`, name -> `<sha256>/<file>` under OPENAI, in clip.available_models() order. */
const CLIP_MODELS: Readonly<Record<string, string>> = {
  "RN50": "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
  "RN101": "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
  "RN50x4": "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/RN50x4.pt",
  "RN50x16": "52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa/RN50x16.pt",
  "RN50x64": "be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c/RN50x64.pt",
  "ViT-B/32": "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
  "ViT-B/16": "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
  "ViT-L/14": "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
  "ViT-L/14@336px":
    "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
};

/** MoCo v3's ResNet-50 pre-trained 1000 epochs, linked from the moco-v3 CONFIG.md. */
const MOCO_V3_R50 = {
  name: "mocov3",
  url: "https://dl.fbaipublicfiles.com/moco-v3/r-50-1000ep/r-50-1000ep.pth.tar",
  fileName: "r-50-1000ep.pth.tar",
  cache: "mocov3",
} as const satisfies ReleasedWeights;

function baseUrl(opts: ReleaseOptions): string | undefined {
  return (opts.baseUrl ?? Deno.env.get(BASE_URL_ENV))?.replace(/\/+$/, "") || undefined;
}

/** clip.available_models(). */
export function availableClipModels(): string[] {
  return Object.keys(CLIP_MODELS);
}

/** `ViT-L/14@336px`, `ViT-L-14-336px` and `vit-l/14@336px` compare equal. */
function spelling(name: string): string {
  return name.trim().toLowerCase().replace(/[/@]/g, "-");
}

/** OpenAI's entry for `RN50`, `ViT-B/16` or `ViT-B-16` (any case); undefined for other names. */
export function releasedClip(name: string, opts: ReleaseOptions = {}): ReleasedWeights | undefined {
  const found = availableClipModels().find((k) => spelling(k) === spelling(name));
  if (!found) return undefined;
  const [sha256, fileName] = CLIP_MODELS[found].split("/");
  const base = baseUrl(opts) ?? OPENAI;
  return { name: found, url: `${base}/${sha256}/${fileName}`, fileName, sha256, cache: "clip" };
}

/** The released auxiliary encoders by name (`mocov3`); undefined for other names. */
export function releasedAux(name: string, opts: ReleaseOptions = {}): ReleasedWeights | undefined {
  if (spelling(name) !== MOCO_V3_R50.name) return undefined;
  const base = baseUrl(opts);
  return base ? { ...MOCO_V3_R50, url: `${base}/${MOCO_V3_R50.fileName}` } : MOCO_V3_R50;
}

/** A CLIP model's or an auxiliary encoder's entry, or an EngineError listing the names. */
export function releasedWeights(name: string, opts: ReleaseOptions = {}): ReleasedWeights {
  const found = releasedClip(name, opts) ?? releasedAux(name, opts);
  if (found) return found;
  throw new EngineError(
    `'${name}' is not a released checkpoint; known: ${availableClipModels().join(", ")}, ` +
      `${MOCO_V3_R50.name}`,
  );
}

/** clip.load's default download_root, `os.path.expanduser("~/.cache/clip")`: $HOME (the user
 * profile on Windows), not $XDG_CACHE_HOME, so both tools find the same files. Another folder
 * is given as `cacheDir` where this module takes one, as clip.load takes download_root. */
export function clipCacheDir(): string {
  return join(homedir(), ".cache", "clip");
}

/** The folder that caches `r`: `cacheDir` (clip.load's download_root) for CLIP, its sibling
 * `mocov3` for MoCo v3. */
export function releasedCacheDir(r: ReleasedWeights, cacheDir = clipCacheDir()): string {
  return r.cache === "clip" ? cacheDir : join(dirname(cacheDir), r.cache);
}

/** Where a released checkpoint is looked for, in order: `<weightsDir>/<file>`, then the cache
 * (the last path is where a download goes), so a CLI can say where it looked. */
export function localCandidates(
  name: string,
  weightsDir: string,
  opts: { readonly cacheDir?: string } = {},
): string[] {
  const r = releasedWeights(name);
  return [join(weightsDir, r.fileName), join(releasedCacheDir(r, opts.cacheDir), r.fileName)];
}

export interface ResolveReleasedOptions extends ReleaseOptions {
  /** Whether a missing checkpoint may be downloaded (false: --no-download). */
  readonly download: boolean;
  readonly weightsDir: string;
  /** clip.load's download_root (default `~/.cache/clip`). */
  readonly cacheDir?: string;
  /** What messages call the checkpoint ("CLIP RN50"; default: its canonical name). */
  readonly what?: string;
  /** Files that together stand in for a checkpoint that is neither in `weightsDir` nor cached
   * (a CLIP model's ONNX pair in weights/): used, when all of them exist, instead of a download,
   * and listed among the places looked at. */
  readonly standIn?: readonly string[];
  readonly log?: (line: string) => void;
  readonly progress?: DownloadOptions["progress"];
  readonly fetchImpl?: typeof fetch;
}

/** The local files of released checkpoint `name`, looked for in this order: a file in
 * `weightsDir`, used as it is (the user put it there); the cached download, checked against its
 * hash (the published one, or the one recorded at the first download) so that a file cut short or
 * damaged in the shared cache is never loaded, and downloaded again when downloads are on, as
 * clip.load does; all of `standIn`; else a download into the cache. The result is the checkpoint
 * alone or the stand-in files. With downloads off, a missing or corrupt cached file is an
 * EngineError saying where it looked and the URL it would fetch. */
export async function resolveReleased(name: string, o: ResolveReleasedOptions): Promise<string[]> {
  const r = releasedWeights(name, o);
  const what = o.what ?? r.name;
  const [placed, cached] = localCandidates(r.name, o.weightsDir, o);
  if (existsSync(placed)) return [placed];
  const standIn = o.standIn ?? [];
  if (!existsSync(cached) && standIn.length > 0 && standIn.every((p) => existsSync(p))) {
    return [...standIn];
  }
  if (o.download) {
    if (!existsSync(cached)) {
      o.log?.(`${what}: not found locally; downloading ${r.url} to ${cached}`);
    }
    const path = await downloadFile({
      url: r.url,
      target: cached,
      sha256: r.sha256,
      log: o.log,
      progress: o.progress,
      fetchImpl: o.fetchImpl,
    });
    return [path];
  }
  const existing = await checkExisting(cached, r.sha256);
  if (existing.state === "verified" || existing.state === "unknown") return [cached];
  const offline = "\n  --no-download is set; without it the file would be downloaded";
  if (existing.state === "mismatch") {
    const source = r.sha256 ? "the published hash" : `recorded in ${sidecarPath(cached)}`;
    throw new EngineError(
      `${what}: ${cached} has SHA-256 ${existing.got}, expected ${existing.want} (${source})` +
        `${offline} again from ${r.url}`,
    );
  }
  const looked = [placed, cached, ...standIn].map((p) => `    ${p}`).join("\n");
  throw new EngineError(`${what} not found; looked at:\n${looked}${offline} from ${r.url}`);
}
