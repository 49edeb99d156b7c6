/** Seeded mutators for fuzzing the file loaders: generic byte-level ones (bit flips, interesting
 * values, truncation, chunk duplication/deletion/insertion) and cheap structure-aware ones that
 * reach past the first sanity checks (protobuf varints, zip header fields, safetensors' JSON
 * header, npy headers, pickle integers, PNG/JPEG segment lengths). Every mutation is a pure
 * function of the input bytes and a seeded PRNG (src/util/random.ts), so a case reproduces from
 * its seed alone. */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import { seededRandom } from "../../src/util/random.ts";

export type Random = () => number;

/** One mutation: a short description (for failure messages) and the mutated bytes. */
export interface Mutated {
  readonly bytes: Uint8Array;
  readonly what: string;
}

export type Mutator = (bytes: Uint8Array, r: Random) => Mutated;

// ---------------------------------------------------------------------------------------------
// seeds and choices

/** The seed of case `index` of `stream` under `seed` (independent of other cases, so one case
 * reproduces alone). */
export function caseSeed(seed: number, stream: string, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const c of `${stream}#${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return seededRandom(h)() * 2 ** 32 >>> 0;
}

export function randInt(r: Random, n: number): number {
  return Math.floor(r() * n);
}

export function pick<T>(r: Random, items: readonly T[]): T {
  return items[randInt(r, items.length)];
}

/** A position in [0, n): uniform half of the time, otherwise near the start or the end (where
 * headers and directories live). */
export function position(r: Random, n: number): number {
  if (n <= 0) return 0;
  const u = r();
  if (u < 0.5) return randInt(r, n);
  const near = Math.min(n, 256);
  return u < 0.75 ? randInt(r, near) : n - 1 - randInt(r, near);
}

/** Integers that trip length and count checks (as unsigned values of the field width). */
export const INTERESTING: readonly number[] = [
  0,
  1,
  2,
  7,
  8,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0xffffffff,
];

function interestingFor(r: Random, bytes: number, original?: number): number {
  const max = 2 ** (8 * bytes) - 1;
  const near = original === undefined
    ? []
    : [original + 1, original - 1, original * 2, original + 64, Math.floor(original / 2)];
  const v = pick(r, [...INTERESTING, ...near, max, randInt(r, Math.min(max, 2 ** 32 - 1) + 1)]);
  return Math.max(0, Math.min(max, v));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function writeUint(
  out: Uint8Array,
  at: number,
  width: number,
  value: number,
  little = true,
): void {
  for (let i = 0; i < width && at + i < out.length; i++) {
    const byte = Math.floor(value / 2 ** (8 * i)) & 0xff;
    out[little ? at + i : at + width - 1 - i] = byte;
  }
}

function readUint(b: Uint8Array, at: number, width: number, little = true): number {
  let v = 0;
  for (let i = 0; i < width; i++) {
    v += (b[little ? at + i : at + width - 1 - i] ?? 0) * 2 ** (8 * i);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// generic mutators

export const bitFlips: Mutator = (bytes, r) => {
  const out = bytes.slice();
  const n = 1 + randInt(r, 8);
  const at: number[] = [];
  for (let i = 0; i < n && out.length > 0; i++) {
    const p = position(r, out.length);
    out[p] ^= 1 << randInt(r, 8);
    at.push(p);
  }
  return { bytes: out, what: `flip bits at ${at.join(",")}` };
};

export const interestingBytes: Mutator = (bytes, r) => {
  const out = bytes.slice();
  if (out.length === 0) return { bytes: out, what: "nothing to overwrite" };
  const p = position(r, out.length);
  const width = pick(r, [1, 1, 2, 4, 8]);
  const value = pick(r, [0, 0xff, 0x7f, 0x80, 1, out.length, out.length - p, ...INTERESTING]);
  if (width === 8 && value === 0xffffffff) {
    for (let i = 0; i < 8 && p + i < out.length; i++) out[p + i] = 0xff;
  } else writeUint(out, p, width, value);
  return { bytes: out, what: `write ${value} (${width} bytes) at ${p}` };
};

export const truncate: Mutator = (bytes, r) => {
  const at = position(r, bytes.length);
  return { bytes: bytes.slice(0, at), what: `truncate to ${at} of ${bytes.length} bytes` };
};

export const duplicateChunk: Mutator = (bytes, r) => {
  const from = position(r, bytes.length);
  const len = 1 + randInt(r, Math.min(256, Math.max(1, bytes.length - from)));
  const to = position(r, bytes.length + 1);
  const chunk = bytes.slice(from, from + len);
  return {
    bytes: concat(bytes.subarray(0, to), chunk, bytes.subarray(to)),
    what: `copy ${len} bytes from ${from} to ${to}`,
  };
};

export const deleteChunk: Mutator = (bytes, r) => {
  const from = position(r, bytes.length);
  const len = 1 + randInt(r, Math.min(256, Math.max(1, bytes.length - from)));
  return {
    bytes: concat(bytes.subarray(0, from), bytes.subarray(from + len)),
    what: `delete ${len} bytes at ${from}`,
  };
};

export const insertRandom: Mutator = (bytes, r) => {
  const at = position(r, bytes.length + 1);
  const len = 1 + randInt(r, 32);
  const chunk = new Uint8Array(len).map(() => randInt(r, 256));
  return {
    bytes: concat(bytes.subarray(0, at), chunk, bytes.subarray(at)),
    what: `insert ${len} random bytes at ${at}`,
  };
};

export const GENERIC: readonly Mutator[] = [
  bitFlips,
  interestingBytes,
  truncate,
  duplicateChunk,
  deleteChunk,
  insertRandom,
];

/** Applies `count` mutators drawn from `pool` in sequence. */
export function mutate(
  bytes: Uint8Array,
  r: Random,
  pool: readonly Mutator[],
  count = 1 + randInt(r, 2),
): Mutated {
  let b = bytes;
  const what: string[] = [];
  for (let i = 0; i < count; i++) {
    const m = pick(r, pool)(b, r);
    b = m.bytes;
    what.push(m.what);
  }
  return { bytes: b, what: what.join("; ") };
}

/** Runs `inner` on the bytes [start, end) only, keeping the rest (and the total size when
 * `inner` does). */
export function within(
  bytes: Uint8Array,
  start: number,
  end: number,
  r: Random,
  inner: Mutator,
  label: string,
): Mutated {
  const m = inner(bytes.slice(start, end), r);
  return {
    bytes: concat(bytes.subarray(0, start), m.bytes, bytes.subarray(end)),
    what: `${label} [${start},${end}): ${m.what}`,
  };
}

// ---------------------------------------------------------------------------------------------
// protobuf

/** A varint in a protobuf message: a field value, or a length prefix. */
export interface PbVarint {
  readonly at: number;
  readonly length: number;
  readonly kind: "value" | "length";
}

function readVarint(b: Uint8Array, at: number, end: number): [number, number] | undefined {
  let v = 0;
  for (let i = 0; i < 10 && at + i < end; i++) {
    const byte = b[at + i];
    v += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return [v, i + 1];
  }
  return undefined;
}

/** Every varint (field values and length prefixes) in a message, descending into
 * length-delimited fields that parse as messages themselves. Bounded by `limit`. */
export function protobufVarints(bytes: Uint8Array, limit = 50_000): PbVarint[] {
  const out: PbVarint[] = [];
  const walk = (start: number, end: number, depth: number, record: boolean): boolean => {
    let at = start;
    while (at < end) {
      const tag = readVarint(bytes, at, end);
      if (!tag || tag[0] < 8) return false;
      at += tag[1];
      const wire = tag[0] & 7;
      if (wire === 0) {
        const v = readVarint(bytes, at, end);
        if (!v) return false;
        if (record && out.length < limit) out.push({ at, length: v[1], kind: "value" });
        at += v[1];
      } else if (wire === 1) at += 8;
      else if (wire === 5) at += 4;
      else if (wire === 2) {
        const len = readVarint(bytes, at, end);
        if (!len || at + len[1] + len[0] > end) return false;
        if (record && out.length < limit) out.push({ at, length: len[1], kind: "length" });
        const body = at + len[1];
        if (depth < 8 && len[0] > 1 && walk(body, body + len[0], depth + 1, false)) {
          walk(body, body + len[0], depth + 1, record);
        }
        at = body + len[0];
      } else return false;
      if (at > end) return false;
    }
    return at === end;
  };
  walk(0, bytes.length, 0, true);
  return out;
}

function encodeVarint(v: bigint): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    let byte = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) byte |= 0x80;
    out.push(byte);
  } while (x > 0n);
  return out;
}

const VARINT_VALUES: readonly bigint[] = [
  0n,
  1n,
  2n,
  0x7fn,
  0x80n,
  0xffffn,
  0x7fffffffn,
  0xffffffffn,
  1n << 32n,
  1n << 40n,
  (1n << 53n) + 1n,
  (1n << 63n) - 1n,
  -1n,
];

/** Rewrites one varint of a protobuf message (its structure walked once, then reused): a new
 * value with a shorter or longer encoding shifts the rest, as a real corruption would. */
export function protobufVarintMutator(varints: readonly PbVarint[]): Mutator {
  return (bytes, r) => {
    if (varints.length === 0) return bitFlips(bytes, r);
    // Length prefixes are rarer than values but do more damage: favour them half of the time.
    const lengths = varints.filter((v) => v.kind === "length");
    const v = r() < 0.5 && lengths.length > 0 ? pick(r, lengths) : pick(r, varints);
    if (v.at + v.length > bytes.length) return bitFlips(bytes, r);
    const old = readVarint(bytes, v.at, bytes.length)?.[0] ?? 0;
    const nearby = [BigInt(old) + 1n, BigInt(Math.max(0, old - 1)), BigInt(old) * 2n];
    const value = pick(r, [...VARINT_VALUES, ...nearby]);
    const encoded = Uint8Array.from(encodeVarint(value));
    return {
      bytes: concat(bytes.subarray(0, v.at), encoded, bytes.subarray(v.at + v.length)),
      what: `protobuf ${v.kind} varint at ${v.at}: ${old} -> ${BigInt.asUintN(64, value)}`,
    };
  };
}

// ---------------------------------------------------------------------------------------------
// ONNX models (decoded, one field changed, encoded again)

const { onnx } = onnxProto;

const DIM_VALUES = [0, 1, 3, -1, 2 ** 31, 2 ** 40, 2 ** 53, 1e6];

/** Decodes a ModelProto, changes one field an ONNX loader must validate (tensor dims, element
 * types, raw data length, attribute types, node wiring, declared shapes, opsets), encodes it. A
 * file that does not decode gets a byte mutation instead. */
export const onnxModelMutator: Mutator = (bytes, r) => {
  let m: OnnxTypes.ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch {
    return bitFlips(bytes, r);
  }
  const g = m.graph;
  if (!g) return bitFlips(bytes, r);
  const inits = g.initializer ?? [];
  const nodes = g.node ?? [];
  const attrs = nodes.flatMap((n) => n.attribute ?? []);
  const tensors: OnnxTypes.ITensorProto[] = [...inits, ...attrs.flatMap((a) => a.t ? [a.t] : [])];
  const values = [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])];
  const choices: (() => string)[] = [];
  if (tensors.length > 0) {
    choices.push(() => {
      const t = pick(r, tensors);
      const dims = [...(t.dims ?? [])].map(Number);
      const k = randInt(r, dims.length + 1);
      const v = pick(r, DIM_VALUES);
      if (k === dims.length) dims.push(v);
      else dims[k] = v;
      t.dims = dims;
      return `tensor '${t.name}' dims -> [${dims}]`;
    });
    choices.push(() => {
      const t = pick(r, tensors);
      t.dataType = randInt(r, 28);
      return `tensor '${t.name}' data_type -> ${t.dataType}`;
    });
    choices.push(() => {
      const t = pick(r, tensors);
      const raw = t.rawData ?? new Uint8Array();
      t.rawData = raw.slice(0, randInt(r, raw.length + 2));
      if (r() < 0.3) (t.floatData = [1, 2, 3]), (t.int64Data = [4]);
      return `tensor '${t.name}' raw_data cut to ${t.rawData.length} bytes`;
    });
    choices.push(() => {
      const t = pick(r, tensors);
      t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      t.externalData = r() < 0.5 ? [] : [
        { key: "location", value: pick(r, ["w.bin", "../w.bin", "/etc/hostname", ""]) },
        { key: pick(r, ["offset", "length"]), value: pick(r, ["-1", "1e300", "x", "7"]) },
      ];
      return `tensor '${t.name}' made external (${JSON.stringify(t.externalData)})`;
    });
  }
  if (attrs.length > 0) {
    choices.push(() => {
      const a = pick(r, attrs);
      a.type = randInt(r, 15);
      if (r() < 0.5) (a.t = null), (a.g = null), (a.ints = []), (a.floats = []);
      return `attribute '${a.name}' type -> ${a.type}`;
    });
  }
  if (nodes.length > 0) {
    choices.push(() => {
      const n = pick(r, nodes);
      const names = [...nodes.flatMap((x) => x.output ?? []), "", "missing"];
      const inputs = [...(n.input ?? [])];
      const k = randInt(r, inputs.length + 1);
      const v = pick(r, names);
      if (k === inputs.length) inputs.push(v);
      else inputs[k] = v;
      n.input = inputs;
      return `node '${n.name}' input ${k} -> '${v}'`;
    });
    choices.push(() => {
      const n = pick(r, nodes);
      n.opType = pick(r, ["", "Foo", "Conv", "Add", "MatMul", "Reshape", "Gemm", "Constant"]);
      n.domain = pick(r, ["", "", "com.microsoft", "ai.onnx.ml"]);
      return `node '${n.name}' op -> '${n.domain}:${n.opType}'`;
    });
    choices.push(() => {
      const n = pick(r, nodes);
      n.output = r() < 0.5 ? [] : [...(n.output ?? []), ...(n.output ?? [])];
      return `node '${n.name}' outputs -> [${n.output}]`;
    });
  }
  if (values.length > 0) {
    choices.push(() => {
      const v = pick(r, values);
      const tt = v.type?.tensorType;
      if (!tt) return "nothing (no tensor type)";
      if (r() < 0.4) tt.elemType = randInt(r, 28);
      else {
        const dims = tt.shape?.dim ?? [];
        const d = pick(r, DIM_VALUES);
        if (dims.length > 0 && r() < 0.7) dims[randInt(r, dims.length)] = { dimValue: d };
        else tt.shape = r() < 0.5 ? null : { dim: [...dims, { dimValue: d }] };
      }
      return `value '${v.name}' type -> ${JSON.stringify(tt).slice(0, 120)}`;
    });
  }
  choices.push(() => {
    const v = pick(r, [0, 1, 7, 99, -1]);
    m.opsetImport = r() < 0.3 ? [] : [{ domain: "", version: v }];
    return `opset -> ${v}`;
  });
  const what = pick(r, choices)();
  return { bytes: onnx.ModelProto.encode(m).finish(), what: `onnx ${what}` };
};

// ---------------------------------------------------------------------------------------------
// zip

interface ZipField {
  readonly offset: number;
  readonly width: number;
  readonly name: string;
}

const LOCAL_FIELDS: readonly ZipField[] = [
  { offset: 6, width: 2, name: "flags" },
  { offset: 8, width: 2, name: "method" },
  { offset: 18, width: 4, name: "compressed size" },
  { offset: 22, width: 4, name: "size" },
  { offset: 26, width: 2, name: "name length" },
  { offset: 28, width: 2, name: "extra length" },
];
const CENTRAL_FIELDS: readonly ZipField[] = [
  { offset: 8, width: 2, name: "flags" },
  { offset: 10, width: 2, name: "method" },
  { offset: 20, width: 4, name: "compressed size" },
  { offset: 24, width: 4, name: "size" },
  { offset: 28, width: 2, name: "name length" },
  { offset: 30, width: 2, name: "extra length" },
  { offset: 32, width: 2, name: "comment length" },
  { offset: 42, width: 4, name: "local header offset" },
];
const EOCD_FIELDS: readonly ZipField[] = [
  { offset: 8, width: 2, name: "entries on disk" },
  { offset: 10, width: 2, name: "entries" },
  { offset: 12, width: 4, name: "directory size" },
  { offset: 16, width: 4, name: "directory offset" },
  { offset: 20, width: 2, name: "comment length" },
];

/** Offsets of a 4-byte little-endian signature in `bytes`. */
function findSignatures(bytes: Uint8Array, sig: number): number[] {
  const out: number[] = [];
  const b0 = sig & 0xff, b1 = (sig >>> 8) & 0xff, b2 = (sig >>> 16) & 0xff, b3 = sig >>> 24;
  for (let i = 0; i + 4 <= bytes.length; i++) {
    if (bytes[i] === b0 && bytes[i + 1] === b1 && bytes[i + 2] === b2 && bytes[i + 3] === b3) {
      out.push(i);
    }
  }
  return out;
}

export interface ZipLayout {
  readonly local: readonly number[];
  readonly central: readonly number[];
  readonly eocd: readonly number[];
  /** Stored data of each entry, by name (from the local headers). */
  readonly entries: ReadonlyMap<string, { start: number; end: number }>;
}

/** Where a zip's records are (signature scan; good enough for fuzzing). */
export function zipLayout(bytes: Uint8Array): ZipLayout {
  const local = findSignatures(bytes, 0x04034b50);
  const entries = new Map<string, { start: number; end: number }>();
  const utf8 = new TextDecoder();
  for (const at of local) {
    if (at + 30 > bytes.length) continue;
    const size = readUint(bytes, at + 18, 4);
    const nameLength = readUint(bytes, at + 26, 2);
    const extra = readUint(bytes, at + 28, 2);
    const name = utf8.decode(bytes.subarray(at + 30, at + 30 + nameLength));
    const start = at + 30 + nameLength + extra;
    if (start + size <= bytes.length) entries.set(name, { start, end: start + size });
  }
  return {
    local,
    central: findSignatures(bytes, 0x02014b50),
    eocd: findSignatures(bytes, 0x06054b50),
    entries,
  };
}

/** Overwrites one header field of a local, central or end record with an interesting value. */
export function zipFieldMutator(layout: ZipLayout): Mutator {
  const records: [string, number, readonly ZipField[]][] = [
    ...layout.local.map((a): [string, number, readonly ZipField[]] => ["local", a, LOCAL_FIELDS]),
    ...layout.central.map((a): [string, number, readonly ZipField[]] => [
      "central",
      a,
      CENTRAL_FIELDS,
    ]),
    ...layout.eocd.map((a): [string, number, readonly ZipField[]] => ["end", a, EOCD_FIELDS]),
  ];
  return (bytes, r) => {
    if (records.length === 0) return interestingBytes(bytes, r);
    // The end record and the directory are few but read first: favour them.
    const kind = pick(r, ["local", "central", "end", "central"]);
    const pool = records.filter((x) => x[0] === kind);
    const [name, at, fields] = pick(r, pool.length > 0 ? pool : records);
    const f = pick(r, fields);
    const out = bytes.slice();
    const old = readUint(out, at + f.offset, f.width);
    const value = interestingFor(r, f.width, old);
    writeUint(out, at + f.offset, f.width, value);
    return { bytes: out, what: `zip ${name} record at ${at}: ${f.name} ${old} -> ${value}` };
  };
}

/** Mutates the stored bytes of one zip entry (matching `filter`) in place with `inner`. */
export function zipEntryMutator(
  layout: ZipLayout,
  filter: (name: string) => boolean,
  inner: Mutator,
): Mutator {
  const names = [...layout.entries.keys()].filter(filter);
  return (bytes, r) => {
    if (names.length === 0) return inner(bytes, r);
    const name = pick(r, names);
    const { start, end } = layout.entries.get(name)!;
    return within(bytes, start, end, r, inner, `zip entry '${name}'`);
  };
}

// ---------------------------------------------------------------------------------------------
// pickle

/** Rewrites the argument of one small-integer pickle opcode (BININT1 `K`, BININT2 `M`, BININT
 * `J`, LONG1): sizes, strides, offsets and storage counts are such integers. Opcodes are found by
 * scanning, so a hit may be data rather than an opcode; that is corruption too. */
export const pickleIntMutator: Mutator = (bytes, r) => {
  const sites: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const op = bytes[i];
    if (op === 0x4b || op === 0x4d || op === 0x4a || op === 0x8a) sites.push(i);
  }
  if (sites.length === 0) return bitFlips(bytes, r);
  const at = pick(r, sites);
  const out = bytes.slice();
  const op = out[at];
  if (op === 0x8a) {
    out[at + 1] = pick(r, [0, 1, 8, 9, 0x7f, 0xff]);
    return { bytes: out, what: `pickle LONG1 at ${at}: length -> ${out[at + 1]}` };
  }
  const width = op === 0x4b ? 1 : op === 0x4d ? 2 : 4;
  const value = interestingFor(r, width, readUint(out, at + 1, width));
  writeUint(out, at + 1, width, value);
  return { bytes: out, what: `pickle int opcode at ${at}: -> ${value}` };
};

// ---------------------------------------------------------------------------------------------
// JSON (safetensors headers, manifests)

const JSON_NUMBERS = [
  "0",
  "-1",
  "1",
  "1.5",
  "1e300",
  "4294967296",
  "1099511627776",
  "9007199254740993",
  "-0",
  "NaN",
  "",
];
const JSON_VALUES = ['"F16"', '"F32"', '"I64"', '"X9"', "null", "[]", "{}", "true", '""', "[0]"];

/** Replaces one number or one string/literal token of a JSON text. */
export function mutateJsonText(text: string, r: Random): { text: string; what: string } {
  const numbers = [...text.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?/g)];
  const strings = [...text.matchAll(/"(?:[^"\\]|\\.)*"|true|false|null/g)];
  const useNumber = numbers.length > 0 && (strings.length === 0 || r() < 0.6);
  const m = useNumber ? pick(r, numbers) : strings.length > 0 ? pick(r, strings) : undefined;
  if (!m) return { text: text + pick(r, ["}", ",", "["]), what: "append a JSON token" };
  const replacement = useNumber
    ? pick(r, [...JSON_NUMBERS, String(Number(m[0]) + 1), String(Number(m[0]) * 2)])
    : pick(r, JSON_VALUES);
  const at = m.index!;
  return {
    text: text.slice(0, at) + replacement + text.slice(at + m[0].length),
    what: `JSON token '${m[0].slice(0, 40)}' at ${at} -> '${replacement}'`,
  };
}

export const jsonMutator: Mutator = (bytes, r) => {
  const m = mutateJsonText(new TextDecoder().decode(bytes), r);
  return { bytes: new TextEncoder().encode(m.text), what: m.what };
};

// ---------------------------------------------------------------------------------------------
// safetensors

/** Mutates the JSON header of a safetensors file, keeping its length field consistent (data
 * offsets are relative to the header's end, so the tensors stay where the header says). */
export const safetensorsHeaderMutator: Mutator = (bytes, r) => {
  if (bytes.length < 8) return bitFlips(bytes, r);
  const n = readUint(bytes, 0, 8);
  if (n < 2 || 8 + n > bytes.length) return bitFlips(bytes, r);
  const m = mutateJsonText(new TextDecoder().decode(bytes.subarray(8, 8 + n)), r);
  const header = new TextEncoder().encode(m.text);
  const length = new Uint8Array(8);
  writeUint(length, 0, 8, header.length);
  return {
    bytes: concat(length, header, bytes.subarray(8 + n)),
    what: `safetensors header: ${m.what}`,
  };
};

export const safetensorsLengthMutator: Mutator = (bytes, r) => {
  const out = bytes.slice();
  const old = readUint(out, 0, 8);
  const value = pick(r, [0, 1, 2, old - 1, old + 1, out.length, out.length - 7, 2 ** 32, 2 ** 53]);
  writeUint(out, 0, 8, Math.max(0, value));
  if (r() < 0.2) out.fill(0xff, 0, 8);
  return { bytes: out, what: `safetensors header length ${old} -> ${readUint(out, 0, 8)}` };
};

// ---------------------------------------------------------------------------------------------
// npy

const NPY_SHAPES = [
  "()",
  "(0,)",
  "(1,)",
  "(1099511627776,)",
  "(-1,)",
  "(2, 3)",
  "(9007199254740993,)",
  "(4294967296, 4294967296)",
  "(0, 1099511627776)",
  "(1.5,)",
  "(,)",
  "(3",
];
const NPY_DESCRS = ["<f4", ">f8", "|b1", "<i8", ">i2", "<c8", "<U3", "|O", "<f2", "|u1", "<V8"];

/** Rewrites the shape, dtype, order or header length of a `.npy` file's header. */
export const npyHeaderMutator: Mutator = (bytes, r) => {
  if (bytes.length < 10) return bitFlips(bytes, r);
  const major = bytes[6];
  const prefix = major === 1 ? 10 : 12;
  const headerLen = major === 1 ? readUint(bytes, 8, 2) : readUint(bytes, 8, 4);
  if (prefix + headerLen > bytes.length) return bitFlips(bytes, r);
  const text = new TextDecoder().decode(bytes.subarray(prefix, prefix + headerLen));
  const choice = randInt(r, 5);
  let next = text;
  let what: string;
  if (choice === 0 || choice === 1) {
    const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
    const dims = shape ? shape[1].split(",").map((s) => s.trim()).filter(Boolean) : [];
    let replacement = pick(r, NPY_SHAPES);
    if (choice === 1 && dims.length > 0) {
      const k = randInt(r, dims.length);
      dims[k] = String(pick(r, [0, Number(dims[k]) + 1, Number(dims[k]) * 2, 2 ** 40, 2 ** 31]));
      replacement = `(${dims.join(", ")}${dims.length === 1 ? "," : ""})`;
    }
    next = text.replace(/\([^)]*\)/, replacement);
    what = `npy shape -> ${replacement}`;
  } else if (choice === 2) {
    const descr = pick(r, NPY_DESCRS);
    next = text.replace(/'descr'\s*:\s*'[^']*'/, `'descr': '${descr}'`);
    what = `npy descr -> ${descr}`;
  } else if (choice === 3) {
    next = text.includes("False") ? text.replace("False", "True") : text.replace("True", "False");
    what = "npy fortran_order toggled";
  } else {
    const out = bytes.slice();
    const value = interestingFor(r, major === 1 ? 2 : 4, headerLen);
    writeUint(out, 8, major === 1 ? 2 : 4, value);
    if (r() < 0.3) out[6] = pick(r, [0, 2, 3, 4, 0xff]);
    return { bytes: out, what: `npy version ${out[6]}, header length ${headerLen} -> ${value}` };
  }
  // Keep the header length field consistent with the new text (pad to the old length when
  // shorter, so the data stays where it was).
  const encoded = new TextEncoder().encode(
    next.length < text.length ? next.padEnd(text.length) : next,
  );
  const head = bytes.slice(0, prefix);
  writeUint(head, 8, major === 1 ? 2 : 4, encoded.length);
  return { bytes: concat(head, encoded, bytes.subarray(prefix + headerLen)), what };
};

// ---------------------------------------------------------------------------------------------
// images

/** Rewrites a PNG chunk's length or an IHDR field, or a JPEG segment length or frame size. */
export const imageStructureMutator: Mutator = (bytes, r) => {
  const out = bytes.slice();
  if (bytes[0] === 0x89 && bytes[1] === 0x50) {
    const chunks: number[] = [];
    for (let at = 8; at + 8 <= bytes.length && chunks.length < 10_000;) {
      chunks.push(at);
      at += 12 + readUint(bytes, at, 4, false);
    }
    if (chunks.length === 0) return bitFlips(bytes, r);
    if (r() < 0.4) {
      // IHDR: width, height, bit depth, colour type, interlace.
      const field = pick(r, [[16, 4], [20, 4], [24, 1], [25, 1], [28, 1]]);
      const value = interestingFor(r, field[1]);
      writeUint(out, field[0], field[1], value, false);
      return { bytes: out, what: `PNG IHDR byte ${field[0]} -> ${value}` };
    }
    const at = pick(r, chunks);
    const value = interestingFor(r, 4, readUint(bytes, at, 4, false));
    writeUint(out, at, 4, value, false);
    return { bytes: out, what: `PNG chunk at ${at}: length -> ${value}` };
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    const segments: number[] = [];
    for (let i = 2; i + 4 <= bytes.length; i++) {
      if (
        bytes[i] === 0xff && bytes[i + 1] >= 0xc0 && bytes[i + 1] <= 0xfe && bytes[i + 1] !== 0xd8
      ) {
        segments.push(i);
      }
    }
    if (segments.length === 0) return bitFlips(bytes, r);
    const at = pick(r, segments);
    const marker = bytes[at + 1];
    if ((marker === 0xc0 || marker === 0xc2) && r() < 0.5) {
      // SOF: precision, height, width, components.
      const field = pick(r, [[5, 2], [7, 2], [4, 1], [9, 1]]);
      const value = interestingFor(r, field[1]);
      writeUint(out, at + field[0], field[1], value, false);
      return { bytes: out, what: `JPEG SOF at ${at}: byte ${field[0]} -> ${value}` };
    }
    const value = interestingFor(r, 2, readUint(bytes, at + 2, 2, false));
    writeUint(out, at + 2, 2, value, false);
    return { bytes: out, what: `JPEG segment ${marker.toString(16)} at ${at}: length -> ${value}` };
  }
  return bitFlips(bytes, r);
};
