/** Measured conv variant choice (see variants.ts): the variants of `prepareConv` (the direct
 * kernel's register tiles, output channels per invocation in blocks of 4, its wide tile
 * `8px16ch`, `gemm` for pointwise convolutions, and on hardware adapters the shared-memory tiles
 * `tiled64`/`tiled32`) are timed on the problem's shape on this adapter, and the fastest cached
 * under (CONV_KERNEL, `convProblemKey`), where `prepareConv` looks first. */
import { allocTensor, type Gpu, releaseTensor } from "../gpu/mod.ts";
import { cpuTensor, sizeOf } from "../util/tensor.ts";
import {
  cachedConvChannelBlocks,
  chooseChannelBlocks,
  CONV_GEMM,
  CONV_KERNEL,
  CONV_WIDE,
  convChannelBlocksOf,
  convDefaultVariant,
  convProblemKey,
  convVariantName,
  isPointwiseConv,
  isWideRowConv,
  prepareConv,
  type PrepareConvOptions,
} from "./conv.ts";
import { type ConvAttrs, convOutputShape } from "./conv_shape.ts";
import { convTiledCandidates, isConvTiledName } from "./conv_tiled.ts";
import { matmulProblem } from "./matmul.ts";
import { tuneMatmul } from "./matmul_tune.ts";
import {
  type TuneOptions,
  type TuneResult,
  tuneVariants,
  type VariantCache,
  variantCache,
} from "./variants.ts";

export { CONV_KERNEL, convProblemKey };

/** Variant names to try, the default first (convDefaultVariant, which tuning keeps unless it is
 * clearly beaten): `gemm` for a pointwise convolution, `8px16ch` where the wide tile applies
 * (isWideRowConv), on a hardware adapter the shared-memory tiles that suit the group's channels
 * (convTiledCandidates), then the direct kernel's default tile and the halvings and doubling of
 * it that fit the group's channels (1..8 blocks of 4). The shared-memory tiles are left out on
 * llvmpipe (workgroup memory is plain memory there: they lose, and would only cost tuning time)
 * and when no `gpu` is given. */
export function convCandidates(
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  gpu?: Gpu,
): string[] {
  const channelsPerGroup = wShape[0] / attrs.group;
  const max = Math.min(8, Math.ceil(channelsPerGroup / 4));
  const first = chooseChannelBlocks(channelsPerGroup);
  const blocks = [first];
  for (const c of [8, 4, 2, 1]) if (c <= max && !blocks.includes(c)) blocks.push(c);
  const names = [
    ...(isPointwiseConv(wShape, attrs) ? [CONV_GEMM] : []),
    ...(isWideRowConv(xShape, wShape, attrs) ? [CONV_WIDE] : []),
    ...(gpu && !gpu.summary.isLlvmpipe ? convTiledCandidates(channelsPerGroup) : []),
    ...blocks.map(convVariantName),
  ];
  const preferred = convDefaultVariant(xShape, wShape, attrs);
  return preferred === undefined ? names : [preferred, ...names.filter((n) => n !== preferred)];
}

export function tunedConvChannelBlocks(
  gpu: Gpu,
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  cache: VariantCache = variantCache,
  precision: "f32" | "f16" = "f32",
): number | undefined {
  return cachedConvChannelBlocks(gpu, xShape, wShape, attrs, cache, precision === "f16");
}

export interface ConvTuneResult extends TuneResult {
  /** The direct kernel's tile; undefined when `gemm`, the wide tile or a shared-memory tile
   * won. */
  readonly channelBlocks?: number;
}

/** Times the candidates with constant (host) weights, as models use them (`precision` "f16":
 * half-precision weight texels, as `prepareConv` would store them). For a pointwise convolution
 * the equivalent matmul is tuned first, so that `gemm` competes with its best variant. */
export async function tuneConv(
  gpu: Gpu,
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  options: TuneOptions & { candidates?: readonly string[]; precision?: "f32" | "f16" } = {},
): Promise<ConvTuneResult> {
  const cache = options.cache ?? variantCache;
  const halves = options.precision === "f16";
  const candidates = options.candidates ?? convCandidates(xShape, wShape, attrs, gpu);
  const key = convProblemKey(xShape, wShape, attrs, halves);
  const cached = cache.get(gpu, CONV_KERNEL, key);
  if (cached !== undefined && candidates.includes(cached)) {
    return { chosen: cached, trials: [], cached: true, channelBlocks: convChannelBlocksOf(cached) };
  }
  if (candidates.includes(CONV_GEMM)) {
    const [n, c] = xShape;
    const plane = sizeOf(xShape.slice(2));
    const { targetMs, batches, pruneFactor, sliceAboveMs, deadline } = options;
    const problem = matmulProblem([wShape[0], c], [n, c, plane], {}, halves, { a: true });
    await tuneMatmul(gpu, problem, {
      targetMs,
      batches,
      pruneFactor,
      sliceAboveMs,
      deadline,
      cache,
    });
  }
  const yShape = convOutputShape(xShape, wShape, attrs);
  const x = allocTensor(gpu, xShape, "float32", "tuning input");
  gpu.device.queue.writeBuffer(x.buffer, 0, new Float32Array(sizeOf(xShape)).fill(0.5));
  const y = allocTensor(gpu, yShape, "float32", "tuning output");
  const weight = cpuTensor("float32", wShape, new Float32Array(sizeOf(wShape)).fill(0.01));
  try {
    const result = await tuneVariants(
      gpu,
      CONV_KERNEL,
      key,
      candidates.map((name) => ({
        name,
        prepare: (owner) =>
          prepareConv(gpu, owner, x, weight, undefined, y, attrs, {
            ...convVariantOptions(name),
            precision: options.precision,
            variantCache: cache,
          }),
      })),
      { ...options, cache },
    );
    return { ...result, channelBlocks: convChannelBlocksOf(result.chosen) };
  } finally {
    releaseTensor(gpu, x);
    releaseTensor(gpu, y);
  }
}

/** prepareConv options that run the variant of a cache name. */
export function convVariantOptions(name: string): PrepareConvOptions {
  if (name === CONV_GEMM) return { gemm: true };
  if (name === CONV_WIDE) return { wide: true };
  if (isConvTiledName(name)) return { tiled: name };
  return { channelBlocks: convChannelBlocksOf(name) };
}
