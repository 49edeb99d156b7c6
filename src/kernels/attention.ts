/** Fused attention (shaders/attention.wgsl): out = softmax(scale * Q K^T + mask) V per
 * (batch, head), streaming over keys with a running maximum and sum, so the [Sq, Sk] score
 * matrix never exists in memory. Q, K and V are first copied into textures
 * (attention_layout.ts says where and when a copy can do it), or packed there by
 * shaders/attention_pack.wgsl.
 *
 * Operands are seen as logical [batch, heads, rows, head dim] arrays addressed through element
 * strides (`AttentionOperand`), so a caller can hand over the tensors before a head-split
 * transpose and have the output written straight into the merged [batch, rows, heads, dim]
 * layout. A causal mask known at plan time is not read at all: keys past the diagonal (plus an
 * offset) are skipped, which also halves the work. */
import {
  type BufferTextureCopy,
  createUniform,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  type PipelineSpec,
  prepareDispatch,
  type ResourceOwner,
  scratchTexture,
} from "../gpu/mod.ts";
import { EngineError } from "../util/errors.ts";
import { shapeString } from "../util/tensor.ts";
import { contiguousStrides } from "./shape.ts";
import {
  attentionCopies,
  type AttentionCopy,
  type AttentionTextureLayout,
  attentionTextureLayout,
  type Strides4,
} from "./attention_layout.ts";

export type { Strides4 };

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

/** Checks the operands' dtypes and buffers, the head dims and the K/V head grouping; returns
 * the K/V heads. */
function checkAttentionOperands(
  label: string,
  problem: AttentionProblem,
  q: AttentionOperand,
  k: AttentionOperand,
  v: AttentionOperand,
  out: AttentionOperand,
  mask: AttentionOperand | undefined,
): number {
  const { heads, dqk, dv } = problem;
  const operands = [["Q", q], ["K", k], ["V", v], ["output", out], ["mask", mask]] as const;
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
  const kvHeads = problem.kvHeads ?? heads;
  if (!(kvHeads >= 1 && heads % kvHeads === 0)) {
    throw new EngineError(`${label}: ${heads} query heads do not group over ${kvHeads} K/V heads`);
  }
  return kvHeads;
}

/** Checks that a non-empty problem has keys to attend to and fits the adapter's grid. */
function checkAttentionExtent(
  gpu: Gpu,
  label: string,
  problem: AttentionProblem,
  q: AttentionOperand,
): void {
  const { batch, heads, sk, dqk } = problem;
  if (sk === 0 || dqk === 0) {
    // Softmax over no keys is undefined; refuse rather than write NaN silently.
    throw new EngineError(
      `${label}: attention over ${sk} keys of dim ${dqk} (Q ${shapeString(q.tensor.shape)})`,
    );
  }
  const bh = batch * heads;
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (bh > maxWg) {
    throw new EngineError(`${label}: ${bh} (batch x heads) exceed the adapter's ${maxWg}`);
  }
}

/** The textures' layouts of Q, K and V. */
interface AttentionLayouts {
  readonly q: AttentionTextureLayout;
  readonly k: AttentionTextureLayout;
  readonly v: AttentionTextureLayout;
}

function attentionLayouts(
  gpu: Gpu,
  label: string,
  problem: AttentionProblem,
  kvHeads: number,
  halves: boolean,
): AttentionLayouts {
  const { batch, heads, sq, sk, dqk, dv } = problem;
  const limits = gpu.limits;
  return {
    q: attentionTextureLayout(limits, label, { batch, heads, rows: sq, cols: dqk }, halves),
    k: attentionTextureLayout(
      limits,
      label,
      { batch, heads: kvHeads, rows: sk, cols: dqk },
      halves,
    ),
    v: attentionTextureLayout(limits, label, { batch, heads: kvHeads, rows: sk, cols: dv }, halves),
  };
}

/** How the textures store values: four f32 per rgba32float texel, or eight halves per
 * rgba32uint texel (`TEXEL` is the shaders' texel component type). */
interface TexelFormat {
  readonly halves: boolean;
  readonly format: GPUTextureFormat;
  readonly texel: "u32" | "f32";
}

function texelFormat(halves: boolean): TexelFormat {
  return halves
    ? { halves, format: "rgba32uint", texel: "u32" }
    : { halves, format: "rgba32float", texel: "f32" };
}

/** What the phases after the checks share. */
interface AttentionSetup {
  readonly label: string;
  readonly problem: AttentionProblem;
  readonly kvHeads: number;
  readonly texels: TexelFormat;
  readonly layouts: AttentionLayouts;
}

/** One operand: `rows` x `cols` per head of `heads` heads. */
interface OperandJob {
  readonly role: "Q" | "K" | "V";
  readonly operand: AttentionOperand;
  readonly layout: AttentionTextureLayout;
  readonly rows: number;
  readonly cols: number;
  readonly heads: number;
}

/** Q, K and V as operand jobs. */
function operandJobs(
  setup: AttentionSetup,
  q: AttentionOperand,
  k: AttentionOperand,
  v: AttentionOperand,
): OperandJob[] {
  const { problem: { heads, sq, sk, dqk, dv }, kvHeads, layouts } = setup;
  return [
    { role: "Q", operand: q, layout: layouts.q, rows: sq, cols: dqk, heads },
    { role: "K", operand: k, layout: layouts.k, rows: sk, cols: dqk, heads: kvHeads },
    { role: "V", operand: v, layout: layouts.v, rows: sk, cols: dv, heads: kvHeads },
  ];
}

/** How one operand reaches its texture: buffer-to-texture copies run before the attention
 * dispatch, or a pack dispatch. */
interface StagedOperand {
  readonly view: GPUTextureView;
  readonly copies: readonly BufferTextureCopy[];
  readonly pack?: Dispatch;
}

/** Stages one operand in its scratch texture. Every attention of a given size shares one set of
 * operand textures: its steps [pack or copy Q, K, V, attend] are consecutive and run in order. */
function stageOperand(
  gpu: Gpu,
  owner: ResourceOwner,
  setup: AttentionSetup,
  job: OperandJob,
): StagedOperand {
  const { role, operand, layout, rows, cols, heads } = job;
  const { label, texels, problem: { batch } } = setup;
  const texture = scratchTexture(gpu, `attention ${role}`, texels.format, [
    layout.width,
    layout.height,
    layout.layers,
  ]);
  const view = texture.createView({ dimension: "2d-array" });
  const shape = { batch, heads, rows, cols };
  const copies = attentionCopies(layout, shape, operand.strides, texels.halves);
  if (copies) {
    return {
      view,
      copies: copies.map((c) => bufferTextureCopy(operand.tensor.buffer, texture, c)),
    };
  }
  const uniform = owner.own(createUniform(gpu, "attention_pack", {
    rows,
    cols,
    heads,
    head_texels: layout.headTexels,
    bands: layoutVector(layout),
    st: operand.strides,
  }, `${label} pack ${role}`));
  const pack = prepareDispatch(
    gpu,
    {
      shader: "attention_pack",
      constants: { WG_X: PACK_WG, WG_Y: PACK_WG, HALVES: texels.halves ? 1 : 0 },
      placeholders: { TEXEL: texels.texel, FORMAT: texels.format },
    },
    [operand.tensor, view, uniform],
    [Math.ceil(layout.headTexels / PACK_WG), Math.ceil(layout.texRows / PACK_WG), batch * heads],
  );
  return { view, copies: [], pack };
}

function bufferTextureCopy(
  buffer: GPUBuffer,
  texture: GPUTexture,
  c: AttentionCopy,
): BufferTextureCopy {
  return {
    source: { buffer, offset: c.offset, bytesPerRow: c.bytesPerRow },
    destination: { texture, origin: { x: c.x, y: c.y, z: c.layer } },
    size: [c.texels, c.rows, 1],
  };
}

/** The layout fields the shaders address a head's texels by: (heads across a band, bands per
 * batch entry, texel rows per head, bands per layer). */
function layoutVector(layout: AttentionTextureLayout): [number, number, number, number] {
  return [layout.across, layout.bandsPerBatch, layout.texRows, layout.bandsPerLayer];
}

/** The attention product's work: `tiles` tiles of 16 query rows (`qTiles` per head),
 * `workgroupSize` tiles per workgroup. */
interface AttendGrid {
  readonly qTiles: number;
  readonly tiles: number;
  readonly workgroupSize: number;
}

function attendGrid(problem: AttentionProblem, workgroupSize: number | undefined): AttendGrid {
  const qTiles = Math.ceil(problem.sq / 16);
  const tiles = problem.batch * problem.heads * qTiles;
  return { qTiles, tiles, workgroupSize: workgroupSize ?? attentionWorkgroup(tiles) };
}

function createAttentionUniform(
  gpu: Gpu,
  owner: ResourceOwner,
  setup: AttentionSetup,
  grid: AttendGrid,
  out: AttentionOperand,
  options: PrepareAttentionOptions,
): GPUBuffer {
  const { label, problem: { sq, sk, dqk, dv, heads }, kvHeads, layouts } = setup;
  return owner.own(createUniform(gpu, "attention", {
    sq,
    sk,
    dqk,
    dv,
    heads,
    q_tiles: grid.qTiles,
    tiles: grid.tiles,
    causal_offset: options.causalOffset ?? 0,
    q_layout: layoutVector(layouts.q),
    k_layout: layoutVector(layouts.k),
    v_layout: layoutVector(layouts.v),
    kv_heads: kvHeads,
    kv_group: heads / kvHeads,
    scale: options.scale ?? 1 / Math.sqrt(dqk),
    softcap: options.softcap ?? 0,
    qk_texels: layouts.q.headTexels,
    v_texels: layouts.v.headTexels,
    o_st: out.strides,
    m_st: options.mask?.strides ?? [0, 0, 0, 0],
  }, label));
}

/** The attention product's pipeline: a variant per mask kind, causality, output dtype, texel
 * format, empty-row rule and softcap. */
function attendSpec(
  setup: AttentionSetup,
  grid: AttendGrid,
  out: AttentionOperand,
  options: PrepareAttentionOptions,
): PipelineSpec {
  const mask = options.mask;
  return {
    shader: "attention",
    entryPoint: "main",
    constants: {
      WG: grid.workgroupSize,
      HAS_MASK: mask ? 1 : 0,
      MASK_BOOL: mask?.tensor.dtype === "bool" ? 1 : 0,
      CAUSAL: options.causalOffset !== undefined ? 1 : 0,
      ROUND_F16: out.tensor.dtype === "float16" ? 1 : 0,
      HALVES: setup.texels.halves ? 1 : 0,
      EMPTY_ROWS_ZERO: options.emptyRowsZero ? 1 : 0,
      SOFTCAP: (options.softcap ?? 0) > 0 ? 1 : 0,
    },
    placeholders: {
      DV4: Math.ceil(setup.problem.dv / 4),
      TEXEL: setup.texels.texel,
    },
  };
}

/** Prepares `out = softmax(scale * Q K^T + mask) V` for `problem`. Float tensors only; the output
 * must not share a buffer with an input. Returns the dispatches (none when empty): pack Q, K and
 * V, then attend. */
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
  const kvHeads = checkAttentionOperands(label, problem, q, k, v, out, options.mask);
  if (problem.batch * problem.heads * problem.sq * problem.dv === 0) return [];
  checkAttentionExtent(gpu, label, problem, q);
  const texels = texelFormat(!!options.halves);
  const layouts = attentionLayouts(gpu, label, problem, kvHeads, texels.halves);
  const setup: AttentionSetup = { label, problem, kvHeads, texels, layouts };
  const staged = operandJobs(setup, q, k, v).map((job) => stageOperand(gpu, owner, setup, job));
  const grid = attendGrid(problem, options.workgroupSize);
  const uniform = createAttentionUniform(gpu, owner, setup, grid, out, options);
  // Without a mask, the output's buffer stands in for the (unread) mask binding... which may
  // not be bound twice with different access, so Q's buffer does.
  const maskBinding = options.mask?.tensor ?? q.tensor;
  const bindings = [...staged.map((s) => s.view), maskBinding, out.tensor, uniform];
  const workgroups = Math.ceil(grid.tiles / grid.workgroupSize);
  const attend = prepareDispatch(gpu, attendSpec(setup, grid, out, options), bindings, workgroups);
  const copies = staged.flatMap((s) => s.copies);
  return [
    ...staged.flatMap((s) => s.pack ? [s.pack] : []),
    copies.length > 0 ? { ...attend, copiesBefore: copies } : attend,
  ];
}
