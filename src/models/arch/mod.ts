/** Architectures built from checkpoint weights: which towers a file holds, their hyper-parameters
 * (inferred from tensor shapes, never assumed), and each tower as an engine graph. */
import type { GraphBuilder } from "../../onnx/mod.ts";
import { CheckpointError, type StateDict } from "../checkpoint/state_dict.ts";
import { buildText, describeText, textConfig } from "./clip_text.ts";
import { buildVit, describeVit, vitConfig } from "./clip_vit.ts";
import {
  buildModifiedResNet,
  describeModifiedResNet,
  modifiedResNetConfig,
} from "./clip_resnet.ts";
import { buildTvResNet, describeTvResNet, tvResNetConfig } from "./tv_resnet.ts";
import { clipWeights, resnetWeights } from "./keymap.ts";
import type { Weights } from "./weights.ts";

/** A CLIP file's two towers; single-tower files (a ResNet) need no name. */
export type TowerName = "visual" | "text";

export interface TowerSummary {
  readonly tower: TowerName | "image";
  /** "clip-vit", "clip-modified-resnet", "clip-text", "torchvision-resnet". */
  readonly architecture: string;
  readonly description: string;
  /** Image side in pixels (image towers; undefined when any size works). */
  readonly inputSize?: number;
  /** Token context (text towers). */
  readonly contextLength?: number;
  readonly embedDim: number;
  readonly parameters: number;
  readonly dtypes: string;
  /** Builds the tower's graph (reads its weights). */
  build(): GraphBuilder;
}

export interface CheckpointSummary {
  /** Key layout ("OpenAI CLIP", "Hugging Face CLIPModel", "torchvision ResNet under ..."). */
  readonly layout: string;
  readonly towers: readonly TowerSummary[];
  /** Plain values stored beside the weights (epoch, arch...). */
  readonly extras: ReadonlyMap<string, unknown>;
}

const isVisual = (key: string) => key.startsWith("visual.");
const isText = (key: string) => !isVisual(key) && key !== "logit_scale";

function clipTowers(w: Weights): TowerSummary[] {
  const towers: TowerSummary[] = [];
  if (w.has("visual.conv1.weight") && w.has("visual.transformer.resblocks.0.ln_1.weight")) {
    const c = vitConfig(w);
    towers.push({
      tower: "visual",
      architecture: "clip-vit",
      description: describeVit(c),
      inputSize: c.resolution,
      embedDim: c.embedDim,
      parameters: w.parameterCount(isVisual),
      dtypes: w.dtypeSummary(isVisual),
      build: () => buildVit(w, c),
    });
  } else if (w.has("visual.layer1.0.conv1.weight")) {
    const c = modifiedResNetConfig(w);
    towers.push({
      tower: "visual",
      architecture: "clip-modified-resnet",
      description: describeModifiedResNet(c),
      inputSize: c.resolution,
      embedDim: c.embedDim,
      parameters: w.parameterCount(isVisual),
      dtypes: w.dtypeSummary(isVisual),
      build: () => buildModifiedResNet(w, c),
    });
  } else if ([...w.map.keys()].some((k) => k.startsWith("visual."))) {
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

/** What `sd` holds. Throws CheckpointError listing what was found when no layout fits. */
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

/** The summary of `tower` in `sd` (required when it holds two towers). */
export function selectTower(sd: StateDict, tower?: TowerName): TowerSummary {
  const summary = describeCheckpoint(sd);
  const names = summary.towers.map((t) => t.tower);
  if (tower === undefined) {
    if (summary.towers.length === 1) return summary.towers[0];
    throw new CheckpointError(
      `${sd.source} holds ${names.length} towers (${names.join(", ")}); choose one with --tower`,
    );
  }
  const wanted = tower === "visual" ? ["visual", "image"] : ["text"];
  const found = summary.towers.find((t) => wanted.includes(t.tower));
  if (!found) {
    throw new CheckpointError(
      `${sd.source} has no ${tower} tower (it holds: ${names.join(", ")})`,
    );
  }
  return found;
}

/** One tower of `sd` as a graph, with its summary. */
export function buildTower(
  sd: StateDict,
  tower?: TowerName,
): { builder: GraphBuilder; info: TowerSummary } {
  const info = selectTower(sd, tower);
  return { builder: info.build(), info };
}
