/** Measured conv variant choice (see variants.ts): the register tile of `prepareConv` (output
 * channels per invocation, in blocks of 4) is timed on the problem's shape on this adapter, and
 * the fastest cached under ("conv", `convProblemKey`). */
import { allocTensor, cpuTensor, type Gpu, releaseTensor, sizeOf } from "../gpu/mod.ts";
import { chooseChannelBlocks, prepareConv } from "./conv.ts";
import { type ConvAttrs, convOutputShape } from "./conv_ref.ts";
import {
  problemKey,
  type TuneOptions,
  type TuneResult,
  tuneVariants,
  type VariantCache,
  variantCache,
} from "./variants.ts";

export const CONV_KERNEL = "conv";

/** Cache key: input shape, weight shape, strides, pads, dilations, group. */
export function convProblemKey(
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
): string {
  return problemKey(
    xShape.join("."),
    wShape.join("."),
    `s${attrs.strides.join(".")}`,
    `p${attrs.pads.join(".")}`,
    `d${attrs.dilations.join(".")}`,
    `g${attrs.group}`,
  );
}

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
): number | undefined {
  const name = cache.get(gpu, CONV_KERNEL, convProblemKey(xShape, wShape, attrs));
  return name === undefined ? undefined : channelBlocksOf(name);
}

function variantName(channelBlocks: number): string {
  return `${4 * channelBlocks}ch`;
}

function channelBlocksOf(name: string): number {
  return Number(name.replace(/ch$/, "")) / 4;
}

export interface ConvTuneResult extends TuneResult {
  readonly channelBlocks: number;
}

/** Times the channel-block candidates with constant (host) weights, as models use them. */
export async function tuneConv(
  gpu: Gpu,
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
  options: TuneOptions & { candidates?: readonly number[] } = {},
): Promise<ConvTuneResult> {
  const yShape = convOutputShape(xShape, wShape, attrs);
  const candidates = options.candidates ?? convCandidates(wShape[0] / attrs.group);
  const x = allocTensor(gpu, xShape, "float32", "tuning input");
  gpu.device.queue.writeBuffer(x.buffer, 0, new Float32Array(sizeOf(xShape)).fill(0.5));
  const y = allocTensor(gpu, yShape, "float32", "tuning output");
  const weight = cpuTensor("float32", wShape, new Float32Array(sizeOf(wShape)).fill(0.01));
  try {
    const result = await tuneVariants(
      gpu,
      CONV_KERNEL,
      convProblemKey(xShape, wShape, attrs),
      candidates.map((cb) => ({
        name: variantName(cb),
        prepare: (owner) => prepareConv(gpu, owner, x, weight, undefined, y, attrs, cb),
      })),
      options,
    );
    return { ...result, channelBlocks: channelBlocksOf(result.chosen) };
  } finally {
    releaseTensor(gpu, x);
    releaseTensor(gpu, y);
  }
}
