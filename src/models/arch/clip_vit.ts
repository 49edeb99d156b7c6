/** CLIP's ViT image tower, every hyper-parameter read from the weights as `clip/model.py`'s
 * `build_model` does: width from conv1, patch from its kernel, resolution from the positional
 * embedding's grid, depth from the block count, heads = width / 64. */
import { cpuTensor } from "../../util/tensor.ts";
import { CheckpointError } from "../checkpoint/state_dict.ts";
import { GraphBuilder } from "../../onnx/mod.ts";
import { countBlocks, int64s, layerNorm, type Net, transformer, weight } from "./layers.ts";
import type { Weights } from "./weights.ts";

export interface VitConfig {
  readonly resolution: number;
  readonly patch: number;
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  readonly embedDim: number;
}

export function vitConfig(w: Weights): VitConfig {
  const [width, channels, patch, patchW] = w.dims("visual.conv1.weight", 4);
  if (channels !== 3 || patch !== patchW) {
    w.expectShape("visual.conv1.weight", [-1, 3, patch, patch]);
  }
  const tokens = w.dims("visual.positional_embedding", 2)[0];
  const grid = Math.round(Math.sqrt(tokens - 1));
  if (grid * grid + 1 !== tokens) {
    throw new CheckpointError(
      `${w.source}: key '${w.fileKeyOf("visual.positional_embedding")}' has ${tokens} rows, ` +
        "not a square grid + 1",
    );
  }
  const layers = countBlocks(w, "visual.transformer");
  if (layers === 0) {
    throw new CheckpointError(`${w.source}: no 'visual.transformer.resblocks.N' keys`);
  }
  if (width % 64 !== 0) {
    throw new CheckpointError(
      `${w.source}: ViT width ${width} is not a multiple of 64 (heads = width / 64)`,
    );
  }
  return {
    resolution: grid * patch,
    patch,
    width,
    layers,
    heads: width / 64,
    embedDim: w.dims("visual.proj", 2)[1],
  };
}

export function describeVit(c: VitConfig): string {
  return `CLIP ViT image tower: ${c.resolution} px, patch ${c.patch}, width ${c.width}, ` +
    `${c.layers} layers, ${c.heads} heads, ${c.embedDim}-d embedding`;
}

/** image [batch, 3, R, R] (CLIP-normalised) -> embedding [batch, embedDim]. */
export function buildVit(w: Weights, c: VitConfig): GraphBuilder {
  const g = new GraphBuilder("clip_visual", 17);
  const net: Net = { g, w };
  const { width, patch, resolution } = c;
  const grid = resolution / patch;
  const tokens = grid * grid + 1;
  const image = g.input("image", "float32", ["batch", 3, resolution, resolution]);
  const conv = g.op("Conv", [image, weight(net, "visual.conv1.weight", [width, 3, patch, patch])], {
    kernel_shape: { ints: [patch, patch] },
    strides: { ints: [patch, patch] },
  });
  const patches = g.op("Transpose", [
    g.op("Reshape", [conv, g.constant("shape", int64s([-1, width, grid * grid]))]),
  ], { perm: { ints: [0, 2, 1] } });
  // The class token, repeated over the batch: Expand to [batch, 1, W] (the batch from the
  // input's shape, known when a plan is made).
  const cls = g.op("Reshape", [
    weight(net, "visual.class_embedding", [width]),
    g.constant("shape", int64s([1, 1, width])),
  ]);
  const batch = g.op("Slice", [
    g.op("Shape", [image]),
    g.constant("start", int64s([0])),
    g.constant("end", int64s([1])),
  ]);
  const clsShape = g.op("Concat", [batch, g.constant("one_width", int64s([1, width]))], {
    axis: 0,
  });
  const sequence = g.op("Concat", [g.op("Expand", [cls, clsShape]), patches], { axis: 1 });
  let x = g.op("Add", [sequence, weight(net, "visual.positional_embedding", [tokens, width])]);
  x = layerNorm(net, x, "visual.ln_pre", width);
  x = transformer(net, x, "visual.transformer", {
    width,
    heads: c.heads,
    layers: c.layers,
    tokens,
  });
  const first = g.op("Gather", [x, g.constant("index", cpuTensor("int64", [], [0]))], {
    axis: 1,
  });
  const pooled = layerNorm(net, first, "visual.ln_post", width);
  g.op("MatMul", [pooled, weight(net, "visual.proj", [width, c.embedDim])], {}, "embedding");
  g.output("embedding", "float32", ["batch", c.embedDim]);
  return g;
}
