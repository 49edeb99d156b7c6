/** Element types the engine understands. Every GPU element is 32 bits: float32 and float16 are
 * stored as f32 (float16 values rounded to half precision by the ops that produce them), int32
 * and int64 as i32 (int64 that does not fit is an error at upload), bool as u32 0/1, and the
 * quantized types int8 and uint8 one value per i32 word (uint8 too: 0..255 has the same bits as
 * i32 or u32, and i32 lets every integer kernel index, compare and select them unchanged; ops
 * whose results could leave the 8-bit range must wrap or saturate, or refuse these types). */
export type DType = "float32" | "float16" | "int32" | "int64" | "bool" | "int8" | "uint8";

/** The 8-bit integer dtypes (quantized tensors). */
export const NARROW_INTS: readonly DType[] = ["int8", "uint8"];

/** Value range of an integer dtype the engine wraps or saturates to (int8, uint8, int32). */
export function intRange(dtype: DType): { min: number; max: number } | undefined {
  switch (dtype) {
    case "int8":
      return { min: -128, max: 127 };
    case "uint8":
      return { min: 0, max: 255 };
    case "int32":
      return { min: -2147483648, max: 2147483647 };
    default:
      return undefined;
  }
}

/** WGSL storage type used for a logical dtype. */
export type StorageType = "f32" | "i32" | "u32";

export function storageType(dtype: DType): StorageType {
  switch (dtype) {
    case "float32":
    case "float16":
      return "f32";
    case "int32":
    case "int64":
    case "int8":
    case "uint8":
      return "i32";
    case "bool":
      return "u32";
  }
}

/** Bytes per element on the GPU (always 4: see DType). */
export const GPU_ELEMENT_BYTES = 4;

/** A tensor living in a GPU storage buffer, row-major, starting at byte 0 of the buffer.
 * The buffer may be larger than the tensor (pooled buffers come in size classes). */
export interface GpuTensor {
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

/** Host-side tensor data: Float32Array for float32 and float16 (values, already rounded to half
 * precision for float16), Float64Array for int64 (exact to 2^53; larger magnitudes only appear as
 * clamp sentinels such as Slice's INT64_MAX), Int32Array for int32, Uint8Array for bool and
 * uint8, Int8Array for int8 (storing into them wraps, as numpy's astype does). */
export type CpuData = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array;

export interface CpuTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: CpuData;
}

/** Allocates a zeroed host tensor of the right array type. */
export function cpuTensor(
  dtype: DType,
  shape: readonly number[],
  data?: ArrayLike<number>,
): CpuTensor {
  const n = sizeOf(shape);
  const out = newCpuData(dtype, n);
  if (data) {
    if (data.length !== n) {
      throw new RangeError(`${data.length} values for ${dtype} tensor ${shapeString(shape)}`);
    }
    if (dtype === "float16") { for (let i = 0; i < n; i++) out[i] = roundToF16(data[i]); }
    else out.set(data);
  }
  return { dtype, shape: [...shape], data: out };
}

export function newCpuData(dtype: DType, n: number): CpuData {
  switch (dtype) {
    case "float32":
    case "float16":
      return new Float32Array(n);
    case "int64":
      return new Float64Array(n);
    case "int32":
      return new Int32Array(n);
    case "bool":
    case "uint8":
      return new Uint8Array(n);
    case "int8":
      return new Int8Array(n);
  }
}

const f16Scratch = new Float32Array(1);
const f16Bits = new Uint32Array(f16Scratch.buffer);

/** IEEE half bits (round to nearest even) of a number. */
export function f32ToF16Bits(value: number): number {
  f16Scratch[0] = value;
  const x = f16Bits[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Rounds a number to the nearest float16 value (as a number). */
export function roundToF16(value: number): number {
  return f16BitsToF32(f32ToF16Bits(value));
}

/** Converts host data to the 32-bit layout the GPU stores (see DType). `label` names the tensor
 * in the error raised when an int64 value does not fit in i32. */
export function toGpuArray(
  t: CpuTensor,
  label = "tensor",
): Float32Array | Int32Array | Uint32Array {
  switch (t.dtype) {
    case "float32":
    case "float16":
      return t.data instanceof Float32Array ? t.data : new Float32Array(t.data);
    case "int32":
      return t.data instanceof Int32Array ? t.data : Int32Array.from(t.data);
    case "int64": {
      const out = new Int32Array(t.data.length);
      for (let i = 0; i < t.data.length; i++) {
        const v = t.data[i];
        if (v > 2147483647 || v < -2147483648) {
          throw new RangeError(
            `${label}: int64 value ${v} at index ${i} does not fit in the GPU's 32-bit integers`,
          );
        }
        out[i] = v;
      }
      return out;
    }
    case "bool":
      return Uint32Array.from(t.data);
    case "int8":
    case "uint8":
      return Int32Array.from(t.data);
  }
}

/** Wraps GPU-layout data read back from a buffer as a host tensor of `dtype`. */
export function fromGpuArray(
  data: Float32Array | Int32Array | Uint32Array,
  shape: readonly number[],
  dtype: DType,
): CpuTensor {
  switch (dtype) {
    case "float32":
      return {
        dtype,
        shape: [...shape],
        data: new Float32Array(data.buffer, data.byteOffset, data.length),
      };
    case "float16":
      return cpuTensor(dtype, shape, new Float32Array(data.buffer, data.byteOffset, data.length));
    case "int32":
      return {
        dtype,
        shape: [...shape],
        data: new Int32Array(data.buffer, data.byteOffset, data.length),
      };
    case "int64":
      return { dtype, shape: [...shape], data: Float64Array.from(data) };
    case "bool":
      return { dtype, shape: [...shape], data: Uint8Array.from(data) };
    // Kernels producing int8/uint8 keep values in range; the typed array wraps anything else.
    case "int8":
      return { dtype, shape: [...shape], data: Int8Array.from(data) };
    case "uint8":
      return { dtype, shape: [...shape], data: Uint8Array.from(data) };
  }
}
