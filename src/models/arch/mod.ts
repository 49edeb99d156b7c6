/** Architectures built from checkpoint weights: which towers a file holds, their hyper-parameters
 * (inferred from tensor shapes, never assumed), and each tower as an engine graph. */
import type { GraphBuilder } from "../../onnx/mod.ts";
import { CheckpointError, type StateDict } from "../checkpoint/state_dict.ts";
import { describeCheckpoint, type TowerName, type TowerSummary } from "./detect.ts";

export {
  type CheckpointSummary,
  describeCheckpoint,
  type TowerConfig,
  type TowerName,
  type TowerSummary,
} from "./detect.ts";
export { clipWeights, resnetWeights } from "./keymap.ts";
export { Weights } from "./weights.ts";

/** A tower asked for by name: "visual" or "text" of a CLIP file, or "image": whichever image
 * encoder the file holds (CLIP's visual tower or a lone ResNet). */
export type TowerRequest = TowerName | "image";

/** The towers `sd` holds, described from shapes alone (nothing is built or read). */
export function listTowers(sd: StateDict): readonly TowerSummary[] {
  return describeCheckpoint(sd).towers;
}

/** The summary of `tower` in `sd` (required when it holds two towers). */
export function selectTower(sd: StateDict, tower?: TowerRequest): TowerSummary {
  const summary = describeCheckpoint(sd);
  const names = summary.towers.map((t) => t.tower);
  if (tower === undefined) {
    if (summary.towers.length === 1) return summary.towers[0];
    throw new CheckpointError(
      `${sd.source} holds ${names.length} towers (${names.join(", ")}); choose one with --tower`,
    );
  }
  const wanted = tower === "text" ? ["text"] : ["visual", "image"];
  const found = summary.towers.find((t) => wanted.includes(t.tower));
  if (!found) {
    throw new CheckpointError(
      `${sd.source} has no ${tower} tower (it holds: ${names.join(", ")})`,
    );
  }
  return found;
}

/** One tower of `sd` as a graph (input `image` [batch,3,R,R] float32 or `text` [batch,context]
 * int64; one output [batch, embedDim] float32), with its summary. */
export function buildTower(
  sd: StateDict,
  tower?: TowerRequest,
): { builder: GraphBuilder; info: TowerSummary } {
  const info = selectTower(sd, tower);
  return { builder: info.build(), info };
}
