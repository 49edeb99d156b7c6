/** Where the fused attention keeps Q, K and V (see shaders/attention.wgsl), and when an operand
 * can be copied there instead of packed by a shader. Pure: sizes and offsets only.
 *
 * Texel (c, r) of a head holds columns 4c .. 4c + 3 of its row r (rgba32float), or with halves
 * those of rows 2r and 2r + 1 as half pairs (rgba32uint). The heads of one batch entry sit side by
 * side along x, `across` of them per band (all of them unless the texture is too narrow), which
 * is how a [rows, heads, cols] activation lies in memory, so one buffer-to-texture copy moves a
 * whole band; bands are stacked along y, `bandsPerLayer` per layer, then along layers, so
 * neither the texture side nor the layer count limit the batch. */
import { EngineError } from "../util/errors.ts";

/** Element strides along (batch, head, row, column). */
export type Strides4 = readonly [number, number, number, number];

export interface AttentionTextureLayout {
  /** Texels per head row: ceil(cols / 4). */
  readonly headTexels: number;
  /** Texel rows per head: whole 16-row tiles (half as many texel rows with halves). */
  readonly texRows: number;
  /** Heads side by side in one band, bands per batch entry and bands per layer. */
  readonly across: number;
  readonly bandsPerBatch: number;
  readonly bandsPerLayer: number;
  readonly width: number;
  readonly height: number;
  readonly layers: number;
}

/** Texture limits the layout must respect. */
export interface TextureLimits {
  readonly maxTextureDimension2D: number;
  readonly maxTextureArrayLayers: number;
}

/** The layout of `batch` x `heads` heads of `rows` x `cols`. */
export function attentionTextureLayout(
  limits: TextureLimits,
  label: string,
  shape: { batch: number; heads: number; rows: number; cols: number },
  halves: boolean,
): AttentionTextureLayout {
  const { batch, heads, rows, cols } = shape;
  const maxSide = limits.maxTextureDimension2D;
  const headTexels = Math.ceil(cols / 4);
  const texRows = (halves ? 8 : 16) * Math.ceil(rows / 16);
  const across = Math.max(1, Math.min(heads, Math.floor(maxSide / headTexels)));
  const bandsPerBatch = Math.ceil(heads / across);
  const bands = batch * bandsPerBatch;
  const bandsPerLayer = Math.max(1, Math.min(bands, Math.floor(maxSide / texRows)));
  const layers = Math.ceil(bands / bandsPerLayer);
  const layout = {
    headTexels,
    texRows,
    across,
    bandsPerBatch,
    bandsPerLayer,
    width: across * headTexels,
    height: bandsPerLayer * texRows,
    layers,
  };
  if (
    headTexels > maxSide || layout.height > maxSide || layers > limits.maxTextureArrayLayers
  ) {
    throw new EngineError(
      `${label}: ${batch * heads} heads of ${rows} x ${cols} do not fit this adapter's textures`,
    );
  }
  return layout;
}

/** One buffer-to-texture copy: `rows` rows of `texels` texels from byte `offset` (rows
 * `bytesPerRow` apart; undefined for a single row) to texel (x, y) of `layer`. */
export interface AttentionCopy {
  readonly offset: number;
  readonly bytesPerRow: number | undefined;
  readonly x: number;
  readonly y: number;
  readonly layer: number;
  readonly texels: number;
  readonly rows: number;
}

/** Bytes per float32 texel, and the row pitch a copy's rows must be a multiple of (WebGPU). */
const TEXEL_BYTES = 16;
const ROW_PITCH_ALIGNMENT = 256;

/** The copies that fill an operand's texture straight from its buffer, or undefined when they
 * cannot: halves (a copy cannot convert), columns not contiguous or not whole texels, a row
 * pitch or head offset WebGPU's copies do not allow. A band of heads adjacent in memory (head
 * stride = cols) is one copy; otherwise each head is. `strides` are in 4-byte elements. */
export function attentionCopies(
  layout: AttentionTextureLayout,
  shape: { batch: number; heads: number; rows: number; cols: number },
  strides: Strides4,
  halves: boolean,
): AttentionCopy[] | undefined {
  const { batch, heads, rows, cols } = shape;
  const [sb, sh, sr, sc] = strides.map((s) => 4 * s);
  if (halves || sc !== 4 || cols % 4 !== 0) return undefined;
  if (rows > 1 && (sr % ROW_PITCH_ALIGNMENT !== 0 || sr < 4 * cols)) return undefined;
  // Every head's offset is a whole texel when both strides are.
  if (sb % TEXEL_BYTES !== 0 || sh % TEXEL_BYTES !== 0) return undefined;
  // A band is one copy when its heads are adjacent within a row that holds them all.
  const bandAdjacent = sh === 4 * cols && (rows === 1 || sr >= layout.across * 4 * cols);
  const copies: AttentionCopy[] = [];
  for (let b = 0; b < batch; b++) {
    for (let band = 0; band < layout.bandsPerBatch; band++) {
      const h0 = band * layout.across;
      const inBand = Math.min(layout.across, heads - h0);
      const slab = b * layout.bandsPerBatch + band;
      const y = (slab % layout.bandsPerLayer) * layout.texRows;
      const layer = Math.floor(slab / layout.bandsPerLayer);
      const groups = bandAdjacent
        ? [[0, inBand]]
        : Array.from({ length: inBand }, (_, i) => [i, 1]);
      for (const [first, count] of groups) {
        copies.push({
          offset: b * sb + (h0 + first) * sh,
          bytesPerRow: rows > 1 ? sr : undefined,
          x: first * layout.headTexels,
          y,
          layer,
          texels: count * layout.headTexels,
          rows,
        });
      }
    }
  }
  return copies;
}
