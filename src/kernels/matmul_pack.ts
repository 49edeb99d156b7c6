/** Host-side packing of a constant matmul operand into the texture family's layout (the CPU twin
 * of `pack` / `pack_f16` in shaders/matmul_texture.wgsl).
 *
 * Why: a weight matrix packed by the GPU on every run costs storage-buffer loads, which llvmpipe
 * pays dearly for (a fifth of a ViT-B/16 MLP projection's time, and most of a pointwise
 * convolution's: docs/engine.md). Weights never change, so they are packed once here. */
import { f32ToF16Bits } from "../util/tensor.ts";

/** Where the values of one operand come from and where they go. */
export interface TexturePackLayout {
  /** Texture size in texels and layers (rows and columns past the matrix are zero). */
  readonly width: number;
  readonly height: number;
  readonly layers: number;
  /** Valid rows and columns of the matrix. */
  readonly rows: number;
  readonly cols: number;
  /** Element (row, col) of layer z is values[batchOffset(z) + row * rowStride + col * colStride]. */
  readonly rowStride: number;
  readonly colStride: number;
  /** Batch axes (innermost last) of the layers and the operand's stride along each. */
  readonly batchShape: readonly number[];
  readonly batchStrides: readonly number[];
  /** Eight halves per texel (rgba32uint, two per u32 as pack2x16float makes them) instead of
   * four floats (rgba32float). */
  readonly halves: boolean;
}

/** Texel data, row-major per layer: texel (x, y) of layer z holds matrix row y, columns
 * per * x .. per * x + per - 1 (per = 4, or 8 for halves). Float32Array for rgba32float,
 * Uint32Array for halves. */
export function packTextureOperand(
  values: ArrayLike<number>,
  l: TexturePackLayout,
): Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer> {
  const per = l.halves ? 8 : 4;
  const lanes = l.width * 4; // 32-bit values per texture row
  const floats = new Float32Array(l.halves ? 0 : lanes * l.height * l.layers);
  const words = new Uint32Array(l.halves ? lanes * l.height * l.layers : 0);
  const rows = Math.min(l.rows, l.height);
  const cols = Math.min(l.cols, l.width * per);
  for (let z = 0; z < l.layers; z++) {
    let base = 0;
    for (let d = l.batchShape.length - 1, rest = z; d >= 0; d--) {
      base += (rest % l.batchShape[d]) * l.batchStrides[d];
      rest = Math.floor(rest / l.batchShape[d]);
    }
    for (let r = 0; r < rows; r++) {
      const src = base + r * l.rowStride;
      const dst = (z * l.height + r) * lanes;
      if (l.halves) {
        for (let c = 0; c < cols; c++) {
          const bits = f32ToF16Bits(values[src + c * l.colStride]);
          // Column c is half (c % 2) of word c / 2 (low half first, as pack2x16float).
          words[dst + (c >> 1)] |= (c & 1) === 0 ? bits : bits << 16;
        }
      } else {
        for (let c = 0; c < cols; c++) floats[dst + c] = values[src + c * l.colStride];
      }
    }
  }
  return l.halves ? words : floats;
}
