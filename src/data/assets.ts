/** Where the data files the product needs by default are looked up. */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { EngineError } from "../util/errors.ts";

export const REPO_ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

/** The shared data folder: `$SHARED_DIR`, else `../shared` beside the repository. */
export function sharedDataDir(): string {
  return Deno.env.get("SHARED_DIR") ?? resolve(REPO_ROOT, "..", "shared");
}

export const BPE_FILE = "bpe_simple_vocab_16e6.txt.gz";

/** CLIP's BPE merges: an explicit path, else `weights/`, else the shared data's `clip/`. */
export function findBpeFile(explicit?: string): string {
  if (explicit) {
    if (!existsSync(explicit)) throw new EngineError(`--bpe: file not found: ${explicit}`);
    return explicit;
  }
  const candidates = [
    resolve(REPO_ROOT, "weights", BPE_FILE),
    resolve(sharedDataDir(), "clip", BPE_FILE),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new EngineError(
      `CLIP's BPE file ${BPE_FILE} not found (looked in ${candidates.join(", ")}); ` +
        `pass --bpe PATH (it ships with OpenAI CLIP as clip/${BPE_FILE})`,
    );
  }
  return found;
}
