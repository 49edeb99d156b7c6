/** GPU matrix multiply: out[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * bias[b]).
 *
 * One entry point, `prepareMatmul`, for the ONNX MatMul/Gemm ops, the models and the AMU trainer.
 * Batch axes broadcast numpy-style, op() transposes without a copy (weights stored [N, K] as in
 * PyTorch Linear are read in place with `transB`), and the bias (Gemm's C, a Linear bias [N])
 * broadcasts to [..., M, N] and is added in the same pass, optionally followed by an activation.
 *
 * Kernels come in families of variants (see MATMUL_VARIANTS):
 *  - vec4 (`shaders/matmul_vec4.wgsl`): register blocks of 4x4 to 16x16 outputs per invocation,
 *    operands read as vec4 along their contiguous axis where aligned;
 *  - texture (`shaders/matmul_texture.wgsl`): operands packed into rgba32float (or half-precision
 *    rgba32uint) textures (`shaders/matmul_texture_pack.wgsl`), then 16x16 register blocks; the
 *    fastest on llvmpipe;
 *  - shared (`shaders/matmul_tiled.wgsl`): shared-memory tiles (64x64, 128x128, 32x64, 64x32)
 *    for hardware GPUs, operands staged as vec4 where aligned; the `shared-f16-*` variants
 *    stage halves (shader-f16 only) and read constant operands from float16 copies;
 *  - scalar (`shaders/matmul.wgsl`): strided scalar loads, the fallback for buffers whose size
 *    is not a multiple of 16 bytes.
 * The variant of a problem is, in order: the one requested in the options; the one measured
 * fastest on this adapter (`variantCache`, filled by `tuneMatmul` in matmul_tune.ts, e.g. when a
 * model is planned with kernel tuning, or loaded from `results/variant-cache.json`); else the
 * heuristic `chooseMatmulVariant`. Every variant computes the same float32 products with f32
 * accumulation but sums in a different order, so a measured choice can change results at
 * rounding level (~1e-7 relative), never beyond the kernels' tested tolerance; half-precision
 * variants are only eligible when the caller allows float16 operands. `planMatmul` tells what
 * `prepareMatmul` will run and why. */
import { type CpuTensor, f32ToF16Bits, shapeString, sizeOf } from "../util/tensor.ts";
import {
  createStorageBuffer,
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
import { type MatmulActivation, type MatmulOptions, matmulShape } from "./matmul_shape.ts";
import { broadcastStrides, contiguousStrides } from "./shape.ts";
import { packTextureOperand } from "./matmul_pack.ts";
import { problemKey, type VariantCache, variantCache } from "./variants.ts";

export type { MatmulActivation, MatmulOptions } from "./matmul_shape.ts";

/** The kernel families: strided scalar loads (any buffer), vec4 loads (buffers sized in
 * 16-byte units), shared-memory tiles (GPUs), operands packed into textures (llvmpipe). */
export type MatmulFamily = "scalar" | "vec4" | "shared" | "texture";

/** How one kernel variant is built and how much output one workgroup covers. */
export interface MatmulVariant {
  readonly name: string;
  readonly family: MatmulFamily;
  readonly entryPoint: string;
  /** Output rows and columns computed by one workgroup. */
  readonly tileM: number;
  readonly tileN: number;
  readonly constants: Readonly<Record<string, number>>;
  readonly placeholders?: Readonly<Record<string, number | string>>;
  /** Operands stored as halves with f32 accumulation: eight per rgba32uint texel (texture
   * family, about 1.15-1.3x the speed of float32 textures on llvmpipe) or f16 workgroup tiles
   * (shared family). Rounds A and B to float16 (at most 2^-11 relative error per value; exact
   * for float16 data), so only eligible where the problem allows half-precision operands. */
  readonly halves?: boolean;
  /** The kernel is compiled with `enable f16;`: it runs only on a device with `shader-f16`. */
  readonly needsShaderF16?: boolean;
  /** Workgroup memory the kernel declares, bytes; a variant over the device's
   * `maxComputeWorkgroupStorageSize` cannot run there. */
  readonly workgroupBytes?: number;
}

const FAMILY_SHADER: Record<MatmulFamily, string> = {
  scalar: "matmul",
  vec4: "matmul_vec4",
  shared: "matmul_tiled",
  texture: "matmul_texture",
};

/** A variant whose invocations each compute a `block` x `block` square of outputs, in 8 x 8
 * workgroups (64 invocations: llvmpipe runs smaller workgroups at half speed; 16 x 4 and 64 x 1
 * measured slower there). */
function blocked(family: MatmulFamily, block: number): MatmulVariant {
  const scalar = family === "scalar";
  const wgX = 8, wgY = 8;
  return {
    name: `${family}-${block}x${block}`,
    family,
    entryPoint: scalar ? "main" : `main_${block}x${block}`,
    tileM: block * wgY,
    tileN: block * wgX,
    constants: { WG_X: wgX, WG_Y: wgY },
    // The scalar kernel sizes its register arrays by placeholders; the others write blocks out.
    placeholders: scalar ? { TM: block, TN: block } : undefined,
  };
}

/** A 16x16-block variant in 16 x 4 workgroups: tiles of 256 rows x 64 columns. */
function narrow(v: MatmulVariant): MatmulVariant {
  return {
    ...v,
    name: `${v.name}-n64`,
    tileM: 16 * 16,
    tileN: 16 * 4,
    constants: { WG_X: 4, WG_Y: 16 },
  };
}

/** A shared-memory tile (shaders/matmul_tiled.wgsl): WG_X x WG_Y invocations computing TM x TN
 * outputs each (multiples of 4), staging TILE_K values of k per barrier; `halves`: f16 tiles
 * (`enable f16;`), half the workgroup memory per value and a constant operand uploaded as
 * float16. Named by its output tile, rows x columns (one number when square). */
function sharedTile(
  tm: number,
  tn: number,
  wgX: number,
  wgY: number,
  tileK: number,
  halves = false,
): MatmulVariant {
  const tileM = tm * wgY, tileN = tn * wgX;
  // Tiles are k-major vec4 rows of BM / 4 (BN / 4) plus one vec4 of padding (see the shader).
  const vecBytes = halves ? 8 : 16;
  return {
    name: `shared-${halves ? "f16-" : ""}${tileM === tileN ? tileM : `${tileM}x${tileN}`}`,
    family: "shared",
    entryPoint: "main",
    tileM,
    tileN,
    constants: { WG_X: wgX, WG_Y: wgY, TILE_K: tileK, HALVES: halves ? 1 : 0 },
    placeholders: {
      TM: tm,
      TN: tn,
      T: halves ? "f16" : "f32",
      ENABLE: halves ? "enable f16;" : "",
    },
    workgroupBytes: tileK * (tileM / 4 + 1 + tileN / 4 + 1) * vecBytes,
    ...(halves ? { halves: true, needsShaderF16: true } : {}),
  };
}

/** 16x16 blocks from half-precision textures (eight halves per texel, f32 accumulation). */
const TEXTURE_F16: MatmulVariant = {
  ...blocked("texture", 16),
  name: "texture-f16-16x16",
  entryPoint: "main_f16_16x16",
  halves: true,
};

/** Every variant, by name. */
export const MATMUL_VARIANTS: Readonly<Record<string, MatmulVariant>> = Object.fromEntries(
  [
    blocked("scalar", 8),
    blocked("vec4", 4),
    blocked("vec4", 8),
    blocked("vec4", 16),
    // Shared-memory tiles for hardware GPUs, the classic shapes, in 8.25-13 KiB of workgroup
    // memory (the WebGPU default limit is 16 KiB). 64x64 from 4x4 outputs per invocation;
    // 128x128 from 8x8, half the workgroup-memory reads per multiply-add and half the global
    // reads per output, for products large enough to fill a GPU with such tiles; 32x64 and
    // 64x32 for products with few rows (a batch-1 Linear layer, M = 1..32) or few columns, in
    // 128 invocations with k staged 32 deep (such products are long in k for their tile).
    sharedTile(4, 4, 16, 16, 16),
    sharedTile(8, 8, 16, 16, 8),
    sharedTile(4, 4, 16, 8, 32),
    sharedTile(4, 4, 8, 16, 32),
    // Half-precision tiles (shader-f16): k twice as deep per barrier in the same memory.
    sharedTile(4, 4, 16, 16, 32, true),
    sharedTile(8, 8, 16, 16, 16, true),
    blocked("texture", 8),
    blocked("texture", 16),
    TEXTURE_F16,
    // Workgroups of 16 x 4 blocks (256 rows x 64 columns) for narrow products, whose columns
    // would mostly be padding in a 128-wide tile: a 2048x512 pointwise convolution over a 7x7
    // plane (49 columns) fills 77% of a 64-wide tile and 38% of a 128-wide one.
    narrow(blocked("texture", 16)),
    narrow(TEXTURE_F16),
  ].map((v) => [v.name, v]),
);

export type MatmulVariantName = string;

/** The problem a variant is chosen for (after batch axes are folded into M). */
export interface MatmulProblem {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly batch: number;
  /** Operands may be rounded to float16 (requested, or they hold float16 values already). */
  readonly halvesAllowed?: boolean;
  /** A / B is a constant (a weight, see PrepareMatmulOptions.constants): the texture family
   * packs it once instead of on every run, which changes which variant is fastest. */
  readonly constantA?: boolean;
  readonly constantB?: boolean;
}

/** Kernel name of measured matmul choices in a VariantCache. */
export const MATMUL_KERNEL = "matmul";

/** Cache key of a problem: batch x M x K x N, `f16` when operands may be stored as halves
 * (a different set of candidates), `ca` / `cb` for a constant A / B. */
export function matmulProblemKey(p: MatmulProblem): string {
  return problemKey(
    p.batch,
    p.m,
    p.k,
    p.n,
    ...(p.halvesAllowed ? ["f16"] : []),
    ...(p.constantA ? ["ca"] : []),
    ...(p.constantB ? ["cb"] : []),
  );
}

/** The problem `planMatmul` chooses a variant for, from operand shapes (batch axes folded as the
 * kernels fold them). `halvesAllowed`: precision "f16" requested, or both operands float16. */
export function matmulProblem(
  aShape: readonly number[],
  bShape: readonly number[],
  options: { transA?: boolean; transB?: boolean; biasShape?: readonly number[] } = {},
  halvesAllowed = false,
  constants: { a?: boolean; b?: boolean } = {},
): MatmulProblem {
  const l = matmulLayout(aShape, bShape, options.biasShape, !!options.transA, !!options.transB);
  return {
    m: l.m,
    n: l.n,
    k: l.k,
    batch: sizeOf(l.batchShape),
    halvesAllowed,
    constantA: !!constants.a,
    constantB: !!constants.b,
  };
}

/** Why `variant` cannot run on this device (undefined when it can): a kernel that needs
 * `shader-f16` on a device without it, or more workgroup memory or invocations than the
 * device allows. Reads only `hasF16` and `limits`. */
export function matmulVariantRefusal(gpu: Gpu, variant: MatmulVariant): string | undefined {
  if (variant.needsShaderF16 && !gpu.hasF16) {
    return `matmul variant '${variant.name}' needs the shader-f16 feature, which this device ` +
      `does not have`;
  }
  const bytes = variant.workgroupBytes ?? 0;
  const maxBytes = gpu.limits.maxComputeWorkgroupStorageSize;
  if (bytes > maxBytes) {
    return `matmul variant '${variant.name}' needs ${bytes} bytes of workgroup memory, over ` +
      `this device's maxComputeWorkgroupStorageSize (${maxBytes})`;
  }
  const { WG_X = 1, WG_Y = 1 } = variant.constants;
  const maxInvocations = gpu.limits.maxComputeInvocationsPerWorkgroup;
  if (WG_X * WG_Y > maxInvocations) {
    return `matmul variant '${variant.name}' needs ${WG_X * WG_Y} invocations per workgroup, ` +
      `over this device's maxComputeInvocationsPerWorkgroup (${maxInvocations})`;
  }
  return undefined;
}

/** The measured choice cached for this problem on this adapter, if any and usable: an unknown
 * name (a cache written by another version), a half-precision variant for a problem that does
 * not allow halves, or a variant this device cannot run (a corrupt entry) is ignored. */
export function cachedMatmulVariant(
  gpu: Gpu,
  problem: MatmulProblem,
  cache: VariantCache = variantCache,
): MatmulVariant | undefined {
  const name = cache.get(gpu, MATMUL_KERNEL, matmulProblemKey(problem));
  // hasOwn: names like "constructor" from a hand-edited file are not variants.
  const v = name !== undefined && Object.hasOwn(MATMUL_VARIANTS, name)
    ? MATMUL_VARIANTS[name]
    : undefined;
  return v && (!v.halves || problem.halvesAllowed) && matmulVariantRefusal(gpu, v) === undefined
    ? v
    : undefined;
}

/** Default variant choice when nothing was measured (see cachedMatmulVariant):
 * on llvmpipe, operands in textures with large register blocks (loads are the cost there),
 * narrower tiles or smaller blocks when the matrix cannot fill them; on GPUs, float32
 * shared-memory tiles shaped to the product (the half-precision tiles only where measured
 * faster: they trade conversions for bandwidth, which no heuristic here can weigh). Variants
 * that cannot run a given problem are skipped by `prepareMatmul` in favour of the next
 * fallback. */
export function chooseMatmulVariant(gpu: Gpu, problem: MatmulProblem): MatmulVariant {
  const { m, n } = problem;
  if (gpu.summary.isLlvmpipe) {
    // Short M too (a 77-token text layer: 3x the vec4 kernel, measured), padding and all.
    if (m >= 32 && n >= 96) {
      return MATMUL_VARIANTS[problem.halvesAllowed ? "texture-f16-16x16" : "texture-16x16"];
    }
    if (m >= 256 && n >= 32) {
      return MATMUL_VARIANTS[
        problem.halvesAllowed ? "texture-f16-16x16-n64" : "texture-16x16-n64"
      ];
    }
    if (m >= 32 && n >= 32) return MATMUL_VARIANTS["vec4-8x8"];
    return MATMUL_VARIANTS["vec4-4x4"];
  }
  if (m * n < 64 * 64) return MATMUL_VARIANTS["vec4-4x4"];
  // Few rows (a batch-1 Linear layer) or few columns: most of a 64-wide tile would be padding.
  if (m <= 32) return MATMUL_VARIANTS["shared-32x64"];
  if (n <= 32) return MATMUL_VARIANTS["shared-64x32"];
  // 128x128 tiles once they still number about two per compute unit of a large GPU (~100-130
  // units): a half-empty GPU costs more than the smaller tile's extra workgroup-memory reads.
  const tiles128 = Math.ceil(m / 128) * Math.ceil(n / 128) * problem.batch;
  return MATMUL_VARIANTS[tiles128 >= 256 ? "shared-128" : "shared-64"];
}

export interface PrepareMatmulOptions extends MatmulOptions {
  /** Added as beta * bias, broadcast (right-aligned) to the output shape [...batch, M, N]. */
  bias?: GpuTensor;
  /** "f16" lets the kernel store A and B as float16 (f32 accumulation) where that is faster
   * (default "f32": exact float32 operands). Operands of dtype float16 always allow it. */
  precision?: "f32" | "f16";
  /** Force a variant (tests, benchmarks); default: the measured choice in `variantCache`, else
   * `chooseMatmulVariant`. */
  variant?: MatmulVariant | MatmulVariantName;
  /** Measured choices to consult (default: the process-wide `variantCache`). */
  variantCache?: VariantCache;
  /** Names the operation in errors (an ONNX node, a model layer). */
  label?: string;
  /** Host copies of operands whose contents never change (weights), equal to what the GPU
   * tensors hold. The texture family then packs them once, here, into a texture that `owner`
   * keeps, instead of on every run; other families read the GPU tensors and ignore these. */
  constants?: { a?: CpuTensor; b?: CpuTensor };
}

/** Batch axes after folding: at most this many remain distinct (uniform slots 2 x vec4). */
const MAX_BATCH_AXES = 8;

/** Element strides of the operands along the output's axes, folded as far as possible. */
export interface MatmulLayout {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** Remaining batch axes (innermost last) and each operand's element stride along them. */
  readonly batchShape: readonly number[];
  readonly aBatch: readonly number[];
  readonly bBatch: readonly number[];
  readonly biasBatch: readonly number[];
  readonly aRow: number;
  readonly aCol: number;
  readonly bRow: number;
  readonly bCol: number;
  readonly biasRow: number;
  readonly biasCol: number;
  readonly outShape: readonly number[];
}

/** Derives strides for op(A) @ op(B) (+ bias) and folds axes: batch axes that the operands
 * traverse contiguously merge into M (a Linear layer on [B, T, C] becomes one [B*T, C] matmul),
 * batch axes of size 1 vanish and adjacent batch axes merge when every operand allows it. */
export function matmulLayout(
  aShape: readonly number[],
  bShape: readonly number[],
  biasShape: readonly number[] | undefined,
  transA: boolean,
  transB: boolean,
): MatmulLayout {
  const s = matmulShape(aShape, bShape, transA, transB);
  const { k, n } = s;
  const aMat = s.m * k, bMat = k * n;
  const aBatchS = broadcastStrides(aShape.slice(0, -2), s.batch).map((x) => x * aMat);
  const bBatchS = broadcastStrides(bShape.slice(0, -2), s.batch).map((x) => x * bMat);
  const biasS = biasShape ? broadcastStrides(biasShape, s.out) : new Array(s.out.length).fill(0);
  const outS = contiguousStrides(s.batch).map((x) => x * s.m * n);
  // Axis list: batch axes then M; each axis carries its size and four strides (A, B, bias, out).
  interface Axis {
    size: number;
    st: [number, number, number, number];
  }
  const axes: Axis[] = s.batch.map((size, d) => ({
    size,
    st: [aBatchS[d], bBatchS[d], biasS[d], outS[d]],
  }));
  const aRow = transA ? 1 : k;
  let mAxis: Axis = { size: s.m, st: [aRow, 0, biasS[s.out.length - 2], n] };
  const mergeable = (outer: Axis, inner: Axis) =>
    outer.st.every((st, i) => st === inner.size * inner.st[i]);
  const kept = axes.filter((ax) => ax.size !== 1);
  // Fold trailing batch axes into M while every operand walks them contiguously.
  while (kept.length > 0 && s.m > 0 && mergeable(kept[kept.length - 1], mAxis)) {
    const outer = kept.pop()!;
    mAxis = { size: outer.size * mAxis.size, st: mAxis.st };
  }
  const merged: Axis[] = [];
  for (const ax of kept) {
    const last = merged[merged.length - 1];
    if (last && mergeable(last, ax)) {
      merged[merged.length - 1] = { size: last.size * ax.size, st: ax.st };
    } else merged.push({ size: ax.size, st: [...ax.st] });
  }
  return {
    m: mAxis.size,
    n,
    k,
    batchShape: merged.map((ax) => ax.size),
    aBatch: merged.map((ax) => ax.st[0]),
    bBatch: merged.map((ax) => ax.st[1]),
    biasBatch: merged.map((ax) => ax.st[2]),
    aRow,
    aCol: transA ? s.m : 1,
    bRow: transB ? 1 : n,
    bCol: transB ? k : 1,
    biasRow: mAxis.st[2],
    biasCol: biasS[s.out.length - 1],
    outShape: s.out,
  };
}

const ACTIVATION_CODES: Record<MatmulActivation, number> = {
  none: 0,
  relu: 1,
  gelu: 2,
  quick_gelu: 3,
};

/** What `prepareMatmul` will run: the folded layout, the variant (after fallbacks) and the
 * workgroup grid. Validates shapes, dtypes and limits, naming `options.label` in errors. */
export interface MatmulPlan {
  readonly layout: MatmulLayout;
  readonly problem: MatmulProblem;
  readonly variant: MatmulVariant;
  /** Where the variant came from (before fallbacks): the options, the cache of measured
   * choices, or the heuristic. */
  readonly choice: "requested" | "measured" | "default";
  readonly batchCount: number;
  readonly workgroups: [number, number, number];
}

export function planMatmul(
  gpu: Gpu,
  a: GpuTensor,
  b: GpuTensor,
  out: GpuTensor,
  options: PrepareMatmulOptions = {},
): MatmulPlan {
  const { transA = false, transB = false, bias } = options;
  const label = options.label ?? "matmul";
  let layout: MatmulLayout;
  try {
    layout = matmulLayout(a.shape, b.shape, bias?.shape, transA, transB);
  } catch (e) {
    const what = bias ? ` with bias ${shapeString(bias.shape)}` : "";
    throw new EngineError(`${label}: ${(e as Error).message}${what}`);
  }
  for (const [name, t] of [["A", a], ["B", b], ["bias", bias], ["output", out]] as const) {
    if (t && t.dtype !== "float32" && t.dtype !== "float16") {
      throw new EngineError(`${label}: ${name} is ${t.dtype}; the GPU matmul takes float tensors`);
    }
  }
  if (
    out.shape.length !== layout.outShape.length ||
    out.shape.some((d, i) => d !== layout.outShape[i])
  ) {
    throw new EngineError(
      `${label}: output is ${shapeString(out.shape)}, expected ${shapeString(layout.outShape)}`,
    );
  }
  if (out.buffer === a.buffer || out.buffer === b.buffer || out.buffer === bias?.buffer) {
    throw new EngineError(`${label}: the output must not share a buffer with an input`);
  }
  if (layout.batchShape.length > MAX_BATCH_AXES) {
    throw new EngineError(`${label}: more than ${MAX_BATCH_AXES} independent batch axes`);
  }
  const batchCount = sizeOf(layout.batchShape);
  const variantOpt = options.variant;
  const requested = typeof variantOpt === "string" ? MATMUL_VARIANTS[variantOpt] : variantOpt;
  if (variantOpt !== undefined && !requested) {
    throw new EngineError(`${label}: unknown matmul variant '${variantOpt}'`);
  }
  const problem: MatmulProblem = {
    m: layout.m,
    n: layout.n,
    k: layout.k,
    batch: batchCount,
    halvesAllowed: options.precision === "f16" ||
      (a.dtype === "float16" && b.dtype === "float16"),
    constantA: options.constants?.a !== undefined,
    constantB: options.constants?.b !== undefined,
  };
  const refusal = requested && matmulVariantRefusal(gpu, requested);
  if (refusal) throw new EngineError(`${label}: ${refusal}`);
  const measured = requested ? undefined : cachedMatmulVariant(gpu, problem, options.variantCache);
  const choice = requested ? "requested" : measured ? "measured" : "default";
  const variant = fallbackVariant(
    gpu,
    requested ?? measured ?? chooseMatmulVariant(gpu, problem),
    layout,
    batchCount,
    [a, b],
  );
  const workgroups: [number, number, number] = [
    Math.ceil(layout.n / variant.tileN),
    Math.ceil(layout.m / variant.tileM),
    batchCount,
  ];
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (workgroups.some((w) => w > maxWg)) {
    throw new EngineError(
      `${label}: ${workgroups.join("x")} workgroups exceed this adapter's limit of ${maxWg} per ` +
        `dimension (output ${shapeString(out.shape)})`,
    );
  }
  return { layout, problem, variant, choice, batchCount, workgroups };
}

/** How matmul_vec4.wgsl reads an operand: 0 / 1 as vec4 along its first / second matrix axis
 * (A: k / m, B: n / k), 2 one value at a time. Vec4 needs that axis contiguous and every other
 * stride, and the axis length, divisible by 4 (whole, aligned vec4 that never straddle rows). */
function vec4Mode(
  contiguousFirst: boolean,
  contiguousSecond: boolean,
  otherStride: number,
  batchStrides: readonly number[],
  axisLength: number,
): number {
  const aligned = otherStride % 4 === 0 && batchStrides.every((st) => st % 4 === 0) &&
    axisLength % 4 === 0;
  if (!aligned) return 2;
  if (contiguousFirst) return 0;
  if (contiguousSecond) return 1;
  return 2;
}

/** Prepares `out = act(alpha * op(a) @ op(b) + beta * bias)`. Operands have rank >= 2 (reshape
 * 1-D operands first), float dtypes, and `out` must have the exact output shape and must not
 * share a buffer with an input. Returns the dispatches (none for an empty output). */
export function prepareMatmul(
  gpu: Gpu,
  owner: ResourceOwner,
  a: GpuTensor,
  b: GpuTensor,
  out: GpuTensor,
  options: PrepareMatmulOptions = {},
): Dispatch[] {
  const { alpha = 1, beta = 1, bias } = options;
  const label = options.label ?? "matmul";
  const { layout, variant, batchCount, workgroups } = planMatmul(gpu, a, b, out, options);
  if (sizeOf(out.shape) === 0) return [];
  const constants: Record<string, number> = {
    ...variant.constants,
    HAS_BIAS: bias ? 1 : 0,
    ACT: ACTIVATION_CODES[options.activation ?? "none"],
    ROUND_F16: out.dtype === "float16" ? 1 : 0,
  };
  const spec: PipelineSpec & { constants: Record<string, number> } = {
    shader: FAMILY_SHADER[variant.family],
    entryPoint: variant.entryPoint,
    constants,
    placeholders: variant.placeholders,
  };
  // Without a bias, A's buffer stands in for the (unread) bias binding.
  const biasBinding = bias ?? a.buffer;
  if (variant.family === "texture") {
    return prepareTextureMatmul(gpu, owner, a, b, out, biasBinding, layout, variant, spec, {
      alpha,
      beta,
      batchCount,
      workgroups,
      label,
      constants: options.constants ?? {},
    });
  }
  const operands: [GpuTensor | GPUBuffer, GpuTensor | GPUBuffer] = [a, b];
  if (variant.family === "vec4") {
    const { aRow, aCol, bRow, bCol } = layout;
    // A: along k (mode 0) needs K % 4, along m (mode 1) M % 4; B: along n N % 4, along k K % 4.
    constants.A_MODE = aCol === 1
      ? vec4Mode(true, false, aRow, layout.aBatch, layout.k)
      : vec4Mode(false, aRow === 1, aCol, layout.aBatch, layout.m);
    constants.B_MODE = bCol === 1
      ? vec4Mode(true, false, bRow, layout.bBatch, layout.n)
      : vec4Mode(false, bRow === 1, bCol, layout.bBatch, layout.k);
  }
  if (variant.family === "shared") {
    const { aRow, aCol, bRow, bCol, m, n, k } = layout;
    const placeholders: Record<string, number | string> = { ...variant.placeholders };
    const staged = [
      ["A", a, options.constants?.a, stagingMode(aRow, aCol, layout.aBatch, m, k)],
      ["B", b, options.constants?.b, stagingMode(bCol, bRow, layout.bBatch, n, k)],
    ] as const;
    staged.forEach(([name, t, host, mode], i) => {
      constants[`${name}_MODE`] = mode;
      // Half-precision tiles read a weight from a float16 copy made once here: half the bytes.
      const half = variant.needsShaderF16 && host !== undefined;
      if (half) operands[i] = halfOperand(gpu, owner, t, host, label, name);
      const scalar = half ? "f16" : "f32";
      placeholders[`${name}_ELEM`] = mode === 2 ? scalar : `vec4<${scalar}>`;
    });
    spec.placeholders = placeholders;
  }
  // The scalar, vec4 and shared families declare the same struct Params.
  const uniform = owner.own(createUniform(gpu, spec.shader, {
    M: layout.m,
    N: layout.n,
    K: layout.k,
    batch_rank: layout.batchShape.length,
    a_row: layout.aRow,
    a_col: layout.aCol,
    b_row: layout.bRow,
    b_col: layout.bCol,
    bias_row: layout.biasRow,
    bias_col: layout.biasCol,
    alpha,
    beta,
    batch_shape: layout.batchShape,
    a_batch: layout.aBatch,
    b_batch: layout.bBatch,
    bias_batch: layout.biasBatch,
  }, label));
  return [prepareDispatch(gpu, spec, [...operands, biasBinding, out, uniform], workgroups)];
}

/** How matmul_tiled.wgsl stages an operand whose element (r, k) (r: m of A, n of B) is at
 * `r * rs + k * ks`: 0 as vec4 along k, 1 as vec4 along r, 2 one value at a time. A vec4 needs
 * its axis contiguous and that axis' length and every other stride divisible by 4 (see
 * vec4Mode); values one at a time are bound as scalars, so a buffer of any size works. */
function stagingMode(
  rs: number,
  ks: number,
  batchStrides: readonly number[],
  rows: number,
  k: number,
): number {
  if (ks === 1 && vec4Mode(true, false, rs, batchStrides, k) === 0) return 0;
  if (rs === 1 && vec4Mode(true, false, ks, batchStrides, rows) === 0) return 1;
  return 2;
}

/** A float16 storage-buffer copy of a constant operand (same layout as `t`), which `owner`
 * keeps: what the half-precision tiles would round it to anyway, in half the bytes. */
function halfOperand(
  gpu: Gpu,
  owner: ResourceOwner,
  t: GpuTensor,
  host: CpuTensor,
  label: string,
  name: string,
): GPUBuffer {
  if (sizeOf(host.shape) !== sizeOf(t.shape)) {
    throw new EngineError(
      `${label}: constant ${name} has ${sizeOf(host.shape)} values for a ` +
        `${shapeString(t.shape)} operand`,
    );
  }
  const bits = Uint16Array.from(host.data, (x) => f32ToF16Bits(x));
  return owner.own(createStorageBuffer(gpu, bits, `${label} constant ${name} (float16)`));
}

/** The variant to run: the requested one when it can run this problem, else the closest that
 * can (textures too small or too few layers -> vec4 loads; buffers not sized in 16-byte units
 * -> scalar loads). */
function fallbackVariant(
  gpu: Gpu,
  variant: MatmulVariant,
  layout: MatmulLayout,
  batchCount: number,
  operands: readonly GpuTensor[],
): MatmulVariant {
  let v = variant;
  if (v.family === "texture") {
    const maxSide = gpu.limits.maxTextureDimension2D;
    const { a, b } = textureSizes(layout, v);
    const fits = Math.max(a.width, a.height, b.width, b.height) <= maxSide &&
      batchCount <= gpu.limits.maxTextureArrayLayers;
    if (!fits) v = MATMUL_VARIANTS["vec4-8x8"];
  }
  if (v.family === "vec4" && operands.some((t) => t.buffer.size % 16 !== 0)) {
    v = MATMUL_VARIANTS["scalar-8x8"];
  }
  return v;
}

function roundUp(x: number, step: number): number {
  return Math.ceil(x / step) * step;
}

/** Texture sizes of the texture family: A's texel (k / per, m), B's texel (n / per, k), padded
 * to whole workgroup tiles and texels, so the multiply never reads outside. */
function textureSizes(layout: MatmulLayout, variant: MatmulVariant) {
  const per = variant.halves ? 8 : 4;
  const kTexels = Math.ceil(layout.k / per);
  return {
    per,
    kTexels,
    a: { width: kTexels, height: roundUp(layout.m, variant.tileM) },
    b: { width: roundUp(layout.n, variant.tileN) / per, height: per * kTexels },
  };
}

interface TextureMatmulArgs {
  alpha: number;
  beta: number;
  batchCount: number;
  workgroups: [number, number, number];
  label: string;
  constants: { a?: CpuTensor; b?: CpuTensor };
}

/** Texture variant: pack A and B (strided, any transpose / broadcast) into zero-padded texture
 * arrays, one layer per output batch entry (one layer for an operand broadcast over the batch),
 * then multiply. Operands given as host constants are packed once, here, into textures `owner`
 * keeps; the others are packed by a dispatch on every run (their contents may change) into
 * shared scratch textures (see scratchTexture). */
function prepareTextureMatmul(
  gpu: Gpu,
  owner: ResourceOwner,
  a: GpuTensor,
  b: GpuTensor,
  out: GpuTensor,
  biasBinding: GpuTensor | GPUBuffer,
  layout: MatmulLayout,
  variant: MatmulVariant,
  spec: PipelineSpec,
  args: TextureMatmulArgs,
): Dispatch[] {
  const { m, n, k } = layout;
  const sizes = textureSizes(layout, variant);
  const format = variant.halves ? "rgba32uint" : "rgba32float";
  const dispatches: Dispatch[] = [];
  const views: GPUTextureView[] = [];
  const shared: boolean[] = [];
  for (
    const [name, src, host, size, rows, cols, rowStride, colStride, batchStrides] of [
      ["A", a, args.constants.a, sizes.a, m, k, layout.aRow, layout.aCol, layout.aBatch],
      ["B", b, args.constants.b, sizes.b, k, n, layout.bRow, layout.bCol, layout.bBatch],
    ] as const
  ) {
    // Broadcast over the batch (a weight): one layer that every batch entry reads.
    const oneLayer = batchStrides.every((st) => st === 0);
    const layers = oneLayer ? 1 : args.batchCount;
    shared.push(oneLayer && args.batchCount > 1);
    if (host) {
      if (sizeOf(host.shape) !== sizeOf(src.shape)) {
        throw new EngineError(
          `${args.label}: constant ${name} has ${sizeOf(host.shape)} values for a ` +
            `${shapeString(src.shape)} operand`,
        );
      }
      const texture = owner.own(gpu.device.createTexture({
        label: `${args.label} constant ${name}`,
        size: [size.width, size.height, layers],
        format,
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
      }));
      const data = packTextureOperand(host.data, {
        width: size.width,
        height: size.height,
        layers,
        rows,
        cols,
        rowStride,
        colStride,
        batchShape: layout.batchShape,
        batchStrides,
        halves: !!variant.halves,
      });
      gpu.device.queue.writeTexture(
        { texture },
        data,
        { bytesPerRow: size.width * 16, rowsPerImage: size.height },
        [size.width, size.height, layers],
      );
      views.push(texture.createView({ dimension: "2d-array" }));
      continue;
    }
    // A matmul's dispatches [pack A, pack B, multiply] are consecutive and run in order, so every
    // matmul of a given size shares one pair (A and B never share: the purpose names the role).
    const texture = scratchTexture(gpu, `matmul operand ${name}`, format, [
      size.width,
      size.height,
      layers,
    ]);
    const uniform = owner.own(createUniform(gpu, "matmul_texture_pack", {
      width: size.width,
      height: size.height,
      layers,
      batch_rank: layout.batchShape.length,
      rows,
      cols,
      row_stride: rowStride,
      col_stride: colStride,
      batch_shape: layout.batchShape,
      batch_strides: batchStrides,
    }, `${args.label} pack ${name}`));
    dispatches.push(prepareDispatch(
      gpu,
      {
        shader: "matmul_texture_pack",
        entryPoint: variant.halves ? "pack_f16" : "pack",
        constants: { WG_X: PACK_WG_X, WG_Y: PACK_WG_Y },
      },
      [src, texture.createView({ dimension: "2d-array" }), uniform],
      [Math.ceil(size.width / PACK_WG_X), Math.ceil(size.height / PACK_WG_Y), layers],
    ));
    views.push(texture.createView({ dimension: "2d-array" }));
  }
  const uniform = owner.own(createUniform(gpu, spec.shader, {
    M: m,
    N: n,
    K_TEXELS: sizes.kTexels,
    batch_rank: layout.batchShape.length,
    bias_row: layout.biasRow,
    bias_col: layout.biasCol,
    alpha: args.alpha,
    beta: args.beta,
    batch_shape: layout.batchShape,
    bias_batch: layout.biasBatch,
  }, args.label));
  const multiply = {
    ...spec,
    // Rows of a whole number of vec4 are stored a vec4 at a time (see the shader's `_v4`).
    entryPoint: n % 4 === 0 ? `${spec.entryPoint}_v4` : spec.entryPoint,
    constants: { ...spec.constants, A_SHARED: shared[0] ? 1 : 0, B_SHARED: shared[1] ? 1 : 0 },
  };
  dispatches.push(
    prepareDispatch(
      gpu,
      multiply,
      [views[0], views[1], biasBinding, out, uniform],
      args.workgroups,
    ),
  );
  return dispatches;
}

/** Pack workgroups: 8 texels x 8 rows (64 invocations; llvmpipe runs smaller ones at half
 * speed), so that narrow operands (K = 64: 16 texels) still fill them. */
const PACK_WG_X = 8;
const PACK_WG_Y = 8;
