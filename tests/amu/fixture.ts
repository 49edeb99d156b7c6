/** Loads the AMU training traces in `../shared/fixtures/amu_*` (see the fixtures README). */
import { join } from "node:path";
import { sharedPath } from "../helpers.ts";
import type { AmuFeatures } from "../../src/models/features.ts";
import { type AmuConfig, amuConfig, type UncertaintyKind } from "../../src/amu/config.ts";

export interface AmuTrace {
  dir: string;
  config: AmuConfig;
  features: AmuFeatures;
  order: Int32Array;
  /** Output arrays by name: float64 values. */
  f64(name: string): Float64Array;
  f32(name: string): Float32Array;
  manifest: Manifest;
}

interface Manifest {
  inputs: { name: string; dtype: string; shape: number[]; file: string }[];
  outputs: { name: string; shape: number[]; file_f32: string; file_f64: string }[];
  config: Record<string, unknown>;
}

function readRaw(path: string): ArrayBuffer {
  const bytes = Deno.readFileSync(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/** The trace `name`, or undefined (with a SKIP warning) when the shared folder is absent. */
export function loadAmuTrace(name: string): AmuTrace | undefined {
  const dir = sharedPath("fixtures", name);
  if (!dir) return undefined;
  const manifest = JSON.parse(Deno.readTextFileSync(join(dir, "manifest.json"))) as Manifest;
  const input = (n: string) => {
    const spec = manifest.inputs.find((i) => i.name === n);
    if (!spec) throw new Error(`${dir}: no input ${n}`);
    const buf = readRaw(join(dir, spec.file));
    if (spec.dtype === "int64") {
      return { shape: spec.shape, data: Int32Array.from(new BigInt64Array(buf), Number) };
    }
    return { shape: spec.shape, data: new Float32Array(buf) };
  };
  const mat = (n: string) => {
    const a = input(n);
    return { rows: a.shape[0], cols: a.shape[1], data: a.data as Float32Array };
  };
  const features: AmuFeatures = {
    trainClip: mat("train_clip"),
    trainAux: mat("train_aux"),
    trainLabels: input("train_labels").data as Int32Array,
    testClip: mat("test_clip"),
    testAux: mat("test_aux"),
    testLabels: input("test_labels").data as Int32Array,
    clipWeights: mat("clip_weights"),
  };
  const c = manifest.config;
  const config = amuConfig({
    lr: c.lr as number,
    epochs: c.epochs as number,
    batchSize: c.batch_size as number,
    alpha: c.alpha as number,
    lambdaMerge: c.lambda_merge as number,
    uncertainty: c.uncertainty as UncertaintyKind,
    uncertaintyPower: c.power as number,
    seed: c.seed as number,
    weightDecay: c.weight_decay as number,
    adamEps: c.adam_eps as number,
    adamBeta1: (c.adam_betas as number[])[0],
    adamBeta2: (c.adam_betas as number[])[1],
    logitScale: c.logit_scale as number,
  });
  const output = (n: string, kind: "file_f32" | "file_f64") => {
    const spec = manifest.outputs.find((o) => o.name === n);
    if (!spec) throw new Error(`${dir}: no output ${n}`);
    return readRaw(join(dir, spec[kind]));
  };
  return {
    dir,
    config,
    features,
    order: input("perms").data as Int32Array,
    f64: (n) => new Float64Array(output(n, "file_f64")),
    f32: (n) => new Float32Array(output(n, "file_f32")),
    manifest,
  };
}
