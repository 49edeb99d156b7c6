/** Content hashes of files (model weights, dataset images), remembered between runs.
 *
 * A file's SHA-256 is kept in a JSON memo together with its size and modification time; while
 * both are unchanged the memo answers, otherwise the file is read and hashed again. So a rerun
 * over a 50,000-image dataset stats the files instead of reading them, and an image edited or
 * replaced in place (new mtime or size) is hashed anew and changes every key built on it. */
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { sha256OfFile } from "./download.ts";
import { writeFileAtomic } from "../util/npy.ts";
import { EngineError } from "../util/errors.ts";

interface MemoEntry {
  size: number;
  mtime: number;
  sha256: string;
}

export interface HashedFile {
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
}

export class FileHashes {
  #memo: Record<string, MemoEntry> = {};
  #dirty = false;

  /** `memoPath`: where the memo is kept (none: hashes are remembered for this process only). */
  constructor(readonly memoPath?: string) {
    if (memoPath && existsSync(memoPath)) {
      try {
        const parsed = JSON.parse(Deno.readTextFileSync(memoPath));
        if (parsed && typeof parsed === "object") this.#memo = parsed;
      } catch {
        // A damaged memo only costs rehashing; it is rewritten on save.
      }
    }
  }

  /** SHA-256 (lowercase hex) and size of `path`, from the memo while size and mtime match. */
  async hash(path: string): Promise<HashedFile> {
    const abs = resolve(path);
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(abs);
    } catch (e) {
      throw new EngineError(`${abs}: cannot read: ${(e as Error).message}`);
    }
    const mtime = st.mtime?.getTime() ?? 0;
    const hit = this.#memo[abs];
    if (hit && hit.size === st.size && hit.mtime === mtime) {
      return { path: abs, sha256: hit.sha256, bytes: st.size };
    }
    const sha256 = await sha256OfFile(abs);
    this.#memo[abs] = { size: st.size, mtime, sha256 };
    this.#dirty = true;
    return { path: abs, sha256, bytes: st.size };
  }

  /** Writes the memo if anything was hashed since it was read. */
  save(): void {
    if (!this.memoPath || !this.#dirty) return;
    Deno.mkdirSync(dirname(this.memoPath), { recursive: true });
    writeFileAtomic(this.memoPath, JSON.stringify(this.#memo) + "\n");
    this.#dirty = false;
  }
}
