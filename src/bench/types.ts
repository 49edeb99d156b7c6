/** The benchmark's data model. A row is one workload (a kernel at a model's shape, a square
 * matmul, a whole model, a training step) measured for us and for each peer runtime.
 *
 * A case describes the workload; `prepare` builds our side (GPU dispatches replayed, or any async
 * invocation such as a model executor's run) together with a reference check that every runner's
 * output goes through before its time counts, and optionally the same workload for the peers
 * (an ONNX model for onnxruntime, a function of tfjs ops). Model rows are ordinary rows: their
 * `run` calls the executor, their check compares with a fixture or onnxruntime-node. */
import type { Dispatch, Gpu } from "../gpu/mod.ts";
// Types only: tfjs is loaded lazily by its peer, and only when a selected row needs it.
import type * as TfCore from "@tensorflow/tfjs-core";

/** The peer runtimes, by the names used in the JSON report. */
export const PEER_NAMES = [
  "onnxruntime-web-webgpu",
  "tfjs-webgpu",
  "onnxruntime-node-cpu",
] as const;
export type PeerName = typeof PEER_NAMES[number];

/** Short column titles for the terminal table. */
export const PEER_SHORT: Readonly<Record<PeerName, string>> = {
  "onnxruntime-web-webgpu": "ort-web",
  "tfjs-webgpu": "tfjs",
  "onnxruntime-node-cpu": "ort-node",
};

/** A host tensor handed to peers (row-major): float32, or int64 (token ids). */
export type HostTensor =
  | { readonly dtype?: "float32"; readonly shape: readonly number[]; readonly data: Float32Array }
  | { readonly dtype: "int64"; readonly shape: readonly number[]; readonly data: BigInt64Array };

/** Result of comparing one output with the case's reference. Errors are mixed absolute /
 * relative: |got - ref| / max(1, |ref|), maximised over the checked positions. */
export interface CheckResult {
  readonly maxError: number;
  readonly tolerance: number;
  readonly ok: boolean;
  /** Why the check failed beyond a large error (wrong length, NaN...). */
  readonly note?: string;
}

/** Our side of one row, ready to be timed. Exactly one of `dispatches` / `run` is given. */
export interface OursRun {
  /** One invocation's GPU work, replayed as is: timed GPU-side with timestamp queries when the
   * device has them. */
  readonly dispatches?: readonly Dispatch[];
  /** Or a host-driven invocation (model executor, trainer step); the fence waits for its GPU
   * work. Timed by wall clock. */
  readonly run?: () => Promise<void>;
  /** Our output after the last invocation, in the reference layout. */
  output(): Promise<ArrayLike<number>>;
  /** Which kernel variant ran (matmul/conv tiles), printed beside the row. */
  readonly variant?: string;
  /** Extra numbers for the row (images/s, peak GPU memory...), reported as is. */
  readonly extra?: Readonly<Record<string, number | string>>;
  dispose(): void;
}

/** The same workload for an onnxruntime session: a model and its feeds. */
export interface OnnxWorkload {
  readonly model: Uint8Array;
  readonly inputs: Readonly<Record<string, HostTensor>>;
  /** The output compared with the reference. */
  readonly output: string;
  /** Converts the output to the reference layout when it differs. */
  toReference?(data: Float32Array): Float32Array;
}

/** The same workload as tfjs ops. `run` receives tfjs-core and the uploaded inputs. */
export interface TfjsWorkload {
  readonly inputs: readonly HostTensor[];
  run(tf: typeof TfCore, inputs: readonly TfCore.Tensor[]): TfCore.Tensor;
  toReference?(data: Float32Array): Float32Array;
}

export interface PeerWorkloads {
  readonly onnx?: OnnxWorkload;
  readonly tfjs?: TfjsWorkload;
}

/** What `BenchCase.prepare` returns: our run, the reference check, and the peers' workloads. */
export interface PreparedCase {
  readonly ours: OursRun;
  /** Compares any runner's output (in the reference layout) with the reference. */
  check(output: ArrayLike<number>): CheckResult;
  readonly peers?: PeerWorkloads;
}

export interface BenchContext {
  readonly gpu: Gpu;
  /** Measure kernel variants on this adapter before preparing (else the default choices). */
  readonly tune: boolean;
}

/** One benchmark row's workload. */
export interface BenchCase {
  /** Unique, filterable: `matmul-1024`, `vit-b16-b1-qkv`, `rn50-b1-stem-7x7`. */
  readonly name: string;
  /** Human-readable shape, e.g. `1024x1024x1024`, `[1,3,224,224] * [64,3,7,7] s2`. */
  readonly shape: string;
  /** Floating-point operations per invocation (2 per multiply-add), for GFLOP/s. */
  readonly flops?: number;
  /** Minimum bytes read and written per invocation, for GB/s. */
  readonly bytes?: number;
  /** Items (images, prompts) per invocation, for items/s (model rows). */
  readonly items?: number;
  prepare(ctx: BenchContext): Promise<PreparedCase>;
}

/** A named group of cases (`deno task bench SUITE`). `large` adds the slow, opt-in shapes. */
export interface Suite {
  readonly name: string;
  readonly description: string;
  /** Runs only when named (or with `all`), not in a plain `deno task bench`. */
  readonly optIn?: boolean;
  cases(options: SuiteOptions): BenchCase[];
}

export interface SuiteOptions {
  readonly large: boolean;
  /** Folder of full-size models (`export.py --full`), when given. */
  readonly modelsDir?: string;
}

/** Summary statistics of per-invocation times, in milliseconds. */
export interface Stats {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** Half the range relative to the median: the "±" printed beside it. */
  readonly spread: number;
  readonly samples: readonly number[];
}

export type Clock = "gpu-timestamp" | "wall-fence";

export interface Measurement {
  /** Per-invocation time that the row reports: GPU-side when available, else wall. */
  readonly stats: Stats;
  readonly clock: Clock;
  /** Wall clock with a fence, same method as the peers (what ratios use). */
  readonly wall: Stats;
  /** Invocations per run. */
  readonly reps: number;
  /** Why the clock is not the preferred one (e.g. timestamps that disagree with the wall). */
  readonly note?: string;
}

export type RunStatus = "ok" | "wrong" | "failed" | "unsupported" | "unavailable" | "skipped";

export interface RunnerResult {
  readonly status: RunStatus;
  readonly measurement?: Measurement;
  readonly maxError?: number;
  readonly note?: string;
}

export interface RowResult {
  readonly name: string;
  readonly suite: string;
  readonly shape: string;
  readonly flops?: number;
  readonly bytes?: number;
  readonly items?: number;
  readonly variant?: string;
  readonly extra?: Readonly<Record<string, number | string>>;
  readonly ours: RunnerResult;
  readonly peers: Readonly<Partial<Record<PeerName, RunnerResult>>>;
}
