/** One entry point for every model file the engine reads: an ONNX graph as it is, or a checkpoint
 * (TorchScript, torch.save, safetensors) whose architecture is built from its weights. Callers
 * name the tower they want from a two-tower CLIP file; single-tower files need no name. */
import { extname } from "node:path";
import { EngineError, getGpu, type Gpu } from "../gpu/mod.ts";
import {
  type GraphBuilder,
  loadModelFile,
  Model,
  type ModelOptions,
  OPS,
  type ParsedModel,
} from "../onnx/mod.ts";
import { openCheckpoint } from "./checkpoint/open.ts";
import type { CheckpointFormat, StateDict } from "./checkpoint/state_dict.ts";
import {
  buildTower,
  type CheckpointSummary,
  describeCheckpoint,
  type TowerName,
} from "./arch/mod.ts";

export type { TowerName };

/** What a model file holds, without building or loading anything large. */
export interface ModelFileSummary {
  readonly path: string;
  readonly format: "onnx" | CheckpointFormat;
  /** Set for checkpoints: layout, towers and their hyper-parameters. */
  readonly checkpoint?: CheckpointSummary;
}

/** Whether `path` is an ONNX model (by extension, else by its first bytes not being a known
 * checkpoint container). */
export function isOnnxFile(path: string): boolean {
  return extname(path).toLowerCase() === ".onnx";
}

/** The graph of one tower of a model file, ready for the engine (`parsed`) or for export
 * (`builder`, checkpoints only), with a line describing it. */
export interface TowerGraph {
  readonly parsed: ParsedModel;
  readonly builder?: GraphBuilder;
  readonly description: string;
}

/** Reads `path` and returns the graph of `tower` (required for two-tower CLIP checkpoints;
 * ignored for ONNX files, which are one graph). Checkpoint weights are read once, for that tower
 * only, and the file is closed before returning. */
export function towerGraph(path: string, tower?: TowerName): TowerGraph {
  if (isOnnxFile(path)) {
    const parsed = loadModelFile(path, OPS);
    return { parsed, description: `ONNX model (${parsed.graph.nodes.length} nodes)` };
  }
  const sd = openCheckpoint(path);
  try {
    const built = buildTower(sd, tower);
    return {
      parsed: built.builder.toParsedModel(path, OPS, `${sd.format} checkpoint`),
      builder: built.builder,
      description: built.info.description,
    };
  } finally {
    sd.close();
  }
}

/** Loads one tower of a model file onto the GPU (see `towerGraph`). */
export async function loadTowerModel(
  path: string,
  tower: TowerName | undefined,
  options: ModelOptions & { gpu?: Gpu } = {},
): Promise<Model> {
  const { parsed } = towerGraph(path, tower);
  const gpu = options.gpu ?? await getGpu();
  return new Model(gpu, parsed, options.ops ?? OPS, options);
}

/** What `path` is, for `deno task inspect`. */
export function summarizeModelFile(path: string): ModelFileSummary {
  if (isOnnxFile(path)) return { path, format: "onnx" };
  let sd: StateDict | undefined;
  try {
    sd = openCheckpoint(path);
    return { path, format: sd.format, checkpoint: describeCheckpoint(sd) };
  } finally {
    sd?.close();
  }
}

/** A tower name from a flag value. */
export function parseTowerName(flag: string, value: string | undefined): TowerName | undefined {
  if (value === undefined) return undefined;
  if (value === "visual" || value === "text" || value === "image") {
    return value === "image" ? "visual" : value;
  }
  throw new EngineError(`${flag}: expected visual or text, got '${value}'`);
}
