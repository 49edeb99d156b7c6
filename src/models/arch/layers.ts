/** Graph pieces the architectures share, written with the op patterns the engine's load-time
 * fusion recognises (MatMul + bias + activation, Conv + Relu) or its fused ops directly
 * (LayerNormalization). Weights are added as constants named by their checkpoint keys. */
import { type CpuTensor, cpuTensor } from "../../util/tensor.ts";
import type { GraphBuilder } from "../../onnx/mod.ts";
import type { Weights } from "./weights.ts";

/** A graph under construction and the weights it reads. */
export interface Net {
  readonly g: GraphBuilder;
  readonly w: Weights;
}

export function int64s(values: readonly number[]): CpuTensor {
  return cpuTensor("int64", [values.length], values);
}

export function scalar(value: number): CpuTensor {
  return cpuTensor("float32", [], [value]);
}

/** A constant under its checkpoint key. */
export function weight(net: Net, name: string, shape?: readonly number[]): string {
  return net.g.namedConstant(name, net.w.get(name, shape));
}

/** torch's Linear: x @ W^T + b, with W [out, in] stored transposed once on the host. */
export function linear(
  net: Net,
  x: string,
  prefix: string,
  inDim: number,
  outDim: number,
  weightName = `${prefix}.weight`,
  biasName = `${prefix}.bias`,
): string {
  const wt = net.g.namedConstant(
    weightName,
    net.w.get(weightName, [outDim, inDim], "transposed"),
  );
  const y = net.g.op("MatMul", [x, wt]);
  if (!net.w.has(biasName)) return y;
  return net.g.op("Add", [y, weight(net, biasName, [outDim])]);
}

export function layerNorm(net: Net, x: string, prefix: string, dim: number): string {
  return net.g.op(
    "LayerNormalization",
    [x, weight(net, `${prefix}.weight`, [dim]), weight(net, `${prefix}.bias`, [dim])],
    { axis: -1, epsilon: { float: 1e-5 } },
  );
}

/** CLIP's activation, x * sigmoid(1.702 x). */
export function quickGelu(net: Net, x: string): string {
  const scaled = net.g.op("Mul", [x, net.g.constant("quick_gelu_scale", scalar(1.702))]);
  return net.g.op("Mul", [x, net.g.op("Sigmoid", [scaled])]);
}

export function relu(net: Net, x: string): string {
  return net.g.op("Relu", [x]);
}

/** Reshape to a fixed shape (one -1 allowed for the batch). */
export function reshape(net: Net, x: string, shape: readonly number[]): string {
  return net.g.op("Reshape", [x, net.g.constant("shape", int64s(shape))]);
}

export function transpose(net: Net, x: string, perm: readonly number[]): string {
  return net.g.op("Transpose", [x], { perm: { ints: [...perm] } });
}

/** A convolution with its BatchNorm folded in (eval-mode statistics, computed in float64):
 * scale = gamma / sqrt(var + eps), W' = W * scale, b' = beta + (b - mean) * scale. */
export function convBn(
  net: Net,
  x: string,
  convName: string,
  bnPrefix: string,
  opts: { stride?: number; pad?: number; inChannels: number },
): { y: string; outChannels: number } {
  const shape = net.w.shape(`${convName}.weight`);
  if (shape.length !== 4) net.w.expectShape(`${convName}.weight`, [-1, -1, -1, -1]);
  const [out, perGroup, kh, kw] = shape;
  const groups = opts.inChannels / perGroup;
  if (!Number.isInteger(groups) || out % groups !== 0) {
    net.w.expectShape(`${convName}.weight`, [out, opts.inChannels, kh, kw]);
  }
  const w = net.w.get(`${convName}.weight`);
  const gamma = net.w.get(`${bnPrefix}.weight`, [out]).data;
  const beta = net.w.get(`${bnPrefix}.bias`, [out]).data;
  const mean = net.w.get(`${bnPrefix}.running_mean`, [out]).data;
  const variance = net.w.get(`${bnPrefix}.running_var`, [out]).data;
  const convBias = net.w.has(`${convName}.bias`)
    ? net.w.get(`${convName}.bias`, [out]).data
    : undefined;
  const folded = cpuTensor("float32", shape);
  const bias = cpuTensor("float32", [out]);
  const per = perGroup * kh * kw;
  for (let o = 0; o < out; o++) {
    const s = gamma[o] / Math.sqrt(variance[o] + 1e-5);
    for (let i = 0; i < per; i++) folded.data[o * per + i] = w.data[o * per + i] * s;
    bias.data[o] = beta[o] + ((convBias?.[o] ?? 0) - mean[o]) * s;
  }
  const stride = opts.stride ?? 1;
  const pad = opts.pad ?? Math.floor(kh / 2);
  const y = net.g.op(
    "Conv",
    [
      x,
      net.g.namedConstant(`${convName}.weight`, folded),
      net.g.namedConstant(`${convName}.bias`, bias),
    ],
    {
      kernel_shape: { ints: [kh, kw] },
      strides: { ints: [stride, stride] },
      pads: { ints: [pad, pad, pad, pad] },
      group: { int: groups },
    },
  );
  return { y, outChannels: out };
}

export function avgPool(net: Net, x: string, size: number): string {
  return net.g.op("AveragePool", [x], {
    kernel_shape: { ints: [size, size] },
    strides: { ints: [size, size] },
  });
}

/** Multi-head attention over [B, L, W] with a fused q/k/v projection (torch's
 * nn.MultiheadAttention layout: in_proj_weight [3W, W] rows q, k, v), an optional additive mask
 * [L, L], and the output projection. */
export function selfAttention(
  net: Net,
  x: string,
  prefix: string,
  width: number,
  heads: number,
  tokens: number,
  mask?: string,
): string {
  const hd = width / heads;
  const qkv = linear(
    net,
    x,
    prefix,
    width,
    3 * width,
    `${prefix}.in_proj_weight`,
    `${prefix}.in_proj_bias`,
  );
  const [q, k, v] = net.g.opMulti(
    "Split",
    [qkv, net.g.constant("split", int64s([width, width, width]))],
    [net.g.fresh("q"), net.g.fresh("k"), net.g.fresh("v")],
    { axis: -1 },
  );
  const heads4 = [-1, tokens, heads, hd];
  const qh = transpose(net, reshape(net, q, heads4), [0, 2, 1, 3]);
  const kh = transpose(net, reshape(net, k, heads4), [0, 2, 3, 1]);
  const vh = transpose(net, reshape(net, v, heads4), [0, 2, 1, 3]);
  const scaled = net.g.op("Mul", [qh, net.g.constant("attn_scale", scalar(1 / Math.sqrt(hd)))]);
  let scores = net.g.op("MatMul", [scaled, kh]);
  if (mask) scores = net.g.op("Add", [scores, mask]);
  const probs = net.g.op("Softmax", [scores], { axis: -1 });
  const o = net.g.op("MatMul", [probs, vh]);
  const merged = reshape(net, transpose(net, o, [0, 2, 1, 3]), [-1, tokens, width]);
  return linear(net, merged, `${prefix}.out_proj`, width, width);
}

/** CLIP's pre-LN transformer: x += attn(ln_1(x)); x += mlp(ln_2(x)), for each block. */
export function transformer(
  net: Net,
  x: string,
  prefix: string,
  opts: { width: number; heads: number; layers: number; tokens: number; mask?: string },
): string {
  const { width, heads, tokens } = opts;
  for (let i = 0; i < opts.layers; i++) {
    const p = `${prefix}.resblocks.${i}`;
    const a = selfAttention(
      net,
      layerNorm(net, x, `${p}.ln_1`, width),
      `${p}.attn`,
      width,
      heads,
      tokens,
      opts.mask,
    );
    x = net.g.op("Add", [x, a]);
    const hidden = net.w.shape(`${p}.mlp.c_fc.weight`)[0];
    let m = linear(net, layerNorm(net, x, `${p}.ln_2`, width), `${p}.mlp.c_fc`, width, hidden);
    m = linear(net, quickGelu(net, m), `${p}.mlp.c_proj`, hidden, width);
    x = net.g.op("Add", [x, m]);
  }
  return x;
}

/** Number of blocks `prefix.resblocks.N`. */
export function countBlocks(w: Weights, prefix: string): number {
  return w.indices(`${prefix}.resblocks.`).length;
}
