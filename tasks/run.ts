/** `deno task run MODEL --input x.npy --output y.npy`: runs one ONNX model, or one tower of a
 * checkpoint (OpenAI .pt, torch.save, safetensors; `--tower visual|text` for a two-tower CLIP
 * file), on `.npy` inputs and saves (or prints) its outputs, so results can be compared with any other runtime. Models
 * whose inputs share a symbolic batch axis run in chunks that fit the adapter; `--verbose` prints
 * the adapter, each plan's estimated peak GPU memory (before anything runs) and timings. */
import { parseArgs } from "node:util";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { type CpuTensor, cpuTensor, type DType } from "../src/util/tensor.ts";
import { EngineError } from "../src/util/errors.ts";
import { getGpu } from "../src/gpu/mod.ts";
import {
  formatProfile,
  type KernelTuningOptions,
  type Model,
  profilePlan,
  setupKernelTuning,
  type ValueDecl,
} from "../src/onnx/mod.ts";
import { BatchedModel, DEFAULT_MAX_CHUNK_ROWS, describeBatchPlan } from "../src/models/mod.ts";
import { loadTowerModel, parseTowerName } from "../src/models/model_file.ts";
import { type NpyArray, npyArray, type NpyDType, readNpy, writeNpy } from "../src/util/npy.ts";
import { runCli } from "./_cli.ts";

const HELP =
  `usage: deno task run MODEL --input [NAME=]FILE.npy ... [--output FILE.npy|DIR] [options]

  MODEL                 an .onnx file, or a checkpoint: OpenAI CLIP .pt, torch.save .pt/.pth.tar
                        (MoCo v3, torchvision ResNet), Hugging Face .safetensors
  --tower T             visual or text: the tower of a two-tower CLIP checkpoint to run
  --input [NAME=]FILE   an input as .npy; NAME= may be left out when the model has one input
  --output PATH         .npy file for a single output, or a directory (one NAME.npy per output);
                        without it, a summary of each output is printed
  --verbose             print the adapter, plan memory estimates and timings (to stderr)
  --adapter             print the WebGPU adapter and its limits, then exit
  --memory-budget MIB   GPU memory a chunk's plan may use besides the weights (default 2048)
  --max-chunk N         most batch rows per chunk (default 256)
  --precision P         f32 (default) or f16: MatMul/Gemm operands and Conv weights stored as
                        float16 with float32 accumulation (faster; ~1e-3 relative error)
  --profile             after the run, time every dispatch of the (largest chunk's) plan and
                        print the time per operator type
  --tune MODE           budget (default): measure kernel variants of new problems for at most
                        about 10 s plus half the kernel time they serve, the rest keep default
                        kernels until a later run; full: measure every new problem (as
                        \`deno task tune\`)
  --no-tune             use cached or default kernel variants; measure nothing
  --variant-cache FILE  measured kernel choices, read at start and updated after tuning
                        (default results/variant-cache.json; 'none': neither read nor saved)`;

function parse() {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        input: { type: "string", short: "i", multiple: true, default: [] },
        output: { type: "string", short: "o" },
        tower: { type: "string" },
        verbose: { type: "boolean", short: "v", default: false },
        adapter: { type: "boolean", default: false },
        "memory-budget": { type: "string" },
        "max-chunk": { type: "string" },
        precision: { type: "string", default: "f32" },
        "no-tune": { type: "boolean", default: false },
        tune: { type: "string", default: "budget" },
        profile: { type: "boolean", default: false },
        "variant-cache": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new EngineError(`${(e as Error).message}\n${HELP}`);
  }
}

function positiveNumber(flag: string, text: string | undefined, integer: boolean) {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!(v > 0) || (integer && !Number.isInteger(v))) {
    throw new EngineError(
      `--${flag}: expected a positive ${integer ? "integer" : "number"}, got '${text}'`,
    );
  }
  return v;
}

const FLOATS = new Set<NpyDType>(["float16", "float32", "float64"]);
const INTS = new Set<NpyDType>(["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"]);

/** A `.npy` array as a host tensor of the model input's dtype (safe conversions only). */
function toInput(a: NpyArray, decl: ValueDecl, file: string): CpuTensor {
  const want: DType = decl.dtype;
  const where = `${file} for input '${decl.name}' (${decl.typeName})`;
  const isFloat = want === "float32" || want === "float16";
  const isInt = want === "int32" || want === "int64";
  if (isFloat && !FLOATS.has(a.dtype)) {
    throw new EngineError(`${where}: has ${a.dtype} values, expected floating point`);
  }
  if (isInt && !INTS.has(a.dtype)) {
    throw new EngineError(`${where}: has ${a.dtype} values, expected integers`);
  }
  if (want === "bool" && a.dtype !== "bool") {
    throw new EngineError(`${where}: has ${a.dtype} values, expected bool`);
  }
  const values = a.data instanceof BigInt64Array
    ? Array.from(a.data, (v) => {
      if (v > 2147483647n || v < -2147483648n) {
        throw new EngineError(`${where}: value ${v} does not fit the GPU's 32-bit integers`);
      }
      return Number(v);
    })
    : (a.data as ArrayLike<number>);
  return cpuTensor(want, a.shape, values);
}

function toNpy(t: CpuTensor): NpyArray {
  switch (t.dtype) {
    case "float32":
    case "float16":
    case "int32":
    case "bool":
    case "int8":
    case "uint8":
      return npyArray(t.dtype, t.shape, t.data);
    case "int64":
      return npyArray("int64", t.shape, t.data);
  }
}

function summary(name: string, t: CpuTensor): string {
  const d = t.data;
  let min = Infinity, max = -Infinity, sum = 0;
  for (let i = 0; i < d.length; i++) {
    min = Math.min(min, d[i]);
    max = Math.max(max, d[i]);
    sum += d[i];
  }
  const head = Array.from(d.subarray(0, 6), (v) => Number(v.toPrecision(6))).join(", ");
  const stats = d.length > 0
    ? `min ${min.toPrecision(6)}, max ${max.toPrecision(6)}, mean ${
      (sum / d.length).toPrecision(6)
    }`
    : "empty";
  return `${name}: ${t.dtype} [${t.shape.join(",")}]: ${stats}; first [${head}${
    d.length > 6 ? ", ..." : ""
  }]`;
}

function fileName(name: string): string {
  return `${name.replace(/[^A-Za-z0-9._-]+/g, "_") || "output"}.npy`;
}

function readInputs(model: Model, specs: readonly string[]): Record<string, CpuTensor> {
  const inputs: Record<string, CpuTensor> = {};
  const names = model.inputs.map((d) => `'${d.name}'`).join(", ") || "(none)";
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    let name: string, file: string;
    if (eq > 0 && !existsSync(spec)) {
      name = spec.slice(0, eq);
      file = spec.slice(eq + 1);
    } else if (model.inputs.length === 1) {
      name = model.inputs[0].name;
      file = spec;
    } else {
      throw new EngineError(
        `--input ${spec}: the model has several inputs (${names}); use NAME=FILE`,
      );
    }
    const decl = model.inputs.find((d) => d.name === name);
    if (!decl) {
      throw new EngineError(`--input ${spec}: the model has no input '${name}' (${names})`);
    }
    if (inputs[name]) throw new EngineError(`--input: '${name}' given twice`);
    inputs[name] = toInput(readNpy(file), decl, file);
  }
  const missing = model.inputs.filter((d) => !inputs[d.name]);
  if (missing.length > 0) {
    throw new EngineError(
      `missing --input for ${missing.map((d) => `'${d.name}'`).join(", ")} (the model's inputs: ` +
        `${names})`,
    );
  }
  return inputs;
}

function writeOutputs(path: string, outputs: Record<string, CpuTensor>, log: (s: string) => void) {
  const names = Object.keys(outputs);
  const isDir = (existsSync(path) && statSync(path).isDirectory()) || path.endsWith("/");
  if (!isDir && names.length === 1) {
    writeNpy(path, toNpy(outputs[names[0]]));
    log(`wrote ${names[0]} to ${path}`);
    return;
  }
  if (!isDir && path.endsWith(".npy")) {
    throw new EngineError(
      `--output ${path}: the model has ${names.length} outputs; give a directory`,
    );
  }
  mkdirSync(path, { recursive: true });
  const used = new Set<string>();
  for (const name of names) {
    let file = fileName(name);
    for (let k = 1; used.has(file); k++) file = `${fileName(name).slice(0, -4)}_${k}.npy`;
    used.add(file);
    writeNpy(join(path, file), toNpy(outputs[name]));
    log(`wrote ${name} to ${join(path, file)}`);
  }
}

await runCli(async () => {
  const args = parse();
  const v = args.values;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const verbose = v.verbose;
  const log = (s: string) => {
    if (verbose) console.error(s);
  };
  if (v.adapter) {
    console.log((await getGpu()).describe());
    return 0;
  }
  if (args.positionals.length !== 1) {
    throw new EngineError(`expected one MODEL, got ${args.positionals.length}\n${HELP}`);
  }
  const memoryBudget = positiveNumber("memory-budget", v["memory-budget"], false);
  const maxChunkRows = positiveNumber("max-chunk", v["max-chunk"], true);
  const precision = v.precision;
  if (precision !== "f32" && precision !== "f16") {
    throw new EngineError(`--precision: expected f32 or f16, got '${precision}'`);
  }
  const cacheArg = v["variant-cache"];
  // Saved choices apply with or without --no-tune; a missing or corrupt file is ignored.
  if (v.tune !== "budget" && v.tune !== "full") {
    throw new EngineError(`--tune: expected budget or full, got '${v.tune}'`);
  }
  const tuning = setupKernelTuning({
    tune: !v["no-tune"],
    cacheFile: cacheArg === "none" ? null : cacheArg,
    log,
  });
  // workRuns is set once the inputs say how many chunks the run has (tuning starts at planning).
  const tuneKernels:
    | { -readonly [K in keyof KernelTuningOptions]: KernelTuningOptions[K] }
    | false = tuning && {
      ...tuning,
      progress: (line: string) => console.error(line),
      budgetMs: v.tune === "full" ? Infinity : undefined,
    };
  const modelPath = args.positionals[0];
  const gpu = await getGpu();
  log(`adapter: ${gpu.describe()}`);
  let t0 = performance.now();
  const tower = parseTowerName("--tower", v.tower);
  const model = await loadTowerModel(modelPath, tower, { gpu, precision, tuneKernels });
  for (const w of model.warnings) console.error(w);
  log(`loaded ${modelPath} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  const inputs = readInputs(model, v.input);
  if (tuneKernels) {
    const rows = Object.values(inputs)[0]?.shape[0] ?? 1;
    tuneKernels.workRuns = Math.ceil(rows / (maxChunkRows ?? DEFAULT_MAX_CHUNK_ROWS));
  }

  let outputs: Record<string, CpuTensor>;
  // Shapes of the plan to profile: the inputs', or the largest chunk's.
  let profileShapes = Object.fromEntries(Object.entries(inputs).map(([n, t]) => [n, t.shape]));
  if (BatchedModel.canBatch(model)) {
    const batched = new BatchedModel(model, {
      memoryBudget: memoryBudget !== undefined ? memoryBudget * 2 ** 20 : undefined,
      maxChunkRows,
      log,
    });
    const items = new Map(Object.entries(inputs).map(([n, t]) => [n, t.shape.slice(1)]));
    const rows = Object.values(inputs)[0].shape[0];
    t0 = performance.now();
    const plan = await batched.planBatch(items, rows);
    log(`planned in ${((performance.now() - t0) / 1000).toFixed(2)} s; ${describeBatchPlan(plan)}`);
    const chunk = Math.max(...plan.chunks.map((k) => k.rows));
    profileShapes = Object.fromEntries(
      Object.entries(inputs).map(([n, t]) => [n, [chunk, ...t.shape.slice(1)]]),
    );
    t0 = performance.now();
    outputs = await batched.run(inputs, plan);
  } else {
    const shapes = Object.fromEntries(Object.entries(inputs).map(([n, t]) => [n, t.shape]));
    t0 = performance.now();
    try {
      const plan = await model.plan(shapes);
      log(`planned in ${((performance.now() - t0) / 1000).toFixed(2)} s: ${plan.describe()}`);
    } catch (e) {
      // Inputs whose values size other tensors can only be planned with their values (in run).
      if (!(e instanceof EngineError && /needed to plan/.test(e.message))) throw e;
      log("plan depends on input values: planned while running");
    }
    t0 = performance.now();
    outputs = await model.run(inputs);
  }
  log(`ran in ${((performance.now() - t0) / 1000).toFixed(3)} s`);
  if (v.output) writeOutputs(v.output, outputs, log);
  else for (const [name, t] of Object.entries(outputs)) console.log(summary(name, t));
  if (v.profile) {
    const plan = await model.plan(profileShapes);
    const shapes = Object.entries(profileShapes).map(([n, s]) => `${n} [${s}]`).join(", ");
    console.log(`profile of the plan for ${shapes} (${plan.dispatches.length} dispatches):`);
    console.log(formatProfile(await profilePlan(gpu, plan)));
  }
  model.dispose();
  return 0;
});
