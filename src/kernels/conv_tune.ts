/** Measured conv variant choice (see variants.ts): the register tile of `prepareConv` (output
 * channels per invocation, in blocks of 4) is timed on the problem's shape on this adapter, and
 * the fastest cached under (CONV_KERNEL, `convProblemKey`), where `prepareConv` looks first. */
import { allocTensor, cpuTensor, type Gpu, releaseTensor, sizeOf } from "../gpu/mod.ts";
import {
  cachedConvChannelBlocks,
  chooseChannelBlocks,
  CONV_KERNEL,
  convChannelBlocksOf,
  convProblemKey,
  convVariantName,
  prepareConv,
} from "./conv.ts";
import { type ConvAttrs, convOutputShape } from "./conv_ref.ts";
import {
  type TuneOptions,
  type TuneResult,
  tuneVariants,
  type VariantCache,
  variantCache,
} from "./variants.ts";

export { CONV_KERNEL, convProblemKey };

/** Channel blocks to try: the default, and the halvings and doubling of it that fit the group's
 * channels (1..8 blocks of 4). */
export function convCandidates(channelsPerGroup: number): number[] {
  const max = Math.min(8, Math.ceil(channelsPerGroup / 4));
  const first = chooseChannelBlocks(channelsPerGroup);
  const out = [first];
  for (const c of [8, 4, 2, 1]) if (c <= max && !out.includes(c)) out.push(c);
  return out;
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
  readonly channelBlocks: number;
}

/** Times the channel-block candidates with constant (host) weights, as models use them
 * (`precision` "f16": half-precision weight texels, as `prepareConv` would store them). */
export async function tuneConv(
  gpu: Gpu,
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  options: TuneOptions & { candidates?: readonly number[]; precision?: "f32" | "f16" } = {},
): Promise<ConvTuneResult> {
  const cache = options.cache ?? variantCache;
  const halves = options.precision === "f16";
  const candidates = options.candidates ?? convCandidates(wShape[0] / attrs.group);
  const cached = cachedConvChannelBlocks(gpu, xShape, wShape, attrs, cache, halves);
  if (cached !== undefined && candidates.includes(cached)) {
    return { chosen: convVariantName(cached), trials: [], cached: true, channelBlocks: cached };
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
      convProblemKey(xShape, wShape, attrs, halves),
      candidates.map((cb) => ({
        name: convVariantName(cb),
        prepare: (owner) =>
          prepareConv(gpu, owner, x, weight, undefined, y, attrs, {
            channelBlocks: cb,
            precision: options.precision,
          }),
      })),
      { ...options, cache },
    );
    return { ...result, channelBlocks: convChannelBlocksOf(result.chosen)! };
  } finally {
    releaseTensor(gpu, x);
    releaseTensor(gpu, y);
  }
}
