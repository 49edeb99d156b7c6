/** Model rows of the GPU report: a fixture or `export.py --full` folder planned at a batch and an
 * operand precision, checked against the folder's float64 PyTorch output before it is timed.
 *
 * Like src/bench/suites/models.ts (whose `modelCase` has no precision), but with the precision
 * and its bound: f32 keeps the models' 1e-4 * max|ref| + 1e-5 bound, f16 the 5e-3 * max|ref| that
 * tests/models/precision_test.ts asserts for the float16 operand path. */
import { join } from "node:path";
import { cpuTensor, sizeOf } from "../../src/util/tensor.ts";
import { readTensor, toGpuArray } from "../../src/gpu/mod.ts";
import { loadModel } from "../../src/onnx/mod.ts";
import type { ComputePrecision } from "../../src/onnx/mod.ts";
import { checkOutput, type Reference } from "../../src/bench/check.ts";
import type { BenchCase } from "../../src/bench/types.ts";
import { bytesOf, cycleRows as cycle, readManifest } from "../../src/bench/suites/models.ts";

/** The bound a model output must meet against float64 PyTorch, by precision. */
export function modelTolerance(ref: Float64Array, precision: ComputePrecision): number {
  let max = 0;
  for (const v of ref) max = Math.max(max, Math.abs(v));
  return precision === "f16" ? 5e-3 * max : 1e-4 * max + 1e-5;
}

export function reportModelCase(
  dir: string,
  label: string,
  batch: number,
  precision: ComputePrecision,
): BenchCase {
  const manifest = readManifest(dir);
  const file = join(dir, manifest.models?.[0]?.file ?? manifest.model);
  const input = manifest.inputs[0], output = manifest.outputs[0];
  const itemShape = input.shape.slice(1);
  const rows = input.shape[0];
  const shape = [batch, ...itemShape];
  return {
    name: `${label}-b${batch}-${precision}`,
    shape: `${input.name} [${shape.join(",")}] -> [${batch},${sizeOf(output.shape.slice(1))}]`,
    items: batch,
    async prepare({ gpu, tune }) {
      const raw = bytesOf(join(dir, input.file!));
      const values: ArrayLike<number> = input.dtype === "int64"
        ? Float64Array.from(
          cycle(new BigInt64Array(raw), rows, batch, (n) => new BigInt64Array(n)),
          Number,
        )
        : cycle(new Float32Array(raw), rows, batch, (n) => new Float32Array(n));
      if (input.dtype !== "int64" && input.dtype !== "float32") {
        throw new Error(`${dir}: input dtype ${input.dtype} not handled`);
      }
      const ref = cycle(
        new Float64Array(bytesOf(join(dir, output.file_f64!))),
        output.shape[0],
        batch,
        (n) => new Float64Array(n),
      );
      const reference: Reference = {
        length: ref.length,
        indices: Array.from({ length: ref.length }, (_, i) => i),
        values: ref,
        tolerance: modelTolerance(ref, precision),
        metric: "absolute",
      };
      const model = await loadModel(file, gpu, {
        maxPlans: 1,
        precision,
        // A bounded tuning per plan: the report runs 24 plans inside its time budget.
        tuneKernels: tune ? { cacheFile: null, budgetMs: 5_000 } : false,
      });
      try {
        const plan = await model.plan({ [input.name]: shape });
        const inBuf = plan.inputBuffers.get(input.name);
        const out = plan.outputs.get(output.name);
        if (!inBuf) throw new Error(`plan has no buffer for input '${input.name}'`);
        if (!out || out.kind !== "gpu") throw new Error(`output '${output.name}' not computed`);
        const dtype = input.dtype === "int64" ? "int64" : "float32";
        const data = toGpuArray(cpuTensor(dtype, shape, values), input.name);
        gpu.device.queue.writeBuffer(inBuf.buffer, 0, data as Float32Array<ArrayBuffer>);
        return {
          ours: {
            dispatches: plan.dispatches,
            extra: {
              gpu_mib: Math.round(plan.memory.total / 2 ** 20),
              dispatches: plan.dispatches.length,
            },
            output: () => readTensor(gpu, out.tensor),
            dispose: () => model.dispose(),
          },
          check: (y) => checkOutput(reference, y),
        };
      } catch (e) {
        model.dispose();
        throw e;
      }
    },
  };
}
