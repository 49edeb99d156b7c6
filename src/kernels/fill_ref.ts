/** Host reference of the fill kernel (fill.ts). */

/** The values `prepareFill` writes into a tensor of `n` elements. */
export function fillRef(n: number, value: number): Float64Array {
  return new Float64Array(n).fill(value);
}
