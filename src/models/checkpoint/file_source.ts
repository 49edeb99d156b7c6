/** Random access to a file's bytes without reading it whole: checkpoint readers seek to the
 * records they need (a zip's central directory, one tensor's storage), so a large file is never
 * copied into memory beside the weights made from it. */
import { CheckpointError } from "./state_dict.ts";

export interface ByteSource {
  /** The file, for messages. */
  readonly path: string;
  readonly size: number;
  /** `length` bytes from `offset` (a fresh array). Throws CheckpointError when the file ends
   * first, naming `what` (the record being read). */
  read(offset: number, length: number, what: string): Uint8Array;
  /** Fills `target` with the bytes from `offset` (so a reader can reuse one buffer, or read
   * straight into a tensor's values). Throws as `read` does. */
  readInto(offset: number, target: Uint8Array, what: string): void;
  close(): void;
}

/** Opens `path` for random reads. */
export function openByteSource(path: string): ByteSource {
  let file: Deno.FsFile;
  let size: number;
  try {
    file = Deno.openSync(path, { read: true });
    size = file.statSync().size;
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "file not found" : (e as Error).message;
    throw new CheckpointError(`cannot read ${path}: ${why}`);
  }
  let closed = false;
  // Checked before any buffer is made: a corrupt length must not become a huge allocation.
  const check = (offset: number, length: number, what: string): void => {
    if (closed) throw new CheckpointError(`${path}: read after close (${what})`);
    if (offset < 0 || length < 0 || offset + length > size) {
      throw new CheckpointError(
        `${path}: ${what} lies outside the file (bytes ${offset}..${offset + length} of ` +
          `${size}); the file is truncated or corrupt`,
      );
    }
  };
  const readInto = (offset: number, out: Uint8Array, what: string): void => {
    check(offset, out.length, what);
    file.seekSync(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < out.length) {
      const n = file.readSync(out.subarray(done));
      if (n === null || n === 0) {
        throw new CheckpointError(`${path}: file ended inside ${what}`);
      }
      done += n;
    }
  };
  return {
    path,
    size,
    read(offset: number, length: number, what: string): Uint8Array {
      check(offset, length, what);
      const out = new Uint8Array(length);
      readInto(offset, out, what);
      return out;
    },
    readInto,
    close() {
      if (!closed) file.close();
      closed = true;
    },
  };
}

/** A ByteSource over bytes already in memory (tests, nested archives). */
export function memoryByteSource(path: string, bytes: Uint8Array): ByteSource {
  return {
    path,
    size: bytes.length,
    read(offset: number, length: number, what: string): Uint8Array {
      if (offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new CheckpointError(
          `${path}: ${what} lies outside the data (bytes ${offset}..${offset + length} of ` +
            `${bytes.length}); truncated or corrupt`,
        );
      }
      return bytes.slice(offset, offset + length);
    },
    readInto(offset: number, target: Uint8Array, what: string): void {
      target.set(this.read(offset, target.length, what));
    },
    close() {},
  };
}
