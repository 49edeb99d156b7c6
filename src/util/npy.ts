/** NumPy `.npy` arrays: read and write the format numpy's `np.load` / `np.save` use, so feature
 * caches, batch orders and checkpoints written here open in numpy and the other way round.
 *
 * Format (numpy's `format.py`, versions 1.0-3.0): magic `\x93NUMPY`, major, minor, header length
 * (u16 for 1.0, u32 for 2.0/3.0), then an ASCII (UTF-8 for 3.0) Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and a newline
 * so the data starts at a multiple of 64 bytes, then the raw elements. We write version 1.0 (2.0
 * when the header does not fit in 65,535 bytes), little-endian, C order. We read any byte order
 * and Fortran order (transposed into C order on load). */
import { EngineError } from "./errors.ts";
import { f16BitsToF32, f32ToF16Bits } from "./tensor.ts";
import { printable } from "./text.ts";

/** Element types supported on both read and write. */
export type NpyDType =
  | "float16"
  | "float32"
  | "float64"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "bool";

/** Typed array holding an array's elements in C order. int64 uses BigInt64Array so values are
 * exact; float16 values are widened to Float32Array on read and rounded to half on write. */
export type NpyData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array;

export interface NpyArray {
  readonly dtype: NpyDType;
  readonly shape: readonly number[];
  readonly data: NpyData;
}

interface DTypeInfo {
  /** numpy type code without the byte-order character. */
  code: string;
  bytes: number;
}

const DTYPES: Record<NpyDType, DTypeInfo> = {
  float16: { code: "f2", bytes: 2 },
  float32: { code: "f4", bytes: 4 },
  float64: { code: "f8", bytes: 8 },
  int8: { code: "i1", bytes: 1 },
  int16: { code: "i2", bytes: 2 },
  int32: { code: "i4", bytes: 4 },
  int64: { code: "i8", bytes: 8 },
  uint8: { code: "u1", bytes: 1 },
  uint16: { code: "u2", bytes: 2 },
  uint32: { code: "u4", bytes: 4 },
  bool: { code: "b1", bytes: 1 },
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function allocData(dtype: NpyDType, n: number): NpyData {
  switch (dtype) {
    case "float16":
    case "float32":
      return new Float32Array(n);
    case "float64":
      return new Float64Array(n);
    case "int8":
      return new Int8Array(n);
    case "int16":
      return new Int16Array(n);
    case "int32":
      return new Int32Array(n);
    case "int64":
      return new BigInt64Array(n);
    case "uint8":
    case "bool":
      return new Uint8Array(n);
    case "uint16":
      return new Uint16Array(n);
    case "uint32":
      return new Uint32Array(n);
  }
}

/** An array of `dtype` and `shape`; `values` (numbers, or bigints for int64) fill it. */
export function npyArray(
  dtype: NpyDType,
  shape: readonly number[],
  values?: ArrayLike<number> | ArrayLike<bigint>,
): NpyArray {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new EngineError(`npy: bad shape [${shape}]`);
  }
  const n = elementCount(shape);
  const data = allocData(dtype, n);
  if (values) {
    if (values.length !== n) {
      throw new EngineError(`npy: ${values.length} values for shape [${shape.join(",")}]`);
    }
    if (data instanceof BigInt64Array) {
      for (let i = 0; i < n; i++) {
        const v = values[i];
        data[i] = typeof v === "bigint" ? v : BigInt(checkedInt(v, i));
      }
    } else {
      for (let i = 0; i < n; i++) (data as Float64Array)[i] = Number(values[i]);
    }
  }
  return { dtype, shape: [...shape], data };
}

function checkedInt(v: number, i: number): number {
  if (!Number.isSafeInteger(v)) {
    throw new EngineError(`npy: int64 value ${v} at index ${i} is not a safe integer`);
  }
  return v;
}

/** int64 elements as numbers (throws beyond 2^53, where numbers stop being exact). */
export function int64ToNumbers(a: NpyArray, label = "array"): Float64Array {
  if (!(a.data instanceof BigInt64Array)) {
    throw new EngineError(`${label}: expected int64, got ${a.dtype}`);
  }
  const out = new Float64Array(a.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = a.data[i];
    if (v > 9007199254740991n || v < -9007199254740991n) {
      throw new EngineError(`${label}: int64 value ${v} at index ${i} is too large`);
    }
    out[i] = Number(v);
  }
  return out;
}

/** Any numeric array's elements as float64 numbers (int64 checked as in `int64ToNumbers`). */
export function toNumbers(a: NpyArray, label = "array"): Float64Array {
  if (a.data instanceof BigInt64Array) return int64ToNumbers(a, label);
  return Float64Array.from(a.data as Float32Array);
}

// ---------------------------------------------------------------------------------------------
// header

interface Header {
  dtype: NpyDType;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
}

function parseDescr(descr: string, label: string): { dtype: NpyDType; littleEndian: boolean } {
  const m = /^([<>|=]?)([a-z]\d+|\?)$/.exec(descr);
  if (!m) throw new EngineError(`${label}: unsupported npy dtype '${descr}'`);
  const order = m[1];
  const code = m[2] === "?" ? "b1" : m[2];
  const entry = (Object.entries(DTYPES) as [NpyDType, DTypeInfo][]).find(([, i]) =>
    i.code === code
  );
  if (!entry) {
    throw new EngineError(
      `${label}: unsupported npy dtype '${descr}' (supported: float16/32/64, int8-64, uint8-32, ` +
        `bool)`,
    );
  }
  return { dtype: entry[0], littleEndian: order !== ">" };
}

/** Parses the Python dict literal numpy writes. Only the three keys numpy defines are read. */
function parseHeader(text: string, label: string): Header {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) {
    throw new EngineError(`${label}: malformed npy header ${JSON.stringify(text.trim())}`);
  }
  const dims = shape[1].split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(
    (s) => {
      const d = Number(s.replace(/L$/, ""));
      if (!Number.isSafeInteger(d) || d < 0) {
        throw new EngineError(`${label}: bad npy shape (${shape[1]})`);
      }
      return d;
    },
  );
  return { ...parseDescr(descr[1], label), fortranOrder: fortran[1] === "True", shape: dims };
}

function headerText(a: NpyArray): string {
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(", ")})`;
  const order = DTYPES[a.dtype].bytes === 1 ? "|" : "<";
  return `{'descr': '${order}${DTYPES[a.dtype].code}', 'fortran_order': False, ` +
    `'shape': ${shape}, }`;
}

// ---------------------------------------------------------------------------------------------
// encode / decode

/** Serialises an array as a `.npy` file (little-endian, C order). */
export function encodeNpy(a: NpyArray): Uint8Array {
  const n = elementCount(a.shape);
  if (a.data.length !== n) {
    throw new EngineError(`npy: ${a.data.length} values for shape [${a.shape.join(",")}]`);
  }
  const info = DTYPES[a.dtype];
  const dict = headerText(a);
  // Total header (magic + version + length field + dict + '\n') padded to 64 bytes.
  let version = 1;
  let prefix = 10;
  let padded = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  if (padded - prefix > 0xffff) {
    version = 2;
    prefix = 12;
    padded = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  }
  const headerLen = padded - prefix;
  const out = new Uint8Array(padded + n * info.bytes);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, headerLen, true);
  else dv.setUint32(8, headerLen, true);
  const text = dict + " ".repeat(headerLen - dict.length - 1) + "\n";
  for (let i = 0; i < text.length; i++) out[prefix + i] = text.charCodeAt(i);
  const body = new DataView(out.buffer, padded);
  writeElements(body, a.dtype, a.data, n);
  return out;
}

function writeElements(dv: DataView, dtype: NpyDType, data: NpyData, n: number): void {
  const bytes = new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength);
  if (dtype === "float16") {
    for (let i = 0; i < n; i++) dv.setUint16(i * 2, f32ToF16Bits((data as Float32Array)[i]), true);
    return;
  }
  if (dtype === "bool") {
    for (let i = 0; i < n; i++) bytes[i] = (data as Uint8Array)[i] ? 1 : 0;
    return;
  }
  // Typed arrays are little-endian on every platform Deno runs on: copy the bytes.
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, n * DTYPES[dtype].bytes));
}

/** Parses a `.npy` file. `label` names the array in errors. */
export function decodeNpy(bytes: Uint8Array, label = "npy"): NpyArray {
  try {
    return decodeNpyBytes(bytes, label);
  } catch (e) {
    // Messages quote the header (and npz member names): bytes of the file, escaped.
    if (e instanceof EngineError) e.message = printable(e.message);
    throw e;
  }
}

function decodeNpyBytes(bytes: Uint8Array, label: string): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new EngineError(`${label}: not a .npy file (bad magic)`);
  }
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let prefix: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    prefix = 10;
  } else if (major === 2 || major === 3) {
    headerLen = dv.getUint32(8, true);
    prefix = 12;
  } else {
    throw new EngineError(`${label}: unsupported .npy version ${major}.${bytes[7]}`);
  }
  if (prefix + headerLen > bytes.length) throw new EngineError(`${label}: truncated npy header`);
  const text = new TextDecoder().decode(bytes.subarray(prefix, prefix + headerLen));
  const header = parseHeader(text, label);
  const n = elementCount(header.shape);
  const info = DTYPES[header.dtype];
  const start = prefix + headerLen;
  if (bytes.length - start < n * info.bytes) {
    throw new EngineError(
      `${label}: npy data truncated (${bytes.length - start} bytes for ${n} ${header.dtype})`,
    );
  }
  const body = new DataView(bytes.buffer, bytes.byteOffset + start, n * info.bytes);
  let data = readElements(body, header.dtype, n, header.littleEndian);
  if (header.fortranOrder && header.shape.length > 1) {
    data = fortranToC(data, header.shape, header.dtype);
  }
  return { dtype: header.dtype, shape: header.shape, data };
}

function readElements(dv: DataView, dtype: NpyDType, n: number, little: boolean): NpyData {
  const out = allocData(dtype, n);
  const size = DTYPES[dtype].bytes;
  if (dtype === "float16") {
    const f = out as Float32Array;
    for (let i = 0; i < n; i++) f[i] = f16BitsToF32(dv.getUint16(i * 2, little));
    return out;
  }
  if (little || size === 1) {
    new Uint8Array(out.buffer).set(new Uint8Array(dv.buffer, dv.byteOffset, n * size));
    if (dtype === "bool") {
      const b = out as Uint8Array;
      for (let i = 0; i < n; i++) b[i] = b[i] ? 1 : 0;
    }
    return out;
  }
  // Big-endian source: swap each element's bytes.
  const src = new Uint8Array(dv.buffer, dv.byteOffset, n * size);
  const dst = new Uint8Array(out.buffer);
  for (let i = 0; i < n; i++) {
    for (let b = 0; b < size; b++) dst[i * size + b] = src[i * size + size - 1 - b];
  }
  return out;
}

/** Reorders column-major (Fortran) elements into row-major (C) order. */
function fortranToC(src: NpyData, shape: readonly number[], dtype: NpyDType): NpyData {
  const n = src.length;
  const out = allocData(dtype, n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  const fStrides = new Array<number>(rank);
  let s = 1;
  for (let d = 0; d < rank; d++) {
    fStrides[d] = s;
    s *= shape[d];
  }
  for (let i = 0; i < n; i++) {
    let f = 0;
    for (let d = 0; d < rank; d++) f += idx[d] * fStrides[d];
    (out as Float64Array)[i] = (src as Float64Array)[f];
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Reads a `.npy` file from disk. */
export function readNpy(path: string): NpyArray {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw new EngineError(`cannot read ${path}: ${(e as Error).message}`);
  }
  return decodeNpy(bytes, path);
}

/** Writes a `.npy` file (atomically: a temporary file renamed into place). */
export function writeNpy(path: string, a: NpyArray): void {
  writeFileAtomic(path, encodeNpy(a));
}

/** Writes `bytes` to `path` through a temporary file and a rename, so an interrupted write never
 * leaves a truncated file where a complete one was. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    if (typeof bytes === "string") Deno.writeTextFileSync(tmp, bytes);
    else Deno.writeFileSync(tmp, bytes);
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* nothing to clean */ }
    throw new EngineError(`cannot write ${path}: ${(e as Error).message}`);
  }
}
