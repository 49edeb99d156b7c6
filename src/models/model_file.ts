/** One entry point for every model file the engine reads: an ONNX graph as it is, or a checkpoint
 * (TorchScript, torch.save, safetensors) whose architecture is built from its weights. Callers
 * name the tower they want from a two-tower CLIP file; single-tower files need no name. */
import { EngineError } from "../util/errors.ts";
import { getGpu, type Gpu } from "../gpu/mod.ts";
import {
  type GraphBuilder,
  loadModelFile,
  Model,
  type ModelOptions,
  OPS,
  type ParsedModel,
  type ValueDecl,
} from "../onnx/mod.ts";
import { checkpointKind, openCheckpoint } from "./checkpoint/open.ts";
import type { CheckpointFormat } from "./checkpoint/state_dict.ts";
import { buildTower, describeCheckpoint, type TowerName } from "./arch/mod.ts";

export type { TowerName };

/** What a model file holds (for `deno task inspect`): JSON-ready fields and readable lines. */
export interface ModelFileSummary {
  readonly path: string;
  readonly bytes: number;
  readonly format: "onnx" | CheckpointFormat;
  /** Key layout of a checkpoint ("OpenAI CLIP"...), or the ONNX producer. */
  readonly layout: string;
  readonly towers: readonly {
    readonly tower: string;
    readonly architecture: string;
    readonly description: string;
    readonly inputSize?: number;
    readonly contextLength?: number;
    readonly embedDim?: number;
    readonly parameters: number;
    readonly dtypes: string;
  }[];
  readonly extras: Readonly<Record<string, unknown>>;
  readonly lines: readonly string[];
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
  if (checkpointKind(path) === "onnx") {
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

/** What `path` is, for `deno task inspect`: checkpoints from their index and shapes (no weight is
 * read), ONNX models from their graph. */
export function summarizeModelFile(path: string): ModelFileSummary {
  const bytes = fileSize(path);
  if (checkpointKind(path) === "onnx") return summarizeOnnx(path, bytes);
  const sd = openCheckpoint(path);
  try {
    const summary = describeCheckpoint(sd);
    const towers = summary.towers.map((t) => ({
      tower: t.tower,
      architecture: t.architecture,
      description: t.description,
      inputSize: t.inputSize,
      contextLength: t.contextLength,
      embedDim: t.embedDim,
      parameters: t.parameters,
      dtypes: t.dtypes,
    }));
    const extras = Object.fromEntries(summary.extras);
    const lines = [
      `${path}: ${FORMAT_NAMES[sd.format]}, ${mib(bytes)}, ${sd.entries.size} tensors, ` +
      `${summary.layout} key names`,
      ...towers.map((t) =>
        `  ${t.tower}: ${t.description}; ${
          millions(t.parameters)
        } parameters stored as ${t.dtypes}` +
        (t.inputSize ? `; input ${t.inputSize}x${t.inputSize}` : "")
      ),
      ...(summary.extras.size
        ? [`  also holds: ${[...summary.extras].map(([k, v]) => `${k}=${String(v)}`).join(", ")}`]
        : []),
    ];
    return { path, bytes, format: sd.format, layout: summary.layout, towers, extras, lines };
  } finally {
    sd.close();
  }
}

const FORMAT_NAMES: Readonly<Record<CheckpointFormat, string>> = {
  torchscript: "TorchScript archive",
  "torch-zip": "torch.save zip archive",
  "torch-legacy": "legacy torch.save file (PyTorch < 1.6)",
  safetensors: "safetensors",
};

function summarizeOnnx(path: string, bytes: number): ModelFileSummary {
  const parsed = loadModelFile(path, OPS);
  const g = parsed.graph;
  let parameters = 0;
  for (const t of g.constants.values()) {
    if (t.dtype === "float32" || t.dtype === "float16") parameters += t.data.length;
  }
  const dims = (d: ValueDecl) => `[${(d.dims ?? []).map((x) => x ?? "?").join(",")}]`;
  const io = (ds: readonly ValueDecl[]) => ds.map((d) => `${d.name} ${d.typeName} ${dims(d)}`);
  const description = `ONNX graph of ${g.nodes.length} nodes; inputs ${io(g.inputs).join(", ")}; ` +
    `outputs ${io(g.outputs).join(", ")}`;
  const opset = g.opsets.get("") ?? 0;
  return {
    path,
    bytes,
    format: "onnx",
    layout: parsed.producer || "unknown producer",
    towers: [{
      tower: "model",
      architecture: "onnx",
      description,
      parameters,
      dtypes: [...new Set([...g.constants.values()].map((t) => t.dtype))].join(", "),
    }],
    extras: { opset, irVersion: parsed.irVersion },
    lines: [
      `${path}: ONNX model (opset ${opset}, ${parsed.producer || "unknown producer"}), ` +
      `${mib(bytes)}`,
      `  ${description}; ${millions(parameters)} parameters`,
    ],
  };
}

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "file not found" : (e as Error).message;
    throw new EngineError(`cannot read ${path}: ${why}`);
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function millions(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : `${n}`;
}

/** A tower name from a flag value. */
export function parseTowerName(flag: string, value: string | undefined): TowerName | undefined {
  if (value === undefined) return undefined;
  if (value === "visual" || value === "text" || value === "image") {
    return value === "image" ? "visual" : value;
  }
  throw new EngineError(`${flag}: expected visual or text, got '${value}'`);
}
