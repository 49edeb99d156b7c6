/** Host reference of Einsum: walks the plan of einsum_shape.ts (which the GPU kernel, einsum.ts,
 * runs too) with one loop over the output and one over the summed labels. */
import { type CpuTensor, newCpuData, roundToF16, sizeOf } from "../util/tensor.ts";
import { planEinsum } from "./einsum_shape.ts";

/** out = einsum(equation, ...operands) (all of one dtype), accumulated in float32 for floats. */
export function einsumRef(equation: string, operands: readonly CpuTensor[]): CpuTensor {
  const plan = planEinsum(equation, operands.map((t) => t.shape));
  const dtype = operands[0].dtype;
  const nOut = plan.outShape.length;
  const sizes = [...plan.outShape, ...plan.sumSizes];
  const total = sizeOf(plan.outShape);
  const sumTotal = sizeOf(plan.sumSizes);
  const isFloat = dtype === "float32" || dtype === "float16";
  const out = newCpuData(dtype, total);
  const coord = new Array<number>(sizes.length).fill(0);
  for (let t = 0; t < total; t++) {
    let rest = t;
    for (let d = nOut - 1; d >= 0; d--) {
      coord[d] = rest % sizes[d];
      rest = Math.floor(rest / sizes[d]);
    }
    let acc = 0;
    for (let s = 0; s < sumTotal; s++) {
      let r = s;
      for (let d = sizes.length - 1; d >= nOut; d--) {
        coord[d] = r % sizes[d];
        r = Math.floor(r / sizes[d]);
      }
      let term = 1;
      operands.forEach((x, k) => {
        let off = 0;
        for (let d = 0; d < sizes.length; d++) off += coord[d] * plan.strides[k][d];
        term = isFloat ? Math.fround(term * x.data[off]) : Math.imul(term, x.data[off]);
      });
      acc = isFloat ? Math.fround(acc + term) : (acc + term) | 0;
    }
    // float16: accumulated in f32, rounded to half once (as the GPU does).
    out[t] = dtype === "float16" ? roundToF16(acc) : acc;
  }
  return { dtype, shape: [...plan.outShape], data: out };
}
