/** Reading and writing ONNX `TensorProto`s: initializers, Constant attributes and the
 * conformance suite's `input_*.pb` / `output_*.pb` files. */
import onnxProto from "onnx-proto";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import {
  type CpuData,
  type CpuTensor,
  type DType,
  f16BitsToF32,
  f32ToF16Bits,
  newCpuData,
} from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import { printable } from "../util/text.ts";

const { onnx } = onnxProto;
type ITensorProto = onnxProto.onnx.ITensorProto;

/** protobufjs decodes 64-bit fields as `Long` objects (or plain numbers for small values). */
export interface LongLike {
  toNumber(): number;
}

/** A 64-bit protobuf field as a number (exact up to 2^53). */
export function toNumber(v: number | LongLike | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === "number" ? v : v.toNumber();
}

/** ONNX `TensorProto.DataType` codes by name. */
export const ONNX_TYPE = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
} as const;

const TYPE_NAMES: Record<number, string> = {
  1: "float32",
  2: "uint8",
  3: "int8",
  4: "uint16",
  5: "int16",
  6: "int32",
  7: "int64",
  8: "string",
  9: "bool",
  10: "float16",
  11: "float64",
  12: "uint32",
  13: "uint64",
  14: "complex64",
  15: "complex128",
  16: "bfloat16",
  17: "float8e4m3fn",
  18: "float8e4m3fnuz",
  19: "float8e5m2",
  20: "float8e5m2fnuz",
  21: "uint4",
  22: "int4",
  23: "float4e2m1",
  24: "float8e8m0",
  25: "uint2",
  26: "int2",
};

/** Readable name of an ONNX element type code (`float32`, `float64`, `string`...). */
export function onnxTypeName(code: number): string {
  return TYPE_NAMES[code] ?? `type ${code}`;
}

/** The engine dtype an ONNX element type runs as, or undefined when the engine has none. */
export function engineDType(code: number): DType | undefined {
  switch (code) {
    case ONNX_TYPE.FLOAT:
      return "float32";
    case ONNX_TYPE.FLOAT16:
      return "float16";
    case ONNX_TYPE.INT32:
      return "int32";
    case ONNX_TYPE.INT64:
      return "int64";
    case ONNX_TYPE.BOOL:
      return "bool";
    case ONNX_TYPE.INT8:
      return "int8";
    case ONNX_TYPE.UINT8:
      return "uint8";
  }
  return undefined;
}

/** Where data of a tensor is converted on load: wider or narrower types map to the nearest
 * engine dtype (float64 -> float32, 16-bit ints -> int32, uint32/uint64 -> int64, bfloat16 ->
 * float32); int8 and uint8 load as themselves. Types without a sensible mapping (strings,
 * complex, 4/8-bit floats, int4/uint4) give undefined. */
export function loadDType(code: number): DType | undefined {
  switch (code) {
    case ONNX_TYPE.DOUBLE:
    case ONNX_TYPE.BFLOAT16:
      return "float32";
    case ONNX_TYPE.UINT16:
    case ONNX_TYPE.INT16:
      return "int32";
    case ONNX_TYPE.UINT32:
    case ONNX_TYPE.UINT64:
      return "int64";
  }
  return engineDType(code);
}

/** The ONNX element type code storing an engine dtype. */
export function onnxTypeOf(dtype: DType): number {
  switch (dtype) {
    case "float32":
      return ONNX_TYPE.FLOAT;
    case "float16":
      return ONNX_TYPE.FLOAT16;
    case "int32":
      return ONNX_TYPE.INT32;
    case "int64":
      return ONNX_TYPE.INT64;
    case "bool":
      return ONNX_TYPE.BOOL;
    case "int8":
      return ONNX_TYPE.INT8;
    case "uint8":
      return ONNX_TYPE.UINT8;
  }
}

/** Bytes per element in `raw_data` for the types we can read. */
function rawElementBytes(code: number): number | undefined {
  switch (code) {
    case ONNX_TYPE.UINT8:
    case ONNX_TYPE.INT8:
    case ONNX_TYPE.BOOL:
      return 1;
    case ONNX_TYPE.UINT16:
    case ONNX_TYPE.INT16:
    case ONNX_TYPE.FLOAT16:
    case ONNX_TYPE.BFLOAT16:
      return 2;
    case ONNX_TYPE.FLOAT:
    case ONNX_TYPE.INT32:
    case ONNX_TYPE.UINT32:
      return 4;
    case ONNX_TYPE.INT64:
    case ONNX_TYPE.UINT64:
    case ONNX_TYPE.DOUBLE:
      return 8;
  }
  return undefined;
}

/** A decoded tensor plus the element type the file declared (before any conversion). */
export interface LoadedTensor {
  readonly tensor: CpuTensor;
  readonly onnxType: number;
}

/** Options for reading tensors whose data may live in external files. */
export interface TensorReadOptions {
  /** Folder external-data `location`s are relative to (the model file's folder). */
  readonly baseDir?: string;
  /** Cache of external files already read (shared across a model's tensors). */
  readonly fileCache?: Map<string, Uint8Array>;
  /** What to call the tensor in errors when it has no name (e.g. "attribute 'value'"). */
  readonly label?: string;
}

function fail(label: string, message: string): never {
  throw new EngineError(`tensor '${label}': ${message}`);
}

function readExternal(t: ITensorProto, label: string, opts: TensorReadOptions): Uint8Array {
  const entries = new Map<string, string>();
  for (const e of t.externalData ?? []) entries.set(e.key ?? "", e.value ?? "");
  const location = entries.get("location");
  if (!location) fail(label, "external data without a 'location' entry");
  if (!opts.baseDir) fail(label, `external data '${location}' but no model folder is known`);
  // ONNX requires a location relative to the model's folder and inside it (no absolute path,
  // no `..`): a model file must not read other files of the machine.
  const path = resolve(opts.baseDir, location);
  const inside = relative(resolve(opts.baseDir), path);
  if (isAbsolute(location) || inside === "" || inside.startsWith("..") || isAbsolute(inside)) {
    fail(
      label,
      `external data location '${location}' is outside the model's folder ${opts.baseDir} ` +
        `(ONNX allows only paths inside it)`,
    );
  }
  let bytes = opts.fileCache?.get(path);
  if (!bytes) {
    try {
      bytes = Deno.readFileSync(path);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound ? "file not found" : String(e);
      fail(label, `cannot read external data file ${path}: ${why}`);
    }
    opts.fileCache?.set(path, bytes);
  }
  const offset = Number(entries.get("offset") ?? "0");
  const length = entries.has("length") ? Number(entries.get("length")) : bytes.length - offset;
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0) {
    fail(label, `bad external data offset/length in ${path}`);
  }
  if (offset + length > bytes.length) {
    fail(
      label,
      `external data ${path} is ${bytes.length} bytes, but offset ${offset} + length ` +
        `${length} reaches past its end (truncated file?)`,
    );
  }
  return bytes.subarray(offset, offset + length);
}

/** Decodes one TensorProto into a host tensor of the engine dtype it loads as. */
export function readTensorProto(t: ITensorProto, opts: TensorReadOptions = {}): LoadedTensor {
  const label = t.name || opts.label || "(unnamed)";
  const code = t.dataType ?? 0;
  const dtype = loadDType(code);
  if (!dtype) fail(label, `element type ${onnxTypeName(code)} is not supported`);
  if (t.segment) fail(label, "segmented tensors are not supported");
  const shape = (t.dims ?? []).map((d) => toNumber(d));
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    fail(label, `invalid dims [${shape.join(",")}]`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  // The data's size is checked against the dims before the output is allocated: corrupt dims
  // (say [2^40]) must be refused, not allocated.
  let out: CpuData;

  let raw: Uint8Array | undefined;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) raw = readExternal(t, label, opts);
  else if (t.rawData && t.rawData.length > 0) raw = t.rawData;

  if (raw) {
    const size = rawElementBytes(code)!;
    if (raw.length !== n * size) {
      fail(
        label,
        `raw data has ${raw.length} bytes but ${shapeText(shape)} ${onnxTypeName(code)} needs ` +
          `${n * size}`,
      );
    }
    out = newCpuData(dtype, n);
    readRawInto(out, raw, code, n);
  } else {
    const values = typedValues(t, code);
    // A tensor with no data at all and no elements is fine; otherwise the count must match.
    if (values.length !== n) {
      fail(label, `has ${values.length} values but dims ${shapeText(shape)} need ${n}`);
    }
    out = newCpuData(dtype, n);
    for (let i = 0; i < n; i++) out[i] = convertTyped(code, values[i]);
  }
  if (dtype === "bool") { for (let i = 0; i < n; i++) out[i] = out[i] ? 1 : 0; }
  return { tensor: { dtype, shape, data: out }, onnxType: code };
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

let halfTable: Float32Array | undefined;

/** float16 bits -> value for all 65536 patterns (weights can hold hundreds of millions). */
function halfToFloat(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = f16BitsToF32(h);
  }
  return halfTable;
}

/** An aligned copy of `raw` (protobuf byte fields may start at any offset; they may also be
 * Node Buffers, whose `slice` is a view, hence the copying constructor). */
function aligned(raw: Uint8Array): ArrayBuffer {
  return new Uint8Array(raw).buffer;
}

/** Decodes little-endian raw_data; bulk copies for the common weight types. */
function readRawInto(out: CpuData, raw: Uint8Array, code: number, n: number): void {
  switch (code) {
    case ONNX_TYPE.FLOAT:
      out.set(new Float32Array(aligned(raw), 0, n));
      return;
    case ONNX_TYPE.INT32:
      out.set(new Int32Array(aligned(raw), 0, n));
      return;
    case ONNX_TYPE.FLOAT16: {
      const bits = new Uint16Array(aligned(raw), 0, n);
      const table = halfToFloat();
      for (let i = 0; i < n; i++) out[i] = table[bits[i]];
      return;
    }
    case ONNX_TYPE.BOOL:
    case ONNX_TYPE.UINT8:
      out.set(raw.subarray(0, n));
      return;
    case ONNX_TYPE.INT8: // one byte per element: no alignment needed for the view
      out.set(new Int8Array(raw.buffer, raw.byteOffset, n));
      return;
  }
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < n; i++) out[i] = readRaw(dv, code, i);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function readRaw(dv: DataView, code: number, i: number): number {
  switch (code) {
    case ONNX_TYPE.FLOAT:
      return dv.getFloat32(i * 4, true);
    case ONNX_TYPE.DOUBLE:
      return dv.getFloat64(i * 8, true);
    case ONNX_TYPE.FLOAT16:
      return f16BitsToF32(dv.getUint16(i * 2, true));
    case ONNX_TYPE.BFLOAT16:
      u32Scratch[0] = dv.getUint16(i * 2, true) << 16;
      return f32Scratch[0];
    case ONNX_TYPE.INT32:
      return dv.getInt32(i * 4, true);
    case ONNX_TYPE.UINT32:
      return dv.getUint32(i * 4, true);
    case ONNX_TYPE.INT64:
      return Number(dv.getBigInt64(i * 8, true));
    case ONNX_TYPE.UINT64:
      return Number(dv.getBigUint64(i * 8, true));
    case ONNX_TYPE.INT16:
      return dv.getInt16(i * 2, true);
    case ONNX_TYPE.UINT16:
      return dv.getUint16(i * 2, true);
    case ONNX_TYPE.INT8:
      return dv.getInt8(i);
    case ONNX_TYPE.UINT8:
    case ONNX_TYPE.BOOL:
      return dv.getUint8(i);
  }
  throw new Error(`unreachable raw type ${code}`);
}

/** The typed repeated field a type's values live in when there is no raw_data. */
function typedValues(t: ITensorProto, code: number): ArrayLike<number | LongLike> {
  switch (code) {
    case ONNX_TYPE.FLOAT:
      return t.floatData ?? [];
    case ONNX_TYPE.DOUBLE:
      return t.doubleData ?? [];
    case ONNX_TYPE.INT64:
      return t.int64Data ?? [];
    case ONNX_TYPE.UINT32:
    case ONNX_TYPE.UINT64:
      return t.uint64Data ?? [];
    default: // int32, int16, int8, uint16, uint8, bool, float16 and bfloat16 (as bits)
      return t.int32Data ?? [];
  }
}

function convertTyped(code: number, v: number | LongLike): number {
  const x = toNumber(v);
  switch (code) {
    case ONNX_TYPE.FLOAT16:
      return f16BitsToF32(x & 0xffff);
    case ONNX_TYPE.BFLOAT16:
      u32Scratch[0] = (x & 0xffff) << 16;
      return f32Scratch[0];
    case ONNX_TYPE.UINT32:
      return x >>> 0;
    case ONNX_TYPE.UINT8:
      return x & 0xff;
    case ONNX_TYPE.INT8:
      return (x << 24) >> 24;
    case ONNX_TYPE.UINT16:
      return x & 0xffff;
    case ONNX_TYPE.INT16:
      return (x << 16) >> 16;
  }
  return x;
}

/** Reads a serialized TensorProto file (`input_0.pb`...). Errors name the file. */
export function readTensorFile(path: string): LoadedTensor {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "file not found" : String(e);
    throw new EngineError(`cannot read ${path}: ${why}`);
  }
  let proto: onnxProto.onnx.TensorProto;
  try {
    proto = onnx.TensorProto.decode(bytes);
  } catch (e) {
    throw new EngineError(`${path}: not a valid TensorProto (${(e as Error).message})`);
  }
  try {
    return readTensorProto(proto, { baseDir: dirname(path), label: path });
  } catch (e) {
    if (e instanceof EngineError) throw new EngineError(printable(`${path}: ${e.message}`));
    throw e;
  }
}

/** Encodes a host tensor as a TensorProto (raw_data little-endian), for tests and tools. */
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

export function tensorToProto(name: string, t: CpuTensor): onnxProto.onnx.TensorProto {
  const n = t.data.length;
  let raw: Uint8Array;
  switch (t.dtype) {
    case "float32":
      raw = new Uint8Array(Float32Array.from(t.data).buffer);
      break;
    case "float16": {
      const bits = new Uint16Array(n);
      for (let i = 0; i < n; i++) bits[i] = f32ToF16Bits(t.data[i]);
      raw = new Uint8Array(bits.buffer);
      break;
    }
    case "int32":
      raw = new Uint8Array(Int32Array.from(t.data).buffer);
      break;
    case "int64": {
      const big = new BigInt64Array(n);
      // A double at or past +-2^63 is a clamp sentinel (a parsed INT64_MAX reads back as 2^63):
      // saturate, since BigInt64Array would wrap 2^63 round to INT64_MIN.
      for (let i = 0; i < n; i++) {
        const v = BigInt(Math.trunc(t.data[i]));
        big[i] = v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : v;
      }
      raw = new Uint8Array(big.buffer);
      break;
    }
    case "bool":
      raw = Uint8Array.from(t.data, (v) => (v ? 1 : 0));
      break;
    case "int8":
      raw = new Uint8Array(Int8Array.from(t.data).buffer);
      break;
    case "uint8":
      raw = Uint8Array.from(t.data);
      break;
  }
  return onnx.TensorProto.create({
    name,
    dims: [...t.shape],
    dataType: onnxTypeOf(t.dtype),
    rawData: raw,
  });
}
