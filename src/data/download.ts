/** Downloads a released checkpoint the way `clip.load` does, made safe for files of hundreds of
 * MB on flaky links: bytes stream into `<target>.part` (never a half file under the final name)
 * while a SHA-256 is computed incrementally (node:crypto, since WebCrypto cannot hash a stream);
 * a dropped or stalled connection is resumed with an HTTP Range request a bounded number of
 * times; the hash is checked (the publisher's, or for files published without one the hash
 * recorded in `<target>.sha256` at first download); the file is renamed into place atomically;
 * a progress line shows bytes, rate and ETA. Every failure is one EngineError naming the URL, the
 * target and how to place the file by hand. */
import { createHash, type Hash } from "node:crypto";
import { dirname } from "node:path";
import { EngineError } from "../util/errors.ts";
import { ProgressLine, type ProgressOptions } from "./progress.ts";

export interface DownloadOptions {
  readonly url: string;
  /** Final path; bytes go to `<target>.part` until verified. */
  readonly target: string;
  /** Expected SHA-256 (hex). Without it the hash is recorded in `<target>.sha256` after the
   * first download and checked against that on later uses (trust on first use). */
  readonly sha256?: string;
  /** One-line messages: reuse, retries, the recorded hash, the result (default: stderr). */
  readonly log?: (line: string) => void;
  /** The progress line's options (`write` to capture it; default: stderr). */
  readonly progress?: ProgressOptions;
  /** Shorthand for `progress: { write }`. */
  readonly progressWrite?: (text: string) => void;
  /** Replaces `fetch` (tests; a proxy-aware client). */
  readonly fetchImpl?: typeof fetch;
  /** Attempts after the first, each resuming where the last stopped (default 3). */
  readonly retries?: number;
  /** Attempt k waits (k - 1) times this before it starts (default 500 ms). */
  readonly retryDelayMs?: number;
  /** A connection that delivers nothing for this long counts as dropped (default 60 s). */
  readonly stallTimeoutMs?: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** `<target>.sha256`: the hash recorded for a file published without one. */
export function sidecarPath(target: string): string {
  return `${target}.sha256`;
}

/** Feeds a file into `hash` in 1 MiB reads; returns its size. */
async function hashFileInto(hash: Hash, path: string): Promise<number> {
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  let size = 0;
  for (let n = await file.read(buf); n !== null; n = await file.read(buf)) {
    hash.update(buf.subarray(0, n));
    size += n;
  }
  return size;
}

/** SHA-256 (lowercase hex) of a file, read in chunks (checkpoints can exceed 1 GB). */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  await hashFileInto(hash, path);
  return hash.digest("hex");
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

function readSidecar(target: string): string | undefined {
  try {
    const text = Deno.readTextFileSync(sidecarPath(target)).trim().toLowerCase();
    return HEX64.test(text) ? text : undefined;
  } catch {
    return undefined;
  }
}

/** The state of a file already at `target`: absent; matching the expected hash (the given one,
 * else the sidecar's); present with no hash known (`got` is its hash); or not matching. */
export type ExistingFile =
  | { readonly state: "missing" }
  | { readonly state: "verified" | "unknown"; readonly got: string }
  | { readonly state: "mismatch"; readonly got: string; readonly want: string };

export async function checkExisting(target: string, sha256?: string): Promise<ExistingFile> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(target);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { state: "missing" };
    throw e;
  }
  // clip.py refuses a directory (or device) under the target's name rather than replacing it.
  if (!info.isFile) throw new EngineError(`${target} exists and is not a regular file`);
  const want = sha256?.toLowerCase() ?? readSidecar(target);
  const got = await sha256OfFile(target);
  if (want === undefined) return { state: "unknown", got };
  return got === want ? { state: "verified", got } : { state: "mismatch", got, want };
}

function stderrLine(line: string): void {
  console.error(line);
}

/** Downloads `url` to `target` (see the module comment) and returns `target`. A file already at
 * `target` with the expected hash is used without touching the network; one that does not match
 * is downloaded again, as clip.py does. */
export async function downloadFile(o: DownloadOptions): Promise<string> {
  const log = o.log ?? stderrLine;
  const given = o.sha256?.toLowerCase();
  if (given !== undefined && !HEX64.test(given)) {
    throw new EngineError(`${o.url}: '${o.sha256}' is not a SHA-256 (64 hex digits)`);
  }
  const existing = await checkExisting(o.target, given);
  if (existing.state === "verified") return o.target;
  if (existing.state === "unknown") {
    // A file placed by hand before any download: pin what is there.
    recordHash(o.target, existing.got, log);
    return o.target;
  }
  if (existing.state === "mismatch") {
    log(
      `${o.target} exists but its SHA-256 is ${existing.got}, expected ${existing.want}; ` +
        "downloading it again",
    );
    await Deno.remove(o.target);
  }
  // A sidecar left from an earlier download pins the file even when the target is gone.
  const want = given ?? readSidecar(o.target);
  await Deno.mkdir(dirname(o.target), { recursive: true });
  const part = `${o.target}.part`;
  const got = await transfer(o, part, log);
  if (want !== undefined && got !== want) {
    await Deno.remove(part).catch(() => {});
    const source = given !== undefined
      ? "the published hash"
      : `the hash recorded at the first download in ${sidecarPath(o.target)}; delete that file ` +
        "if the publisher replaced the checkpoint";
    throw new EngineError(
      `downloaded ${o.url} but its SHA-256 is ${got}, expected ${want} (${source}); the ` +
        `download was deleted (a corrupted transfer or a changed file on the server); nothing ` +
        `was written to ${o.target}`,
    );
  }
  // rename(2) is atomic within a directory: readers see no file or the whole verified file.
  await Deno.rename(part, o.target);
  if (want === undefined) recordHash(o.target, got, log);
  log(`downloaded ${o.url} to ${o.target}`);
  return o.target;
}

function recordHash(target: string, sha256: string, log: (line: string) => void): void {
  const path = sidecarPath(target);
  Deno.writeTextFileSync(`${path}.tmp`, `${sha256}\n`);
  Deno.renameSync(`${path}.tmp`, path);
  log(`${target}: no published SHA-256; recorded ${sha256} in ${path}`);
}

/** How one request ended: the part is complete (its hash), worth another try, or hopeless. */
type Attempt =
  | { readonly kind: "done"; readonly sha256: string }
  | { readonly kind: "retry" | "fatal"; readonly reason: string };

/** Fetches into `part` with bounded, resuming retries; returns the complete part's SHA-256. */
async function transfer(
  o: DownloadOptions,
  part: string,
  log: (l: string) => void,
): Promise<string> {
  const attempts = 1 + Math.max(0, o.retries ?? 3);
  const state: TransferState = { progress: undefined };
  let reason = "";
  for (let k = 1; k <= attempts; k++) {
    if (k > 1) {
      log(`download interrupted (${reason}); resuming (attempt ${k} of ${attempts})`);
      await new Promise((r) => setTimeout(r, (k - 1) * (o.retryDelayMs ?? 500)));
    }
    const result = await attempt(o, part, state, log);
    if (result.kind === "done") {
      state.progress?.finish();
      return result.sha256;
    }
    reason = result.reason;
    if (result.kind === "fatal") throw unreachable(o, reason);
  }
  throw unreachable(o, `${reason} (gave up after ${attempts} attempt${attempts > 1 ? "s" : ""})`);
}

/** The error for a download that could not happen, with the ways around it. */
function unreachable(o: DownloadOptions, reason: string): EngineError {
  const name = o.url.split("/").pop();
  const hash = o.sha256 ? ` (its SHA-256 must be ${o.sha256})` : "";
  let have = 0;
  try {
    have = Deno.statSync(`${o.target}.part`).size;
  } catch { /* no partial download */ }
  const again = have > 0
    ? `Run again to resume from the ${have} bytes in ${o.target}.part`
    : "Run again when the network is back";
  return new EngineError(
    `cannot download ${o.url}\n  to ${o.target}: ${reason}.\n  ${again}; or fetch the file ` +
      `elsewhere (e.g. curl -fLo ${name} '${o.url}'), place it at ${o.target}${hash} and run ` +
      "again; or give its path on the command line",
  );
}

interface TransferState {
  /** Kept across resumed attempts so the line continues rather than restarts. */
  progress: ProgressLine | undefined;
}

/** `bytes 100-199/200` -> {start 100, total 200}; `bytes *\/200` -> {total 200}. */
function contentRange(r: Response): { start?: number; total?: number } {
  const m = /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)/.exec(r.headers.get("content-range") ?? "");
  if (!m) return {};
  return {
    start: m[1] !== undefined ? Number(m[1]) : undefined,
    total: m[2] !== "*" ? Number(m[2]) : undefined,
  };
}

/** The most specific message in an error's cause chain: Deno's fetch says only "fetch failed"
 * and keeps "dns error" or "Connection refused" in its cause. */
function errorText(e: unknown): string {
  let text = String(e);
  for (let c = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    text = c.message.replace(/^error sending request for url \([^)]*\): /, "");
  }
  return text;
}

/** One request: resumes a partial `part` with Range, appends or restarts, hashes as it writes. */
async function attempt(
  o: DownloadOptions,
  part: string,
  state: TransferState,
  log: (l: string) => void,
): Promise<Attempt> {
  const have = (await sizeOf(part)) ?? 0;
  const stallMs = o.stallTimeoutMs ?? 60_000;
  const abort = new AbortController();
  let stalled = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      abort.abort();
    }, stallMs);
  };
  const why = (e: unknown) => stalled ? `no data for ${stallMs / 1000} s` : errorText(e);
  arm();
  try {
    let res: Response;
    try {
      // identity: a compressed transfer would make Content-Length and Range count other bytes.
      const headers: Record<string, string> = { "accept-encoding": "identity" };
      if (have > 0) headers.range = `bytes=${have}-`;
      res = await (o.fetchImpl ?? fetch)(o.url, { headers, signal: abort.signal });
    } catch (e) {
      return { kind: "retry", reason: why(e) };
    }
    const range = contentRange(res);
    if (res.status === 416) {
      await res.body?.cancel();
      return await rangeNotSatisfiable(o, part, have, range.total);
    }
    if (!res.ok) {
      await res.body?.cancel();
      const reason = `HTTP ${res.status} ${res.statusText}`.trim();
      // Server trouble and rate limits pass; a missing or forbidden file will not.
      const transient = res.status >= 500 || res.status === 408 || res.status === 429;
      return { kind: transient ? "retry" : "fatal", reason };
    }
    if (!res.body) return { kind: "retry", reason: "the response has no body" };
    let resumed = false;
    if (res.status === 206) {
      if (have === 0 || range.start !== have) {
        await res.body.cancel();
        await Deno.remove(part).catch(() => {});
        return {
          kind: "retry",
          reason: `the server answered a range from byte ${range.start} instead of ${have}`,
        };
      }
      resumed = true;
    } else if (have > 0) {
      log(`${o.url}: the server ignored the resume request; starting over`);
    }
    const length = Number(res.headers.get("content-length") ?? NaN);
    const total = resumed
      ? range.total ?? (Number.isFinite(length) ? have + length : undefined)
      : Number.isFinite(length)
      ? length
      : undefined;

    const hash = createHash("sha256");
    // A resumed transfer's hash starts from the bytes already on disk.
    let written = resumed ? await hashFileInto(hash, part) : 0;
    if (total !== undefined && (!state.progress || state.progress.done !== written)) {
      state.progress = newProgress(o, total);
      state.progress.advance(written);
    } else if (total === undefined) state.progress = undefined;

    const file = await Deno.open(part, {
      write: true,
      create: true,
      append: resumed,
      truncate: !resumed,
    });
    let writing = false;
    try {
      for await (const chunk of res.body) {
        arm();
        writing = true;
        for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
        writing = false;
        hash.update(chunk);
        written += chunk.length;
        state.progress?.advance(chunk.length);
      }
      // Flushed before the rename makes it the final file.
      writing = true;
      await file.sync();
    } catch (e) {
      // A full disk will not heal by asking again; a broken connection may.
      if (writing) return { kind: "fatal", reason: `cannot write ${part}: ${errorText(e)}` };
      return { kind: "retry", reason: why(e) };
    } finally {
      file.close();
    }
    if (total !== undefined && written < total) {
      return { kind: "retry", reason: `connection closed after ${written} of ${total} bytes` };
    }
    if (total !== undefined && written > total) {
      await Deno.remove(part).catch(() => {});
      state.progress = undefined;
      return { kind: "retry", reason: `the server sent ${written} bytes, more than ${total}` };
    }
    return { kind: "done", sha256: hash.digest("hex") };
  } finally {
    clearTimeout(timer);
  }
}

/** 416 on a resume: the part already holds every byte, or it is not a prefix of this file. */
async function rangeNotSatisfiable(
  o: DownloadOptions,
  part: string,
  have: number,
  total: number | undefined,
): Promise<Attempt> {
  if (have > 0 && total === have) {
    return { kind: "done", sha256: await sha256OfFile(part) };
  }
  if (have > 0 && total === undefined && o.sha256) {
    // No size to compare: the hash decides whether the part is the whole file.
    const got = await sha256OfFile(part);
    if (got === o.sha256.toLowerCase()) return { kind: "done", sha256: got };
  }
  await Deno.remove(part).catch(() => {});
  return {
    kind: "retry",
    reason: `HTTP 416: the partial ${part} (${have} bytes) does not fit the file` +
      (total !== undefined ? ` of ${total} bytes` : "") + "; starting over",
  };
}

function newProgress(o: DownloadOptions, totalBytes: number): ProgressLine {
  const options: ProgressOptions = { ...o.progress };
  options.write ??= o.progressWrite;
  options.formatCount ??= (n) => (n / 2 ** 20).toFixed(1);
  return new ProgressLine(`downloading ${o.url.split("/").pop()}`, totalBytes, "MiB", options);
}
