/** Settings and shape rules of DeformConv (2-D), shared by the GPU binding (deform_conv.ts), its
 * CPU reference and the ONNX op. Pure TS. */
import { shapeString } from "../util/tensor.ts";
import { windowOutputSize } from "./shape.ts";

export interface DeformConvAttrs {
  readonly strides: readonly [number, number];
  readonly dilations: readonly [number, number];
  /** top, left, bottom, right */
  readonly pads: readonly [number, number, number, number];
  readonly group: number;
  readonly offsetGroup: number;
}

/** Y's shape [N, oC, oH, oW]; checks every input's shape against it (plain Errors). */
export function deformConvShape(
  xShape: readonly number[],
  wShape: readonly number[],
  offsetShape: readonly number[],
  a: DeformConvAttrs,
  bShape?: readonly number[],
  maskShape?: readonly number[],
): number[] {
  if (xShape.length !== 4) throw new Error(`X ${shapeString(xShape)} must be 4-D`);
  if (wShape.length !== 4) throw new Error(`W ${shapeString(wShape)} must be 4-D`);
  const [n, c, h, w] = xShape;
  const [oc, icg, kh, kw] = wShape;
  if (!(a.group >= 1) || icg * a.group !== c || oc % a.group !== 0) {
    throw new Error(
      `W ${shapeString(wShape)} does not fit X's ${c} channels in ${a.group} groups`,
    );
  }
  if (!(a.offsetGroup >= 1) || c % a.offsetGroup !== 0) {
    throw new Error(`${c} channels do not split into ${a.offsetGroup} offset groups`);
  }
  const oh = windowOutputSize(h, kh, a.strides[0], a.dilations[0], a.pads[0], a.pads[2]);
  const ow = windowOutputSize(w, kw, a.strides[1], a.dilations[1], a.pads[1], a.pads[3]);
  if (oh < 1 || ow < 1) throw new Error(`the kernel does not fit X ${shapeString(xShape)}`);
  const offsetExpected = [n, a.offsetGroup * kh * kw * 2, oh, ow];
  if (shapeString(offsetShape) !== shapeString(offsetExpected)) {
    throw new Error(
      `offset is ${shapeString(offsetShape)}, expected ${shapeString(offsetExpected)}`,
    );
  }
  if (bShape && shapeString(bShape) !== shapeString([oc])) {
    throw new Error(`B is ${shapeString(bShape)}, expected [${oc}]`);
  }
  const maskExpected = [n, a.offsetGroup * kh * kw, oh, ow];
  if (maskShape && shapeString(maskShape) !== shapeString(maskExpected)) {
    throw new Error(`mask is ${shapeString(maskShape)}, expected ${shapeString(maskExpected)}`);
  }
  return [n, oc, oh, ow];
}
