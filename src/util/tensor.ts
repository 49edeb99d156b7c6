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
