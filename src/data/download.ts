/** Downloads a released checkpoint the way a researcher would want it done: into `<target>.part`
 * (never a half file under the final name), resumed with an HTTP Range request after a dropped
 * connection, SHA-256 checked where the publisher gives one, renamed into place atomically, with
 * a progress line. */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { EngineError } from "../gpu/mod.ts";
import { ProgressLine } from "./progress.ts";

export interface DownloadOptions {
  readonly url: string;
  readonly target: string;
  /** Expected SHA-256 (hex); without it the computed one is saved beside the file. */
  readonly sha256?: string;
  /** One-line messages (start, reuse, retries, result). */
  readonly log?: (line: string) => void;
  /** Where the progress line goes (default: stderr). */
  readonly progressWrite?: (text: string) => void;
  /** Resumed attempts after the first (default 3). */
  readonly retries?: number;
  /** Pause before attempt k is k times this (default 500 ms). */
  readonly retryDelayMs?: number;
}

/** SHA-256 (hex) of a file, read in chunks. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

function sizeOrZero(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Downloads `url` to `target` (see the module comment); returns `target`. A `target` already in
 * place with the expected hash is used as it is. */
export async function downloadFile(o: DownloadOptions): Promise<string> {
  const log = o.log ?? (() => {});
  const part = `${o.target}.part`;
  const sidecar = `${o.target}.sha256`;
  const fail = (why: string) =>
    new EngineError(
      `cannot download ${o.url} to ${o.target}: ${why}. Download it by other means and place it ` +
        `at ${o.target}, or give the file's path on the command line`,
    );
  if (existsSync(o.target)) {
    const expected = o.sha256 ?? readSidecar(sidecar);
    if (!expected) return o.target;
    if ((await sha256OfFile(o.target)) === expected) return o.target;
    log(`${o.target} exists but its SHA-256 does not match; downloading it again`);
    rmSync(o.target);
  }
  mkdirSync(dirname(o.target), { recursive: true });
  const retries = o.retries ?? 3;
  let lastError = "";
  let progress: ProgressLine | undefined;
  let complete = false;
  for (let attempt = 0; attempt <= retries && !complete; attempt++) {
    if (attempt > 0) {
      log(
        `download interrupted (${lastError}); resuming (attempt ${attempt + 1} of ${retries + 1})`,
      );
      await new Promise((r) => setTimeout(r, attempt * (o.retryDelayMs ?? 500)));
    }
    const have = sizeOrZero(part);
    let response: Response;
    try {
      response = await fetch(o.url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
    } catch (e) {
      lastError = (e as Error).message;
      continue;
    }
    if (response.status === 416) {
      // The part already holds every byte (or is not this file): the hash check decides.
      await response.body?.cancel();
      complete = true;
      break;
    }
    if (response.status >= 400) {
      await response.body?.cancel();
      const why = `HTTP ${response.status} ${response.statusText}`;
      if (response.status < 500) throw fail(why);
      lastError = why;
      continue;
    }
    const resumed = response.status === 206 && have > 0 && rangeStart(response) === have;
    const length = Number(response.headers.get("content-length") ?? NaN);
    const total = (resumed ? have : 0) + (Number.isFinite(length) ? length : 0);
    if (!resumed && have > 0) log("the server ignored the resume request; starting over");
    if (!resumed || !progress) {
      progress = total > 0 ? newProgress(o, total) : undefined;
      if (resumed) progress?.advance(have);
    }
    const file = await Deno.open(part, {
      write: true,
      create: true,
      append: resumed,
      truncate: !resumed,
    });
    let received = resumed ? have : 0;
    try {
      if (!response.body) throw new Error("no response body");
      for await (const chunk of response.body) {
        let off = 0;
        while (off < chunk.length) off += await file.write(chunk.subarray(off));
        received += chunk.length;
        progress?.advance(chunk.length);
      }
      if (Number.isFinite(length) && received !== total) {
        throw new Error(`connection closed after ${received} of ${total} bytes`);
      }
      complete = true;
    } catch (e) {
      lastError = (e as Error).message;
    } finally {
      file.close();
    }
  }
  if (!complete) throw fail(lastError || "no answer");
  progress?.finish();
  const got = await sha256OfFile(part);
  if (o.sha256 && got !== o.sha256) {
    rmSync(part, { force: true });
    throw new EngineError(
      `downloaded ${o.url} but its SHA-256 is ${got}, expected ${o.sha256}; the file was ` +
        "removed (a corrupted transfer or a changed file on the server)",
    );
  }
  renameSync(part, o.target);
  if (!o.sha256) {
    Deno.writeTextFileSync(sidecar, `${got}\n`);
    log(`${o.target}: no published SHA-256; recorded ${got} in ${sidecar}`);
  }
  log(`downloaded ${o.url} to ${o.target}`);
  return o.target;
}

function newProgress(o: DownloadOptions, totalBytes: number): ProgressLine {
  return new ProgressLine(`downloading ${o.url.split("/").pop()}`, totalBytes, "MiB", {
    write: o.progressWrite,
    formatCount: (n) => (n / 2 ** 20).toFixed(1),
  });
}

function readSidecar(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The first byte of a 206 answer's Content-Range (`bytes 100-199/200`). */
function rangeStart(r: Response): number | undefined {
  const m = /bytes (\d+)-/.exec(r.headers.get("content-range") ?? "");
  return m ? Number(m[1]) : undefined;
}
