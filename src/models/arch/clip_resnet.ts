/** CLIP's ModifiedResNet image tower: a three-convolution stem, anti-aliased bottlenecks (strided
 * by average pooling) and an attention pool. Blocks per stage, width, resolution and output size
 * come from the weights as `clip/model.py`'s `build_model` infers them; heads = width * 32 / 64. */
import { CheckpointError } from "../checkpoint/state_dict.ts";
import { GraphBuilder } from "../../onnx/mod.ts";
import {
  avgPool,
  convBn,
  int64s,
  linear,
  type Net,
  relu,
  reshape,
  scalar,
  transpose,
  weight,
} from "./layers.ts";
import type { Weights } from "./weights.ts";

export interface ModifiedResNetConfig {
  readonly resolution: number;
  readonly stages: readonly number[];
  readonly width: number;
  readonly heads: number;
  readonly embedDim: number;
}

export function modifiedResNetConfig(w: Weights): ModifiedResNetConfig {
  const stages: number[] = [];
  for (let k = 1; w.has(`visual.layer${k}.0.conv1.weight`); k++) {
    stages.push(w.indices(`visual.layer${k}.`).length);
  }
  if (stages.length === 0) throw new CheckpointError(`${w.source}: no 'visual.layer1.0.*' keys`);
  const width = w.dims("visual.layer1.0.conv1.weight", 4)[0];
  const [tokens, embed] = w.dims("visual.attnpool.positional_embedding", 2);
  const side = Math.round(Math.sqrt(tokens - 1));
  if (side * side + 1 !== tokens) {
    throw new CheckpointError(
      `${w.source}: key '${w.fileKeyOf("visual.attnpool.positional_embedding")}' has ${tokens} ` +
        "rows, not a square grid + 1",
    );
  }
  // build_model: vision_heads = vision_width * 32 // 64, the pool's width being width * 32.
  const heads = Math.floor((width * 32) / 64);
  if (heads === 0 || embed % heads !== 0) {
    throw new CheckpointError(
      `${w.source}: attention pool width ${embed} does not split into ${heads} heads ` +
        `(width ${width} * 32 / 64)`,
    );
  }
  return {
    resolution: side * 32,
    stages,
    width,
    heads,
    embedDim: w.dims("visual.attnpool.c_proj.weight", 2)[0],
  };
}

export function describeModifiedResNet(c: ModifiedResNetConfig): string {
  return `CLIP ModifiedResNet image tower: ${c.resolution} px, blocks ${c.stages.join("-")}, ` +
    `width ${c.width}, attention pool with ${c.heads} heads, ${c.embedDim}-d embedding`;
}

/** image [batch, 3, R, R] (CLIP-normalised) -> embedding [batch, embedDim]. */
export function buildModifiedResNet(w: Weights, c: ModifiedResNetConfig): GraphBuilder {
  const g = new GraphBuilder("clip_visual", 17);
  const net: Net = { g, w };
  const image = g.input("image", "float32", ["batch", 3, c.resolution, c.resolution]);
  // Stem: three 3x3 convolutions (the first strided), then a 2x2 average pool.
  let x = image;
  let channels = 3;
  for (const [k, stride] of [[1, 2], [2, 1], [3, 1]]) {
    const r = convBn(net, x, `visual.conv${k}`, `visual.bn${k}`, { stride, inChannels: channels });
    x = relu(net, r.y);
    channels = r.outChannels;
  }
  x = avgPool(net, x, 2);
  c.stages.forEach((blocks, s) => {
    for (let b = 0; b < blocks; b++) {
      const stride = s > 0 && b === 0 ? 2 : 1;
      const r = bottleneck(net, x, `visual.layer${s + 1}.${b}`, channels, stride);
      x = r.y;
      channels = r.outChannels;
    }
  });
  attentionPool(net, x, c, channels);
  g.output("embedding", "float32", ["batch", c.embedDim]);
  return g;
}

/** 1x1 -> 3x3 -> avgpool(stride) -> 1x1, every convolution at stride 1; the shortcut pools
 * first too, then projects. */
function bottleneck(
  net: Net,
  x: string,
  p: string,
  inChannels: number,
  stride: number,
): { y: string; outChannels: number } {
  const a = convBn(net, x, `${p}.conv1`, `${p}.bn1`, { inChannels });
  const b = convBn(net, relu(net, a.y), `${p}.conv2`, `${p}.bn2`, { inChannels: a.outChannels });
  let y = relu(net, b.y);
  if (stride > 1) y = avgPool(net, y, stride);
  const c = convBn(net, y, `${p}.conv3`, `${p}.bn3`, { inChannels: b.outChannels });
  let skip = x;
  if (net.w.has(`${p}.downsample.0.weight`)) {
    const pooled = stride > 1 ? avgPool(net, x, stride) : x;
    skip = convBn(net, pooled, `${p}.downsample.0`, `${p}.downsample.1`, { inChannels }).y;
  } else if (inChannels !== c.outChannels || stride > 1) {
    throw new CheckpointError(
      `${net.w.source}: missing key '${p}.downsample.0.weight' (the block changes shape)`,
    );
  }
  return { y: relu(net, net.g.op("Add", [c.y, skip])), outChannels: c.outChannels };
}

/** Prepends the spatial mean as a token, adds the positional embedding and attends from that
 * token only (its query against every key), then projects with c_proj. */
function attentionPool(net: Net, x: string, c: ModifiedResNetConfig, channels: number): void {
  const { g } = net;
  const p = "visual.attnpool";
  const side = c.resolution / 32;
  const tokens = side * side + 1;
  const hd = channels / c.heads;
  const flat = transpose(net, reshape(net, x, [-1, channels, side * side]), [0, 2, 1]);
  const mean = g.op("ReduceMean", [flat], { axes: { ints: [1] }, keepdims: 1 });
  const seq = g.op("Add", [
    g.op("Concat", [mean, flat], { axis: 1 }),
    weight(net, `${p}.positional_embedding`, [tokens, channels]),
  ]);
  const first = g.op("Slice", [
    seq,
    g.constant("start", int64s([0])),
    g.constant("end", int64s([1])),
    g.constant("axes", int64s([1])),
  ]);
  const q = transpose(
    net,
    reshape(net, linear(net, first, `${p}.q_proj`, channels, channels), [-1, 1, c.heads, hd]),
    [0, 2, 1, 3],
  );
  const k = transpose(
    net,
    reshape(net, linear(net, seq, `${p}.k_proj`, channels, channels), [-1, tokens, c.heads, hd]),
    [0, 2, 3, 1],
  );
  const v = transpose(
    net,
    reshape(net, linear(net, seq, `${p}.v_proj`, channels, channels), [-1, tokens, c.heads, hd]),
    [0, 2, 1, 3],
  );
  const scaled = g.op("Mul", [q, g.constant("attn_scale", scalar(1 / Math.sqrt(hd)))]);
  const probs = g.op("Softmax", [g.op("MatMul", [scaled, k])], { axis: -1 });
  const o = reshape(net, transpose(net, g.op("MatMul", [probs, v]), [0, 2, 1, 3]), [-1, channels]);
  const y = linear(net, o, `${p}.c_proj`, channels, c.embedDim);
  g.op("Identity", [y], {}, "embedding");
}
