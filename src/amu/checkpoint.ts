/** Checkpoints of a run directory (run_dir.ts names the files):
 *   checkpoint_last.npz  everything needed to resume after the last finished epoch:
 *                        weight, exp_avg, exp_avg_sq [C, D] float32; step, epoch int64 scalars;
 *                        best_weight [C, D], best_epoch; metrics_json (uint8, UTF-8 JSON of the
 *                        metrics so far). One file written atomically, so a resume never sees a
 *                        half-updated state.
 *   checkpoint_best.npz  weight [C, D] float32, epoch int64, test_acc float64 of the best epoch
 * Arrays open with `np.load`. */
import { EngineError } from "../util/errors.ts";
import { type NpyArray, npyArray, toNumbers } from "../util/npy.ts";
import { npzGet, readNpz, writeNpz } from "../util/npz.ts";
import type { AmuMetrics } from "./metrics.ts";

/** Resumable training state after `epoch` finished epochs. */
export interface Checkpoint {
  classes: number;
  dim: number;
  weight: Float32Array;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  /** Global optimizer steps done. */
  step: number;
  /** Epochs done. */
  epoch: number;
  bestWeight: Float32Array;
  bestEpoch: number;
  metrics: AmuMetrics;
}

function matrix(data: Float32Array, c: number, d: number): NpyArray {
  return { dtype: "float32", shape: [c, d], data };
}

function scalarInt(v: number): NpyArray {
  return npyArray("int64", [], [v]);
}

export function saveCheckpoint(path: string, ck: Checkpoint): void {
  const json = new TextEncoder().encode(JSON.stringify(ck.metrics));
  writeNpz(path, {
    weight: matrix(ck.weight, ck.classes, ck.dim),
    exp_avg: matrix(ck.expAvg, ck.classes, ck.dim),
    exp_avg_sq: matrix(ck.expAvgSq, ck.classes, ck.dim),
    step: scalarInt(ck.step),
    epoch: scalarInt(ck.epoch),
    best_weight: matrix(ck.bestWeight, ck.classes, ck.dim),
    best_epoch: scalarInt(ck.bestEpoch),
    metrics_json: { dtype: "uint8", shape: [json.length], data: json },
  });
}

function f32Matrix(a: NpyArray, name: string, path: string): Float32Array {
  if (a.dtype !== "float32" || a.shape.length !== 2) {
    throw new EngineError(`${path}: ${name} must be float32 [C, D]`);
  }
  return a.data as Float32Array;
}

function scalar(a: NpyArray, name: string, path: string): number {
  if (a.data.length !== 1) throw new EngineError(`${path}: ${name} must be a scalar`);
  return toNumbers(a, `${path}: ${name}`)[0];
}

export function loadCheckpoint(path: string): Checkpoint {
  const z = readNpz(path);
  const get = (k: string) => npzGet(z, k, path);
  const w = get("weight");
  const metricsBytes = get("metrics_json");
  let metrics: AmuMetrics;
  try {
    metrics = JSON.parse(new TextDecoder().decode(metricsBytes.data as Uint8Array));
  } catch (e) {
    throw new EngineError(`${path}: metrics_json is not valid JSON (${(e as Error).message})`);
  }
  return {
    classes: w.shape[0],
    dim: w.shape[1],
    weight: f32Matrix(w, "weight", path),
    expAvg: f32Matrix(get("exp_avg"), "exp_avg", path),
    expAvgSq: f32Matrix(get("exp_avg_sq"), "exp_avg_sq", path),
    step: scalar(get("step"), "step", path),
    epoch: scalar(get("epoch"), "epoch", path),
    bestWeight: f32Matrix(get("best_weight"), "best_weight", path),
    bestEpoch: scalar(get("best_epoch"), "best_epoch", path),
    metrics,
  };
}

export function saveBestWeights(
  path: string,
  weight: Float32Array,
  classes: number,
  dim: number,
  epoch: number,
  testAcc: number,
): void {
  writeNpz(path, {
    weight: matrix(weight, classes, dim),
    epoch: scalarInt(epoch),
    test_acc: npyArray("float64", [], [testAcc]),
  });
}

/** A cheap fingerprint of a feature set (shapes, labels, and a strided sample of every matrix),
 * stored in config.json so `--resume` refuses to continue on different features. */
export function featureFingerprint(arrays: readonly (ArrayLike<number>)[]): string {
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (const a of arrays) {
    const stride = Math.max(1, Math.floor(a.length / 65536));
    h1 = Math.imul(h1 ^ a.length, 0x01000193) >>> 0;
    for (let i = 0; i < a.length; i += stride) {
      f32[0] = a[i];
      h1 = Math.imul(h1 ^ u32[0], 0x01000193) >>> 0;
      h2 = Math.imul(h2 ^ (u32[0] >>> 7) ^ i, 0x5bd1e995) >>> 0;
    }
  }
  return h1.toString(16).padStart(8, "0") + h2.toString(16).padStart(8, "0");
}
