/** What a checkpoint holds, from its key names and tensor shapes alone (no weight is read): its
 * key layout, its towers and each tower's hyper-parameters, inferred as OpenAI's `build_model`
 * does, so `deno task inspect` can describe a file and a builder is chosen without guessing. */
import type { GraphBuilder } from "../../onnx/mod.ts";
import { CheckpointError, type StateDict } from "../checkpoint/state_dict.ts";
import { buildText, describeText, type TextConfig, textConfig } from "./clip_text.ts";
import { buildVit, describeVit, type VitConfig, vitConfig } from "./clip_vit.ts";
import {
  buildModifiedResNet,
  describeModifiedResNet,
  type ModifiedResNetConfig,
  modifiedResNetConfig,
} from "./clip_resnet.ts";
import {
  buildTvResNet,
  describeTvResNet,
  type TvResNetConfig,
  tvResNetConfig,
} from "./tv_resnet.ts";
import { clipWeights, resnetWeights } from "./keymap.ts";
import type { Weights } from "./weights.ts";

/** A CLIP file's two towers; single-tower files (a ResNet) need no name. */
export type TowerName = "visual" | "text";

/** The hyper-parameters of one tower, by architecture. */
export type TowerConfig =
  | { readonly architecture: "clip-vit"; readonly config: VitConfig }
  | { readonly architecture: "clip-modified-resnet"; readonly config: ModifiedResNetConfig }
  | { readonly architecture: "clip-text"; readonly config: TextConfig }
  | { readonly architecture: "torchvision-resnet"; readonly config: TvResNetConfig };

export type TowerSummary = TowerConfig & {
  /** "visual" and "text" for CLIP files, "image" for a lone image encoder (a ResNet). */
  readonly tower: TowerName | "image";
  /** A short name: the released model it has the shape of, if any ("CLIP ViT-B/16 (patch 16,
   * width 768, 12 layers)", "ResNet-50 (...)"). */
  readonly name: string;
  /** One line with every hyper-parameter. */
  readonly description: string;
  /** Image side in pixels (image towers; undefined when any size works). */
  readonly inputSize?: number;
  /** Token context (text towers). */
  readonly contextLength?: number;
  readonly embedDim: number;
  /** Parameters as torch counts them (no BatchNorm running statistics). */
  readonly parameters: number;
  /** Stored dtypes, most common first. */
  readonly dtypes: string;
  /** Builds the tower's graph (reads its weights). */
  build(): GraphBuilder;
};

export interface CheckpointSummary {
  /** Key layout ("OpenAI CLIP", "Hugging Face CLIPModel", "torchvision ResNet under ..."). */
  readonly layout: string;
  readonly towers: readonly TowerSummary[];
  /** Plain values stored beside the weights (epoch, arch...). */
  readonly extras: ReadonlyMap<string, unknown>;
}

/** What `sd` holds. Throws CheckpointError listing a sample of its keys when no layout fits, and
 * naming the key when one a tower needs is missing or misshapen. */
export function describeCheckpoint(sd: StateDict): CheckpointSummary {
  const clip = clipWeights(sd);
  if (clip) {
    const towers = clipTowers(clip);
    if (towers.length > 0) return { layout: clip.layout, towers, extras: sd.extras };
  }
  const resnet = resnetWeights(sd);
  if (resnet) {
    const c = tvResNetConfig(resnet);
    return {
      layout: resnet.layout,
      extras: sd.extras,
      towers: [{
        tower: "image",
        architecture: "torchvision-resnet",
        config: c,
        name: tvResNetName(c),
        description: describeTvResNet(c),
        embedDim: c.featureDim,
        parameters: resnet.parameterCount(),
        dtypes: resnet.dtypeSummary(),
        build: () => buildTvResNet(resnet, c),
      }],
    };
  }
  const keys = [...sd.entries.keys()];
  throw new CheckpointError(
    `${sd.source}: no architecture the engine builds matches its ${keys.length} tensors ` +
      `(first keys: ${keys.slice(0, 6).join(", ")}${keys.length > 6 ? ", ..." : ""}). ` +
      "Expected OpenAI CLIP keys (visual.conv1.weight, token_embedding.weight, " +
      "transformer.resblocks.N.*), Hugging Face CLIPModel keys (vision_model.*, text_model.*), " +
      "or a torchvision ResNet (conv1.weight, layer1.0.conv1.weight, possibly under " +
      "module.base_encoder.)",
  );
}

const isVisual = (key: string) => key.startsWith("visual.");
const isText = (key: string) => !isVisual(key) && key !== "logit_scale";

function clipTowers(w: Weights): TowerSummary[] {
  const towers: TowerSummary[] = [];
  const visual = { tower: "visual" as const, parameters: w.parameterCount(isVisual) };
  const visualDtypes = () => w.dtypeSummary(isVisual);
  if (w.has("visual.conv1.weight") && w.has("visual.transformer.resblocks.0.ln_1.weight")) {
    const c = vitConfig(w);
    towers.push({
      ...visual,
      architecture: "clip-vit",
      config: c,
      name: vitName(c),
      description: describeVit(c),
      inputSize: c.resolution,
      embedDim: c.embedDim,
      dtypes: visualDtypes(),
      build: () => buildVit(w, c),
    });
  } else if (w.has("visual.layer1.0.conv1.weight")) {
    const c = modifiedResNetConfig(w);
    towers.push({
      ...visual,
      architecture: "clip-modified-resnet",
      config: c,
      name: modifiedResNetName(c),
      description: describeModifiedResNet(c),
      inputSize: c.resolution,
      embedDim: c.embedDim,
      dtypes: visualDtypes(),
      build: () => buildModifiedResNet(w, c),
    });
  } else if ([...w.map.keys()].some(isVisual)) {
    throw new CheckpointError(
      `${w.source}: the 'visual.*' keys are neither a CLIP ViT (visual.conv1.weight + ` +
        "visual.transformer.resblocks.N) nor a ModifiedResNet (visual.layer1.0.conv1.weight)",
    );
  }
  if (w.has("token_embedding.weight")) {
    const c = textConfig(w);
    towers.push({
      tower: "text",
      architecture: "clip-text",
      config: c,
      name: `CLIP text transformer (width ${c.width}, ${c.layers} layers)`,
      description: describeText(c),
      contextLength: c.context,
      embedDim: c.embedDim,
      parameters: w.parameterCount(isText),
      dtypes: w.dtypeSummary(isText),
      build: () => buildText(w, c),
    });
  }
  return towers;
}

/** OpenAI's released ViT sizes by width and depth (the patch and resolution vary). */
const VIT_SIZES: Record<string, string> = { "768x12": "B", "1024x24": "L", "1280x32": "H" };

function vitName(c: VitConfig): string {
  const size = VIT_SIZES[`${c.width}x${c.layers}`];
  const released = size
    ? `-${size}/${c.patch}${c.resolution === 224 ? "" : `@${c.resolution}px`}`
    : "";
  return `CLIP ViT${released} (patch ${c.patch}, width ${c.width}, ${c.layers} layers)`;
}

/** OpenAI's released ModifiedResNets by blocks per stage and width. */
const RN_SIZES: Record<string, string> = {
  "3-4-6-3x64": "RN50",
  "3-4-23-3x64": "RN101",
  "4-6-10-6x80": "RN50x4",
  "6-8-18-8x96": "RN50x16",
  "3-15-36-10x128": "RN50x64",
};

function modifiedResNetName(c: ModifiedResNetConfig): string {
  const stages = c.stages.join("-");
  const released = RN_SIZES[`${stages}x${c.width}`];
  return `CLIP ${released ?? "ModifiedResNet"} (blocks ${stages}, width ${c.width})`;
}

function tvResNetName(c: TvResNetConfig): string {
  const depth = c.stages.reduce((a, b) => a + b, 0) * (c.block === "bottleneck" ? 3 : 2) + 2;
  return `ResNet-${depth} (${c.block} blocks ${c.stages.join("-")}, stem width ${c.stemWidth})`;
}
