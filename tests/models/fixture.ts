/** Reads encoder fixtures (`manifest.json` + raw little-endian `.bin` tensors, see the shared
 * fixtures README) and compares encoder outputs with their float64 references. */
import { join } from "node:path";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { clipImage, imagenetImage, type Preprocessing } from "../../src/models/mod.ts";

interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  file?: string;
  file_f32?: string;
  file_f64?: string;
}

interface ModelEntry {
  file: string;
  opset: number;
  weights_dtype: string;
  outputs?: TensorEntry[];
}

interface Manifest {
  name: string;
  model: string;
  models?: ModelEntry[];
  inputs: TensorEntry[];
  outputs: TensorEntry[];
  config: Record<string, unknown>;
}

/** One ONNX file of a fixture with its input and float64 reference output. */
export interface EncoderCase {
  /** `<fixture>/<file>` for test names. */
  label: string;
  path: string;
  opset: number;
  weightsDtype: string;
  input: CpuTensor;
  /** Reference output `[batch, dim]` in float64. */
  reference: Float64Array;
  outputShape: number[];
  config: Record<string, unknown>;
}

function readRaw(path: string): ArrayBuffer {
  const bytes = Deno.readFileSync(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

function readTensor(dir: string, e: TensorEntry): CpuTensor {
  const buf = readRaw(join(dir, e.file!));
  switch (e.dtype) {
    case "float32":
      return cpuTensor("float32", e.shape, new Float32Array(buf));
    case "int64":
      return cpuTensor("int64", e.shape, Array.from(new BigInt64Array(buf), Number));
    default:
      throw new Error(`${dir}: unexpected input dtype ${e.dtype}`);
  }
}

/** Every ONNX file of the fixture in `dir` (one case per file; the fp16-weight variant has its
 * own reference). */
export function encoderCases(dir: string): EncoderCase[] {
  const m = JSON.parse(Deno.readTextFileSync(join(dir, "manifest.json"))) as Manifest;
  if (m.inputs.length !== 1 || m.outputs.length !== 1) {
    throw new Error(`${dir}: expected one input and one output`);
  }
  const input = readTensor(dir, m.inputs[0]);
  const models = m.models ?? [{ file: m.model, opset: 0, weights_dtype: "float32" }];
  return models.map((entry) => {
    const out = entry.outputs?.[0] ?? m.outputs[0];
    return {
      label: `${m.name}/${entry.file}`,
      path: join(dir, entry.file),
      opset: entry.opset,
      weightsDtype: entry.weights_dtype,
      input,
      reference: new Float64Array(readRaw(join(dir, out.file_f64!))),
      outputShape: out.shape,
      config: m.config,
    };
  });
}

/** Rows `rows` (indices, may repeat) of a host tensor, as a new tensor. */
export function pickRows(t: CpuTensor, rows: readonly number[]): CpuTensor {
  const row = t.data.length / t.shape[0];
  const out = cpuTensor(t.dtype, [rows.length, ...t.shape.slice(1)]);
  rows.forEach((r, i) =>
    (out.data as Float64Array).set(
      (t.data as Float64Array).subarray(r * row, (r + 1) * row),
      i * row,
    )
  );
  return out;
}

/** The same rows of a float64 reference. */
export function pickRefRows(ref: Float64Array, dim: number, rows: readonly number[]): Float64Array {
  const out = new Float64Array(rows.length * dim);
  rows.forEach((r, i) => out.set(ref.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}

/** max|y - ref| and max|ref|. */
export function errorStats(
  y: ArrayLike<number>,
  ref: ArrayLike<number>,
): { maxErr: number; maxRef: number } {
  if (y.length !== ref.length) throw new Error(`length ${y.length} != reference ${ref.length}`);
  let maxErr = 0, maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(y[i] - ref[i]);
    if (!(e <= maxErr)) maxErr = e; // NaN wins
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  return { maxErr, maxRef };
}

/** Asserts the tolerance: max|y - ref| <= rtol * max|ref| + atol. */
export function assertMatchesReference(
  y: ArrayLike<number>,
  ref: ArrayLike<number>,
  label: string,
  rtol = 1e-4,
  atol = 1e-5,
): { maxErr: number; maxRef: number } {
  const s = errorStats(y, ref);
  const bound = rtol * s.maxRef + atol;
  if (!(s.maxErr <= bound)) {
    throw new Error(
      `${label}: max|y - ref| = ${s.maxErr.toExponential(3)} > ${bound.toExponential(3)} ` +
        `(${rtol} * max|ref| ${s.maxRef.toExponential(3)} + ${atol})`,
    );
  }
  return s;
}

/** The preprocessing a fixture's model expects, from its manifest config: token context and
 * vocabulary for text towers, resolution and CLIP or ImageNet statistics for image towers. */
export function preprocessingFor(c: EncoderCase): Preprocessing {
  const cfg = c.config;
  if (c.input.dtype === "int64") {
    const vocab = cfg.vocab as number;
    return { kind: "text", contextLength: cfg.context as number, maxTokenId: vocab - 1 };
  }
  const size = (cfg.resolution as number) ?? c.input.shape[2];
  return String(cfg.arch).startsWith("torchvision") ? imagenetImage(size) : clipImage(size);
}
