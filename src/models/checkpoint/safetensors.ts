/** Hugging Face safetensors: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the tensors'
 * bytes (offsets relative to the end of the header). */
import type { CpuTensor } from "../../util/tensor.ts";
import { type ByteSource, openByteSource } from "./file_source.ts";
import { contiguousStrides } from "../../kernels/shape.ts";
import { decodeDense, decodeTensor, WEIGHT_DTYPE_BYTES } from "./dtypes.ts";
import {
  CheckpointError,
  type ReadView,
  type StateDict,
  viewLayout,
  type WeightDType,
  type WeightInfo,
} from "./state_dict.ts";

const DTYPES: Readonly<Record<string, WeightDType>> = {
  F16: "float16",
  BF16: "bfloat16",
  F32: "float32",
  F64: "float64",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

/** Largest header accepted (the format's own reference reader uses 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/** Whether the first bytes look like a safetensors header (length, then `{`). */
export function looksLikeSafetensors(head: Uint8Array, fileSize: number): boolean {
  if (head.length < 9) return false;
  const n = Number(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true));
  return n > 1 && n <= MAX_HEADER_BYTES && n + 8 <= fileSize && head[8] === 0x7b;
}

interface Entry {
  readonly info: WeightInfo;
  readonly begin: number;
  readonly end: number;
}

export function openSafetensors(path: string, source: ByteSource = openByteSource(path)) {
  try {
    return readSafetensors(path, source);
  } catch (e) {
    source.close();
    throw e;
  }
}

function readSafetensors(path: string, source: ByteSource): StateDict {
  const fail = (why: string) => new CheckpointError(`${path}: ${why}`);
  const lengthBytes = source.read(0, 8, "the safetensors header length");
  const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
  if (headerLength < 2 || headerLength > MAX_HEADER_BYTES || 8 + headerLength > source.size) {
    throw fail(
      `not a safetensors file (header length ${headerLength} of a ${source.size}-byte file)`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(source.read(8, headerLength, "the header")));
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw fail(`safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw fail("safetensors header is not a JSON object");
  }
  const dataStart = 8 + headerLength;
  const entries = new Map<string, Entry>();
  const extras = new Map<string, unknown>();
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null) continue; // null: no metadata
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) extras.set(k, v);
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    // Own keys only: a dtype of "constructor" or "__proto__" must not find Object's.
    const dtype = Object.hasOwn(DTYPES, String(v?.dtype)) ? DTYPES[String(v?.dtype)] : undefined;
    if (!dtype) throw fail(`tensor '${name}' has unsupported dtype ${JSON.stringify(v?.dtype)}`);
    const shape = v.shape;
    const offsets = v.data_offsets;
    if (
      !Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      throw fail(`tensor '${name}' has a malformed shape or data_offsets`);
    }
    const [begin, end] = offsets as number[];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * WEIGHT_DTYPE_BYTES[dtype]) {
      throw fail(
        `tensor '${name}': data_offsets span ${end - begin} bytes, ${dtype} [${shape}] needs ` +
          `${count * WEIGHT_DTYPE_BYTES[dtype]}`,
      );
    }
    if (dataStart + end > source.size) {
      throw fail(`tensor '${name}' lies past the end of the file (truncated)`);
    }
    entries.set(name, { info: { name, dtype, shape: shape as number[] }, begin, end });
  }
  return {
    source: path,
    format: "safetensors",
    entries: new Map([...entries].map(([k, e]) => [k, e.info])),
    extras,
    read(name: string, view: ReadView = "stored"): CpuTensor {
      const e = entries.get(name);
      if (!e) throw fail(`no tensor '${name}'`);
      const label = `${path}: tensor '${name}'`;
      const layout = viewLayout(e.info.shape, contiguousStrides(e.info.shape), view, label);
      // Stored and transposed views are both dense: decoded chunk by chunk from the file.
      const dense = decodeDense(
        (at, target) => source.readInto(dataStart + e.begin + at, target, `tensor '${name}'`),
        e.info.dtype,
        layout.shape,
        layout.strides,
        label,
      );
      if (dense) return dense;
      const bytes = source.read(dataStart + e.begin, e.end - e.begin, `tensor '${name}'`);
      return decodeTensor(bytes, e.info.dtype, layout.shape, label, {
        offset: 0,
        strides: layout.strides,
      });
    },
    close: () => source.close(),
  };
}
