/** Conversion of stored element bytes (little-endian) to the values the engine holds: float
 * types to float32, integer and bool types to int64 values in a Float64Array. */
import { type CpuTensor, f16BitsToF32 } from "../../util/tensor.ts";
import { contiguousStrides } from "../../kernels/shape.ts";
import { CheckpointError, type WeightDType } from "./state_dict.ts";

export const WEIGHT_DTYPE_BYTES: Readonly<Record<WeightDType, number>> = {
  float16: 2,
  bfloat16: 2,
  float32: 4,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function isFloatDType(dtype: WeightDType): boolean {
  return dtype === "float16" || dtype === "bfloat16" || dtype === "float32" ||
    dtype === "float64";
}

/** float16 bits -> float32, as a table (65,536 entries) so large tensors convert quickly. */
let f16Table: Float32Array | undefined;
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** The tensor of `count` elements of `dtype` at the start of `bytes` (little-endian), laid out
 * by `strides` (elements; default contiguous) from element `offset` (default 0). `label` names
 * it in errors. */
export function decodeTensor(
  bytes: Uint8Array,
  dtype: WeightDType,
  shape: readonly number[],
  label: string,
  layout?: { offset: number; strides: readonly number[] },
): CpuTensor {
  const count = shape.reduce((a, b) => a * b, 1);
  const width = WEIGHT_DTYPE_BYTES[dtype];
  const offset = layout?.offset ?? 0;
  const strides = layout?.strides ?? contiguousStrides(shape);
  // Index of the last element read, to check the bytes are there before touching them.
  let last = offset;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 0) last = -1;
    else last += (shape[d] - 1) * strides[d];
  }
  if (count > 0 && (offset < 0 || (last + 1) * width > bytes.length)) {
    throw new CheckpointError(
      `${label}: storage holds ${Math.floor(bytes.length / width)} ${dtype} values, the tensor ` +
        `[${shape.join(",")}] needs ${last + 1} (truncated or corrupt file)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const float = isFloatDType(dtype);
  const out = allocateValues(float, shape, count, label);
  const read = elementReader(dtype, view);
  if (isContiguous(shape, strides)) {
    for (let i = 0; i < count; i++) out[i] = read(offset + i);
  } else {
    const index = new Array(shape.length).fill(0);
    for (let i = 0; i < count; i++) {
      let src = offset;
      for (let d = 0; d < shape.length; d++) src += index[d] * strides[d];
      out[i] = read(src);
      for (let d = shape.length - 1; d >= 0; d--) {
        if (++index[d] < shape[d]) break;
        index[d] = 0;
      }
    }
  }
  return { dtype: float ? "float32" : "int64", shape: [...shape], data: out };
}

/** The output array of a decoded tensor: float32 values, or int64 values as float64. A corrupt
 * shape (zero strides let a few stored values claim any count) that memory cannot hold is a
 * CheckpointError, not a RangeError. */
function allocateValues(
  float: boolean,
  shape: readonly number[],
  count: number,
  label: string,
): Float32Array | Float64Array {
  try {
    return float ? new Float32Array(count) : new Float64Array(count);
  } catch {
    throw new CheckpointError(
      `${label}: [${shape.join(",")}] is ${count} values, more than memory holds (corrupt file?)`,
    );
  }
}

/** Bytes read per chunk by decodeDense. */
const CHUNK_BYTES = 4 << 20;

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Decodes a tensor whose elements fill one dense block of its storage (contiguous, or any
 * permutation of that, such as a transposed matrix), its bytes read in chunks by
 * `fill(byteOffset, target)` (offsets from the tensor's first element): float32 values in storage
 * order land in the output as they are read, other types pass through one reused chunk, where
 * decodeTensor needs the whole block's bytes beside the output. Returns undefined for other
 * layouts (gaps, overlaps, zero strides), which are left to decodeTensor. */
export function decodeDense(
  fill: (byteOffset: number, target: Uint8Array) => void,
  dtype: WeightDType,
  shape: readonly number[],
  strides: readonly number[],
  label: string,
): CpuTensor | undefined {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count === 0 || shape.length !== strides.length) return undefined;
  const outStrides = contiguousStrides(shape);
  // The dimensions in storage order (outermost first); dense when each stride is the product of
  // the sizes inside it.
  const dims = shape.map((size, d) => ({ size, stride: strides[d], out: outStrides[d] }))
    .filter((d) => d.size > 1).sort((a, b) => b.stride - a.stride);
  let expected = 1;
  for (let j = dims.length - 1; j >= 0; j--) {
    if (dims[j].stride !== expected) return undefined;
    expected *= dims[j].size;
  }
  const width = WEIGHT_DTYPE_BYTES[dtype];
  const float = isFloatDType(dtype);
  const out = allocateValues(float, shape, count, label);
  const inOrder = dims.every((d) => d.stride === d.out);
  if (inOrder && dtype === "float32" && LITTLE_ENDIAN) {
    fill(0, new Uint8Array(out.buffer));
    return { dtype: "float32", shape: [...shape], data: out };
  }
  const chunkElements = Math.max(1, Math.min(count, Math.floor(CHUNK_BYTES / width)));
  const chunk = new Uint8Array(chunkElements * width);
  const view = new DataView(chunk.buffer);
  const element = elementReader(dtype, view);
  const half = dtype === "float16" && LITTLE_ENDIAN ? new Uint16Array(chunk.buffer) : undefined;
  const table = half ? halfTable() : undefined;
  // Odometer over `dims` (storage order) giving each stored element's output index.
  const index = new Array<number>(dims.length).fill(0);
  let o = 0;
  for (let start = 0; start < count; start += chunkElements) {
    const n = Math.min(chunkElements, count - start);
    fill(start * width, chunk.subarray(0, n * width));
    if (inOrder) {
      if (half && table) { for (let i = 0; i < n; i++) out[start + i] = table[half[i]]; }
      else for (let i = 0; i < n; i++) out[start + i] = element(i);
      continue;
    }
    for (let i = 0; i < n; i++) {
      out[o] = half && table ? table[half[i]] : element(i);
      for (let j = dims.length - 1; j >= 0; j--) {
        o += dims[j].out;
        if (++index[j] < dims[j].size) break;
        o -= dims[j].size * dims[j].out;
        index[j] = 0;
      }
    }
  }
  return { dtype: float ? "float32" : "int64", shape: [...shape], data: out };
}

function elementReader(dtype: WeightDType, v: DataView): (i: number) => number {
  switch (dtype) {
    case "float16": {
      const table = halfTable();
      return (i) => table[v.getUint16(i * 2, true)];
    }
    case "bfloat16":
      return (i) => {
        const scratch = bf16Scratch;
        scratch.setUint32(0, v.getUint16(i * 2, true) << 16, true);
        return scratch.getFloat32(0, true);
      };
    case "float32":
      return (i) => v.getFloat32(i * 4, true);
    case "float64":
      return (i) => v.getFloat64(i * 8, true);
    case "int64":
      return (i) => Number(v.getBigInt64(i * 8, true));
    case "int32":
      return (i) => v.getInt32(i * 4, true);
    case "int16":
      return (i) => v.getInt16(i * 2, true);
    case "int8":
      return (i) => v.getInt8(i);
    case "uint8":
      return (i) => v.getUint8(i);
    case "bool":
      return (i) => (v.getUint8(i) ? 1 : 0);
  }
}

const bf16Scratch = new DataView(new ArrayBuffer(4));

function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && strides[d] !== s) return false;
    s *= shape[d];
  }
  return true;
}

/** A [rows, cols] tensor as [cols, rows] (a copy). */
export function transposeMatrix(t: CpuTensor): CpuTensor {
  const [rows, cols] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c];
  }
  return { dtype: t.dtype, shape: [cols, rows], data: out };
}
