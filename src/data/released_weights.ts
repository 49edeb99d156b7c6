/** Released checkpoints by name, as `clip.load` knows them (OpenAI's `_MODELS` table in
 * `clip/clip.py`, whose URLs carry each file's SHA-256 as their second-to-last segment) and MoCo
 * v3's ResNet-50 (published without a hash). Files go where `clip.load` puts them, so both tools
 * share one download. */
import { join } from "node:path";

export interface ReleasedWeights {
  /** The name as given to `--clip_backbone` / `clip.load` ("ViT-B/16"). */
  readonly name: string;
  readonly url: string;
  /** The file name in the cache (the URL's basename, as clip.py names it). */
  readonly fileName: string;
  /** Expected SHA-256 (hex); undefined where the publisher gives none. */
  readonly sha256?: string;
}

const OPENAI = "https://openaipublic.azureedge.net/clip/models";

/** OpenAI's table, name -> `<sha256>/<file>`. */
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

/** MoCo v3's released ResNet-50 (1000 epochs), as its README links it. */
const MOCO_V3_R50: ReleasedWeights = {
  name: "mocov3",
  url: "https://dl.fbaipublicfiles.com/moco-v3/r-50-1000ep/r-50-1000ep.pth.tar",
  fileName: "r-50-1000ep.pth.tar",
};

/** Test hook: `CLIP_WEIGHTS_BASE_URL` replaces each URL's origin and folders (everything before
 * `<sha256>/<file>`, or before `<file>` for unhashed ones), so tests serve files from
 * 127.0.0.1. Never needed by users. */
function baseUrlOverride(): string | undefined {
  return Deno.env.get("CLIP_WEIGHTS_BASE_URL")?.replace(/\/+$/, "");
}

export function availableClipModels(): string[] {
  return Object.keys(CLIP_MODELS);
}

/** `ViT-B/16`, `ViT-B-16` or `vit-b/16` -> the table's entry; undefined for an unknown name. */
export function releasedClip(name: string): ReleasedWeights | undefined {
  const key = (s: string) => s.trim().toLowerCase().replaceAll("/", "-");
  const found = Object.keys(CLIP_MODELS).find((k) => key(k) === key(name));
  if (!found) return undefined;
  const [sha256, fileName] = CLIP_MODELS[found].split("/");
  const base = baseUrlOverride();
  return {
    name: found,
    url: base ? `${base}/${sha256}/${fileName}` : `${OPENAI}/${CLIP_MODELS[found]}`,
    fileName,
    sha256,
  };
}

/** The released auxiliary encoders by name (`mocov3`). */
export function releasedAux(name: string): ReleasedWeights | undefined {
  if (name.trim().toLowerCase() !== MOCO_V3_R50.name) return undefined;
  const base = baseUrlOverride();
  return base ? { ...MOCO_V3_R50, url: `${base}/${MOCO_V3_R50.fileName}` } : MOCO_V3_R50;
}

/** Where `clip.load` keeps downloads: `~/.cache/clip` (clip.py expands that path, it does not
 * read XDG_CACHE_HOME). */
export function clipCacheDir(): string {
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE") ?? ".";
  return join(home, ".cache", "clip");
}
