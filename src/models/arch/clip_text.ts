/** CLIP's causal text transformer: vocabulary, context, width and depth from the weights, heads =
 * width / 64; pooled at each sequence's largest token id (the end-of-text token), as CLIP does. */
import { cpuTensor } from "../../util/tensor.ts";
import { CheckpointError } from "../checkpoint/state_dict.ts";
import { GraphBuilder } from "../../onnx/mod.ts";
import { countBlocks, int64s, layerNorm, type Net, transformer, weight } from "./layers.ts";
import type { Weights } from "./weights.ts";

export interface TextConfig {
  readonly vocab: number;
  readonly context: number;
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  readonly embedDim: number;
}

export function textConfig(w: Weights): TextConfig {
  const [vocab, width] = w.dims("token_embedding.weight", 2);
  const layers = countBlocks(w, "transformer");
  if (layers === 0) throw new CheckpointError(`${w.source}: no 'transformer.resblocks.N' keys`);
  if (width % 64 !== 0) {
    throw new CheckpointError(
      `${w.source}: text width ${width} is not a multiple of 64 (heads = width / 64)`,
    );
  }
  w.expectShape("ln_final.weight", [width]);
  return {
    vocab,
    context: w.dims("positional_embedding", 2)[0],
    width,
    layers,
    heads: width / 64,
    embedDim: w.dims("text_projection", 2)[1],
  };
}

export function describeText(c: TextConfig): string {
  return `CLIP text tower: vocabulary ${c.vocab}, context ${c.context}, width ${c.width}, ` +
    `${c.layers} layers, ${c.heads} heads, ${c.embedDim}-d embedding`;
}

/** text [batch, context] int64 token ids (0-padded) -> embedding [batch, embedDim]. */
export function buildText(w: Weights, c: TextConfig): GraphBuilder {
  const g = new GraphBuilder("clip_text", 17);
  const net: Net = { g, w };
  const { width, context } = c;
  const ids = g.input("text", "int64", ["batch", context]);
  const embedded = g.op("Gather", [weight(net, "token_embedding.weight", [c.vocab, width]), ids], {
    axis: 0,
  });
  let x = g.op("Add", [embedded, weight(net, "positional_embedding", [context, width])]);
  // Causal mask: a token attends to itself and the tokens before it.
  const mask = cpuTensor("float32", [context, context]);
  for (let i = 0; i < context; i++) {
    for (let j = i + 1; j < context; j++) mask.data[i * context + j] = -Infinity;
  }
  x = transformer(net, x, "transformer", {
    width,
    heads: c.heads,
    layers: c.layers,
    tokens: context,
    mask: g.constant("causal_mask", mask),
  });
  x = layerNorm(net, x, "ln_final", width);
  // The row of each sequence's end-of-text token (its largest id; the first one on ties).
  const eot = g.op("ArgMax", [ids], { axis: 1, keepdims: 1 });
  const index = g.op("Expand", [
    g.op("Unsqueeze", [eot, g.constant("axes", int64s([2]))]),
    g.constant("shape", int64s([1, 1, width])),
  ]);
  const pooled = g.op("Reshape", [
    g.op("GatherElements", [x, index], { axis: 1 }),
    g.constant("shape", int64s([-1, width])),
  ]);
  g.op("MatMul", [pooled, weight(net, "text_projection", [width, c.embedDim])], {}, "embedding");
  g.output("embedding", "float32", ["batch", c.embedDim]);
  return g;
}
