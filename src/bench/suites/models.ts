/** Whole models: the full-size encoders that `export.py --full DIR` writes (random weights at the
 * real architectures; see ../shared/fixtures/README.md), at batch 1 (and 8 with --large).
 *
 * Our side is the ONNX executor's plan for the batch, replayed like a kernel row (inputs written
 * once into the plan's input buffers). The reference is the folder's float64 PyTorch output
 * (rows cycled when the batch exceeds the fixture's). Peers run the same .onnx file. A row also
 * reports items (images, prompts) per second and the plan's GPU memory. Opt-in (`deno task bench
 * models`): one inference takes seconds here, and minutes for the WebGPU peers. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cpuTensor, type DType, sizeOf } from "../../util/tensor.ts";
import { readTensor, toGpuArray } from "../../gpu/mod.ts";
import { loadModel } from "../../onnx/mod.ts";
import { checkOutput, type Reference } from "../check.ts";
import { GPU_MEMORY_KEY } from "../report.ts";
import type { BenchCase, HostTensor, Suite } from "../types.ts";

/** Row name prefix -> folder written by export.py --full. */
export const FULL_MODELS: Readonly<Record<string, string>> = {
  "vit-b16": "clip_vit_b16",
  "rn50": "clip_rn50",
  "text": "clip_text_b",
  "resnet50": "aux_resnet50",
};

/** The models' accuracy bound (as the fixture and full-size model tests assert):
 * max|y - ref| <= 1e-4 * max|ref| + 1e-5 against float64 PyTorch. */
function modelTolerance(ref: Float64Array): number {
  let max = 0;
  for (const v of ref) max = Math.max(max, Math.abs(v));
  return 1e-4 * max + 1e-5;
}

export interface ManifestTensor {
  name: string;
  dtype: string;
  shape: number[];
  file?: string;
  file_f64?: string;
}

export interface Manifest {
  model: string;
  models?: { file: string }[];
  inputs: ManifestTensor[];
  outputs: ManifestTensor[];
}

export function readManifest(dir: string): Manifest {
  const m = JSON.parse(Deno.readTextFileSync(join(dir, "manifest.json"))) as Manifest;
  if (m.inputs?.length !== 1 || m.outputs?.length !== 1) {
    throw new Error(`${dir}/manifest.json: expected one input and one output`);
  }
  return m;
}

export function bytesOf(path: string): ArrayBuffer {
  const b = readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** What `cycleRows` needs of a typed array. */
interface RowArray<T> {
  readonly length: number;
  subarray(begin: number, end: number): T;
  set(source: T, offset: number): void;
}

/** Rows `0..batch-1` of a [rows, ...] array, cycling through the available rows (the GPU
 * report's PyTorch peer cycles the same way, so both sides see the same inputs). */
export function cycleRows<T extends RowArray<T>>(
  data: T,
  rows: number,
  batch: number,
  make: (n: number) => T,
): T {
  const per = data.length / rows;
  const out = make(batch * per);
  for (let i = 0; i < batch; i++) {
    out.set(data.subarray((i % rows) * per, (i % rows + 1) * per), i * per);
  }
  return out;
}

export function modelCase(dir: string, rowPrefix: string, batch: number): BenchCase {
  const manifest = readManifest(dir);
  const file = join(dir, manifest.models?.[0]?.file ?? manifest.model);
  const input = manifest.inputs[0], output = manifest.outputs[0];
  const itemShape = input.shape.slice(1);
  const fixtureRows = input.shape[0];
  const outPerRow = sizeOf(output.shape.slice(1));
  return {
    name: `${rowPrefix}-b${batch}`,
    shape: `${input.name} [${[batch, ...itemShape].join(",")}] -> [${batch},${outPerRow}]`,
    items: batch,
    async prepare({ gpu, tune }) {
      let host: HostTensor;
      let engineDtype: DType;
      let values: ArrayLike<number>;
      const raw = bytesOf(join(dir, input.file!));
      if (input.dtype === "int64") {
        const ids = cycleRows(
          new BigInt64Array(raw),
          fixtureRows,
          batch,
          (n) => new BigInt64Array(n),
        );
        host = { dtype: "int64", shape: [batch, ...itemShape], data: ids };
        engineDtype = "int64";
        values = Float64Array.from(ids, Number);
      } else if (input.dtype === "float32") {
        const x = cycleRows(new Float32Array(raw), fixtureRows, batch, (n) => new Float32Array(n));
        host = { shape: [batch, ...itemShape], data: x };
        engineDtype = "float32";
        values = x;
      } else {
        throw new Error(`${dir}: input dtype ${input.dtype} not handled`);
      }
      const ref64 = cycleRows(
        new Float64Array(bytesOf(join(dir, output.file_f64!))),
        output.shape[0],
        batch,
        (n) => new Float64Array(n),
      );
      const reference: Reference = {
        length: ref64.length,
        indices: Array.from({ length: ref64.length }, (_, i) => i),
        values: ref64,
        tolerance: modelTolerance(ref64),
        metric: "absolute",
      };

      // Kernel variants measured for the model's problems, as `deno task run` and training do
      // (the choices go to the process-wide cache, which the CLI saves).
      const model = await loadModel(file, gpu, {
        maxPlans: 1,
        tuneKernels: tune ? { cacheFile: null, log: (line) => console.log(`  ${line}`) } : false,
      });
      try {
        const plan = await model.plan({ [input.name]: host.shape });
        const inBuf = plan.inputBuffers.get(input.name);
        const out = plan.outputs.get(output.name);
        if (!inBuf) throw new Error(`plan has no buffer for input '${input.name}'`);
        if (!out || out.kind !== "gpu") {
          throw new Error(`output '${output.name}' is not computed`);
        }
        const data = toGpuArray(cpuTensor(engineDtype, host.shape, values), input.name);
        gpu.device.queue.writeBuffer(inBuf.buffer, 0, data as Float32Array<ArrayBuffer>);
        return {
          ours: {
            dispatches: plan.dispatches,
            extra: {
              [GPU_MEMORY_KEY]: Math.round(plan.memory.total / 2 ** 20),
              dispatches: plan.dispatches.length,
            },
            output: () => readTensor(gpu, out.tensor),
            dispose: () => model.dispose(),
          },
          check: (y) => checkOutput(reference, y),
          peers: {
            onnx: {
              model: readFileSync(file),
              inputs: { [input.name]: host },
              output: output.name,
            },
          },
        };
      } catch (e) {
        model.dispose();
        throw e;
      }
    },
  };
}

/** Model folders present under `modelsDir` (those with a manifest). */
export function availableModels(modelsDir: string | undefined): [string, string][] {
  if (!modelsDir) return [];
  return Object.entries(FULL_MODELS)
    .map(([row, folder]) => [row, join(modelsDir, folder)] as [string, string])
    .filter(([, dir]) => existsSync(join(dir, "manifest.json")));
}

export const modelsSuite: Suite = {
  name: "models",
  description: "full-size ViT-B/16, RN50, text and ResNet-50 encoders at batch 1 (8 with " +
    "--large), from --models DIR or $FULL_MODELS_DIR (export.py --full); opt-in",
  optIn: true,
  cases({ large, modelsDir }) {
    const batches = large ? [1, 8] : [1];
    return availableModels(modelsDir).flatMap(([row, dir]) =>
      batches.map((b) => modelCase(dir, row, b))
    );
  },
};
