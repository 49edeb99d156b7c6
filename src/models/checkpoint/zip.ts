/** The zip container of `torch.save` (since PyTorch 1.6) and TorchScript archives, read through a
 * ByteSource: the end-of-central-directory record (and its ZIP64 forms) is found at the file's
 * end, the central directory lists every entry, and an entry's data is located through its local
 * header. Stored entries (PyTorch's tensors, uncompressed and 64-byte aligned) are returned as byte
 * ranges to read lazily; deflated ones are inflated with fflate when read. */
import { inflateSync } from "fflate";
import type { ByteSource } from "./file_source.ts";
import { CheckpointError } from "./state_dict.ts";

export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Offset of the entry's local header. */
  readonly headerOffset: number;
  readonly encrypted: boolean;
}

const EOCD = 0x06054b50;
const ZIP64_EOCD = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 &&
    head[3] === 0x04;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

export class ZipArchive {
  readonly entries: ReadonlyMap<string, ZipEntry>;

  constructor(readonly source: ByteSource) {
    this.entries = readCentralDirectory(source);
  }

  #fail(why: string): CheckpointError {
    return new CheckpointError(`${this.source.path}: ${why}`);
  }

  /** Byte range of a stored entry's data in the file. */
  dataRange(name: string): { offset: number; length: number } {
    const e = this.#entry(name);
    const header = this.source.read(e.headerOffset, 30, `the local header of '${name}'`);
    const v = view(header);
    if (v.getUint32(0, true) !== LOCAL) {
      throw this.#fail(`zip entry '${name}' has no local header where the directory says`);
    }
    const offset = e.headerOffset + 30 + v.getUint16(26, true) + v.getUint16(28, true);
    if (offset + e.compressedSize > this.source.size) {
      throw this.#fail(`zip entry '${name}' runs past the end of the file (truncated)`);
    }
    return { offset, length: e.compressedSize };
  }

  /** An entry's bytes (inflated when deflated). */
  read(name: string): Uint8Array {
    const e = this.#entry(name);
    const { offset, length } = this.dataRange(name);
    const raw = this.source.read(offset, length, `zip entry '${name}'`);
    if (e.method === 0) return raw;
    // The inflated size is allocated up front: a corrupt one is refused first (deflate expands
    // at most 1032-fold).
    if (e.size > e.compressedSize * 1032 + 1024) {
      throw this.#fail(
        `zip entry '${name}' claims ${e.size} bytes inflated from ${e.compressedSize} (more ` +
          "than deflate can produce); the archive is corrupt",
      );
    }
    try {
      const out = inflateSync(raw, { out: new Uint8Array(e.size) });
      if (out.length !== e.size) throw new Error(`${out.length} bytes, expected ${e.size}`);
      return out;
    } catch (err) {
      throw this.#fail(`zip entry '${name}' does not inflate (${(err as Error).message})`);
    }
  }

  /** A stored entry's byte range, or its inflated bytes when compressed. */
  locate(name: string): { offset: number; length: number } | Uint8Array {
    return this.#entry(name).method === 0 ? this.dataRange(name) : this.read(name);
  }

  #entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw this.#fail(`zip archive has no entry '${name}'`);
    if (e.encrypted) throw this.#fail(`zip entry '${name}' is encrypted`);
    if (e.method !== 0 && e.method !== 8) {
      throw this.#fail(
        `zip entry '${name}' uses compression method ${e.method} (only stored and deflated ` +
          "entries are read)",
      );
    }
    return e;
  }
}

function readCentralDirectory(source: ByteSource): Map<string, ZipEntry> {
  const fail = (why: string) =>
    new CheckpointError(`${source.path}: ${why}; the zip archive is truncated or corrupt`);
  const tailLength = Math.min(source.size, 65535 + 22);
  const tail = source.read(source.size - tailLength, tailLength, "the zip directory");
  const tv = view(tail);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw fail("no end-of-central-directory record");
  let count = tv.getUint16(eocd + 10, true);
  let dirSize = tv.getUint32(eocd + 12, true);
  let dirOffset = tv.getUint32(eocd + 16, true);
  if (count === U16_MAX || dirSize === U32_MAX || dirOffset === U32_MAX) {
    const loc = eocd - 20;
    if (loc < 0 || tv.getUint32(loc, true) !== ZIP64_LOCATOR) {
      throw fail("a ZIP64 archive without its ZIP64 locator");
    }
    const recordAt = u64(tv, loc + 8);
    const record = view(source.read(recordAt, 56, "the ZIP64 end record"));
    if (record.getUint32(0, true) !== ZIP64_EOCD) throw fail("a bad ZIP64 end record");
    count = u64(record, 32);
    dirSize = u64(record, 40);
    dirOffset = u64(record, 48);
  }
  if (dirOffset + dirSize > source.size) throw fail("the central directory lies past the end");
  const dir = source.read(dirOffset, dirSize, "the central directory");
  const dv = view(dir);
  const entries = new Map<string, ZipEntry>();
  const utf8 = new TextDecoder();
  let at = 0;
  for (let k = 0; k < count; k++) {
    if (at + 46 > dir.length || dv.getUint32(at, true) !== CENTRAL) {
      throw fail(`central directory entry ${k} is malformed`);
    }
    const flags = dv.getUint16(at + 8, true);
    const method = dv.getUint16(at + 10, true);
    let compressedSize = dv.getUint32(at + 20, true);
    let size = dv.getUint32(at + 24, true);
    const nameLength = dv.getUint16(at + 28, true);
    const extraLength = dv.getUint16(at + 30, true);
    const commentLength = dv.getUint16(at + 32, true);
    let headerOffset = dv.getUint32(at + 42, true);
    if (at + 46 + nameLength + extraLength > dir.length) {
      throw fail(`central directory entry ${k} is malformed`);
    }
    const name = utf8.decode(dir.subarray(at + 46, at + 46 + nameLength));
    // ZIP64 extended information: the fields that overflowed, in this order.
    let x = at + 46 + nameLength;
    const extraEnd = x + extraLength;
    while (x + 4 <= extraEnd) {
      const id = dv.getUint16(x, true);
      const len = dv.getUint16(x + 2, true);
      if (id === 0x0001) {
        // Only the fields the record holds (a short one leaves the rest overflowed: refused later).
        let f = x + 4;
        const end = Math.min(f + len, extraEnd);
        if (size === U32_MAX && f + 8 <= end) (size = u64(dv, f), f += 8);
        if (compressedSize === U32_MAX && f + 8 <= end) (compressedSize = u64(dv, f), f += 8);
        if (headerOffset === U32_MAX && f + 8 <= end) headerOffset = u64(dv, f);
      }
      x += 4 + len;
    }
    entries.set(name, {
      name,
      method,
      compressedSize,
      size,
      headerOffset,
      encrypted: (flags & 1) !== 0,
    });
    at = extraEnd + commentLength;
  }
  return entries;
}
