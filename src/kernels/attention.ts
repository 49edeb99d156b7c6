/** Fused attention (shaders/attention.wgsl): out = softmax(scale * Q K^T + mask) V per
 * (batch, head), streaming over keys with a running maximum and sum, so the [Sq, Sk] score
 * matrix never exists in memory. Q, K and V are first packed into textures
 * (shaders/attention_pack.wgsl).
 *
 * Operands are seen as logical [batch, heads, rows, head dim] arrays addressed through element
 * strides (`AttentionOperand`), so a caller can hand over the tensors before a head-split
 * transpose and have the output written straight into the merged [batch, rows, heads, dim]
 * layout. A causal mask known at plan time is not read at all: keys past the diagonal (plus an
 * offset) are skipped, which also halves the work. */
import {
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  prepareDispatch,
  type ResourceOwner,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString } from "../util/tensor.ts";
import { contiguousStrides } from "./shape.ts";

/** Element strides along (batch, head, row, column). */
export type Strides4 = readonly [number, number, number, number];

/** A tensor and how the kernel walks it as a logical [batch, heads, rows, cols] array. */
export interface AttentionOperand {
  readonly tensor: GpuTensor;
  readonly strides: Strides4;
}

/** Sizes of one attention problem. */
export interface AttentionProblem {
  readonly batch: number;
  readonly heads: number;
  /** Heads of K and V (default `heads`); fewer for grouped-query attention, where query head h
   * reads K/V head floor(h / (heads / kvHeads)). */
  readonly kvHeads?: number;
  /** Query rows and key rows. */
  readonly sq: number;
  readonly sk: number;
  /** Head dims of Q/K and of V (and the output). */
  readonly dqk: number;
  readonly dv: number;
}

export interface PrepareAttentionOptions {
  /** Multiplies Q K^T (default 1 / sqrt(dqk)). */
  scale?: number;
  /** Added to the scaled scores; broadcast axes have stride 0 (strides along b, h, i, j). A bool
   * mask says which keys are visible instead. */
  mask?: AttentionOperand;
  /** Causal: key j is seen by query i only when j <= i + causalOffset. */
  causalOffset?: number;
  /** Store scale * Q, K and V as float16 (the model's "f16" precision): half the texture loads;
   * f32 arithmetic. */
  halves?: boolean;
  /** Names the operation in errors. */
  label?: string;
  /** Scores (after scale) become softcap * tanh(score / softcap) before the mask (when > 0). */
  softcap?: number;
  /** A query row that sees no key gives 0 (ONNX Attention) instead of NaN (Softmax's 0 / 0). */
  emptyRowsZero?: boolean;
  /** Invocations per workgroup (default: `attentionWorkgroup`). */
  workgroupSize?: number;
}

/** Invocations per workgroup of the attention product, each 16 query rows of one (batch, head):
 * 64 (llvmpipe runs smaller workgroups slower), unless that leaves too few workgroups to keep
 * every core busy (one ViT-B image: 156 tiles). */
export function attentionWorkgroup(tiles: number): number {
  return tiles >= 64 * 8 ? 64 : tiles >= 32 * 8 ? 32 : 16;
}

/** Largest head dim: the output rows an invocation accumulates live in a function-scope array
 * of 16 x dim floats. */
export const ATTENTION_MAX_HEAD_DIM = 256;

/** Row-major strides of a contiguous [B, H, S, D] array. */
export function contiguousStrides4(shape: readonly number[]): Strides4 {
  const [b, h, s, d] = contiguousStrides(shape);
  return [b, h, s, d];
}

/** Pack workgroups: 8 columns x 8 texel rows (64 invocations; llvmpipe runs smaller ones at
 * half speed). */
const PACK_WG = 8;

/** Where `pack` puts one operand: texel (d, r) of a (batch, head) holds rows 4r .. 4r + 3 of
 * column d (eight rows 8r .. 8r + 7 for halves); heads are stacked along y (`headsPerLayer` of them, `texRows` rows each), then
 * along layers, so neither the texture side nor the layer count limit the batch. */
interface TextureLayout {
  texRows: number;
  headsPerLayer: number;
  width: number;
  height: number;
  layers: number;
}

function textureLayout(
  gpu: Gpu,
  label: string,
  rows: number,
  cols: number,
  bh: number,
  halves: boolean,
) {
  const maxSide = gpu.limits.maxTextureDimension2D;
  // Four rows per rgba32float texel, eight per rgba32uint texel of halves.
  const texRows = (halves ? 2 : 4) * Math.ceil(rows / 16);
  const headsPerLayer = Math.max(1, Math.min(bh, Math.floor(maxSide / texRows)));
  const layers = Math.ceil(bh / headsPerLayer);
  const layout = { texRows, headsPerLayer, width: cols, height: headsPerLayer * texRows, layers };
  if (
    cols > maxSide || layout.height > maxSide || layers > gpu.limits.maxTextureArrayLayers
  ) {
    throw new EngineError(
      `${label}: ${bh} heads of ${rows} x ${cols} do not fit this adapter's textures`,
    );
  }
  return layout satisfies TextureLayout;
}

/** Scratch textures, per device, by role and size. An attention's dispatches are [pack Q, pack
 * K, pack V, attend], consecutive, and dispatches run in order, so every attention of a given
 * size shares one set (as the matmul's operand textures do). They live as long as the device. */
const scratchTextures = new WeakMap<Gpu, Map<string, GPUTexture>>();

function scratchTexture(
  gpu: Gpu,
  role: string,
  t: TextureLayout,
  format: GPUTextureFormat,
): GPUTexture {
  let cache = scratchTextures.get(gpu);
  if (!cache) scratchTextures.set(gpu, cache = new Map());
  const key = `${role} ${format} ${t.width}x${t.height}x${t.layers}`;
  let texture = cache.get(key);
  if (!texture) {
    texture = gpu.device.createTexture({
      label: `attention ${key}`,
      size: [t.width, t.height, t.layers],
      format,
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.TEXTURE_BINDING,
    });
    cache.set(key, texture);
  }
  return texture;
}

/** Prepares `out = softmax(scale * Q K^T + mask) V` for `problem`. Float tensors only; the output
 * must not share a buffer with an input. Returns the dispatches (none when empty). */
export function prepareAttention(
  gpu: Gpu,
  owner: ResourceOwner,
  problem: AttentionProblem,
  q: AttentionOperand,
  k: AttentionOperand,
  v: AttentionOperand,
  out: AttentionOperand,
  options: PrepareAttentionOptions = {},
): Dispatch[] {
  const label = options.label ?? "attention";
  const { batch, heads, sq, sk, dqk, dv } = problem;
  const operands = [["Q", q], ["K", k], ["V", v], ["output", out], ["mask", options.mask]] as const;
  for (const [name, t] of operands) {
    const bool = name === "mask" && t?.tensor.dtype === "bool";
    if (t && !bool && t.tensor.dtype !== "float32" && t.tensor.dtype !== "float16") {
      throw new EngineError(`${label}: ${name} is ${t.tensor.dtype}; attention takes floats`);
    }
  }
  for (const [name, t] of [["Q", q], ["K", k], ["V", v]] as const) {
    if (t.tensor.buffer === out.tensor.buffer) {
      throw new EngineError(`${label}: the output must not share a buffer with ${name}`);
    }
  }
  if (Math.max(dqk, dv) > ATTENTION_MAX_HEAD_DIM) {
    throw new EngineError(
      `${label}: head dim ${Math.max(dqk, dv)} exceeds ${ATTENTION_MAX_HEAD_DIM}`,
    );
  }
  const bh = batch * heads;
  const kvHeads = problem.kvHeads ?? heads;
  if (!(kvHeads >= 1 && heads % kvHeads === 0)) {
    throw new EngineError(`${label}: ${heads} query heads do not group over ${kvHeads} K/V heads`);
  }
  const bhk = batch * kvHeads;
  if (bh * sq * dv === 0) return [];
  if (sk === 0 || dqk === 0) {
    // Softmax over no keys is undefined; refuse rather than write NaN silently.
    throw new EngineError(
      `${label}: attention over ${sk} keys of dim ${dqk} (Q ${shapeString(q.tensor.shape)})`,
    );
  }
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (bh > maxWg) {
    throw new EngineError(`${label}: ${bh} (batch x heads) exceed the adapter's ${maxWg}`);
  }
  const halves = !!options.halves;
  const format = halves ? "rgba32uint" : "rgba32float";
  const texel = halves ? "u32" : "f32";
  const layouts = {
    q: textureLayout(gpu, label, sq, dqk, bh, halves),
    k: textureLayout(gpu, label, sk, dqk, bhk, halves),
    v: textureLayout(gpu, label, sk, dv, bhk, halves),
  };
  const dispatches: Dispatch[] = [];
  const views: GPUTextureView[] = [];
  for (
    const [role, operand, t, rows, cols, scale, nHeads] of [
      ["Q", q, layouts.q, sq, dqk, options.scale ?? 1 / Math.sqrt(dqk), heads],
      ["K", k, layouts.k, sk, dqk, 1, kvHeads],
      ["V", v, layouts.v, sk, dv, 1, kvHeads],
    ] as const
  ) {
    const texture = scratchTexture(gpu, role, t, format);
    const uniform = owner.own(createUniform(gpu, "attention_pack", {
      rows,
      cols,
      heads: nHeads,
      tex_rows: t.texRows,
      heads_per_layer: t.headsPerLayer,
      scale,
      st: operand.strides,
    }, `${label} pack ${role}`));
    dispatches.push(prepareDispatch(
      gpu,
      {
        shader: "attention_pack",
        constants: { WG_X: PACK_WG, WG_Y: PACK_WG, HALVES: halves ? 1 : 0 },
        placeholders: { TEXEL: texel, FORMAT: format },
      },
      [operand.tensor, texture.createView({ dimension: "2d-array" }), uniform],
      [Math.ceil(cols / PACK_WG), Math.ceil(t.texRows / PACK_WG), batch * nHeads],
    ));
    views.push(texture.createView({ dimension: "2d-array" }));
  }
  const causal = options.causalOffset !== undefined;
  const mask = options.mask;
  const qTiles = Math.ceil(sq / 16);
  const tiles = bh * qTiles;
  const wg = options.workgroupSize ?? attentionWorkgroup(tiles);
  const uniform = owner.own(createUniform(gpu, "attention", {
    sq,
    sk,
    dqk,
    dv,
    heads,
    q_tiles: qTiles,
    tiles,
    causal_offset: causal ? options.causalOffset! : 0,
    q_tex_rows: layouts.q.texRows,
    q_heads_per_layer: layouts.q.headsPerLayer,
    kv_tex_rows: layouts.k.texRows,
    kv_heads_per_layer: layouts.k.headsPerLayer,
    kv_heads: kvHeads,
    kv_group: heads / kvHeads,
    softcap: options.softcap ?? 0,
    o_st: out.strides,
    m_st: mask?.strides ?? [0, 0, 0, 0],
  }, label));
  const spec = {
    shader: "attention",
    entryPoint: "main",
    constants: {
      WG: wg,
      HAS_MASK: mask ? 1 : 0,
      MASK_BOOL: mask?.tensor.dtype === "bool" ? 1 : 0,
      CAUSAL: causal ? 1 : 0,
      ROUND_F16: out.tensor.dtype === "float16" ? 1 : 0,
      HALVES: halves ? 1 : 0,
      EMPTY_ROWS_ZERO: options.emptyRowsZero ? 1 : 0,
      SOFTCAP: (options.softcap ?? 0) > 0 ? 1 : 0,
    },
    placeholders: { DV: 4 * Math.ceil(dv / 4), TEXEL: texel },
  };
  // Without a mask, the output's buffer stands in for the (unread) mask binding... which may
  // not be bound twice with different access, so Q's buffer does.
  const bindings = [...views, mask?.tensor ?? q.tensor, out.tensor, uniform];
  dispatches.push(
    prepareDispatch(gpu, spec, bindings, Math.ceil(tiles / wg)),
  );
  return dispatches;
}
