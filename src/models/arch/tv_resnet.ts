/** torchvision's ResNet (Bottleneck or BasicBlock; ResNeXt's grouped 3x3 too) up to the global
 * average pool: the feature extractor self-supervised checkpoints such as MoCo v3 hold. Blocks per
 * stage, widths, groups and the block type come from the weights; strides are torchvision's
 * (2 at the first block of every stage after the first). */
import { CheckpointError } from "../checkpoint/state_dict.ts";
import { GraphBuilder } from "../../onnx/mod.ts";
import { convBn, type Net, relu } from "./layers.ts";
import type { Weights } from "./weights.ts";

export interface TvResNetConfig {
  readonly block: "bottleneck" | "basic";
  readonly stages: readonly number[];
  readonly stemWidth: number;
  readonly featureDim: number;
}

export function tvResNetConfig(w: Weights): TvResNetConfig {
  const stages: number[] = [];
  for (let k = 1; w.has(`layer${k}.0.conv1.weight`); k++) {
    stages.push(w.indices(`layer${k}.`).length);
  }
  if (stages.length === 0) throw new CheckpointError(`${w.source}: no 'layer1.0.*' keys`);
  const block = w.has("layer1.0.conv3.weight") ? "bottleneck" : "basic";
  const last = `layer${stages.length}.${stages[stages.length - 1] - 1}`;
  return {
    block,
    stages,
    stemWidth: w.dims("conv1.weight", 4)[0],
    featureDim: w.dims(`${last}.${block === "bottleneck" ? "conv3" : "conv2"}.weight`, 4)[0],
  };
}

export function describeTvResNet(c: TvResNetConfig): string {
  const depth = c.stages.reduce((a, b) => a + b, 0) * (c.block === "bottleneck" ? 3 : 2) + 2;
  return `torchvision ResNet-${depth} (${c.block} blocks ${c.stages.join("-")}, stem width ` +
    `${c.stemWidth}), ${c.featureDim}-d pooled features`;
}

/** image [batch, 3, H, W] (ImageNet-normalised, any size) -> features [batch, featureDim]. */
export function buildTvResNet(w: Weights, c: TvResNetConfig): GraphBuilder {
  const g = new GraphBuilder("resnet", 17);
  const net: Net = { g, w };
  const image = g.input("image", "float32", ["batch", 3, "height", "width"]);
  const stem = convBn(net, image, "conv1", "bn1", { stride: 2, inChannels: 3 });
  let x = g.op("MaxPool", [relu(net, stem.y)], {
    kernel_shape: { ints: [3, 3] },
    strides: { ints: [2, 2] },
    pads: { ints: [1, 1, 1, 1] },
  });
  let channels = stem.outChannels;
  c.stages.forEach((blocks, s) => {
    for (let b = 0; b < blocks; b++) {
      const stride = s > 0 && b === 0 ? 2 : 1;
      const p = `layer${s + 1}.${b}`;
      const r = c.block === "bottleneck"
        ? bottleneck(net, x, p, channels, stride)
        : basicBlock(net, x, p, channels, stride);
      x = r.y;
      channels = r.outChannels;
    }
  });
  const pooled = g.op("GlobalAveragePool", [x]);
  g.op("Flatten", [pooled], { axis: 1 }, "features");
  g.output("features", "float32", ["batch", c.featureDim]);
  return g;
}

function shortcut(net: Net, x: string, p: string, inChannels: number, stride: number, out: number) {
  if (net.w.has(`${p}.downsample.0.weight`)) {
    return convBn(net, x, `${p}.downsample.0`, `${p}.downsample.1`, {
      stride,
      pad: 0,
      inChannels,
    }).y;
  }
  if (inChannels !== out || stride > 1) {
    throw new CheckpointError(
      `${net.w.source}: missing key '${p}.downsample.0.weight' (the block changes shape)`,
    );
  }
  return x;
}

/** 1x1 -> 3x3 (strided, grouped for ResNeXt) -> 1x1, as torchvision's Bottleneck. */
function bottleneck(net: Net, x: string, p: string, inChannels: number, stride: number) {
  const a = convBn(net, x, `${p}.conv1`, `${p}.bn1`, { inChannels });
  const b = convBn(net, relu(net, a.y), `${p}.conv2`, `${p}.bn2`, {
    stride,
    inChannels: a.outChannels,
  });
  const c = convBn(net, relu(net, b.y), `${p}.conv3`, `${p}.bn3`, { inChannels: b.outChannels });
  const skip = shortcut(net, x, p, inChannels, stride, c.outChannels);
  return { y: relu(net, net.g.op("Add", [c.y, skip])), outChannels: c.outChannels };
}

/** 3x3 (strided) -> 3x3, as torchvision's BasicBlock. */
function basicBlock(net: Net, x: string, p: string, inChannels: number, stride: number) {
  const a = convBn(net, x, `${p}.conv1`, `${p}.bn1`, { stride, inChannels });
  const b = convBn(net, relu(net, a.y), `${p}.conv2`, `${p}.bn2`, { inChannels: a.outChannels });
  const skip = shortcut(net, x, p, inChannels, stride, b.outChannels);
  return { y: relu(net, net.g.op("Add", [b.y, skip])), outChannels: b.outChannels };
}
