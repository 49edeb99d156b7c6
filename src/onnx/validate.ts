/** Validate mode (docs/validate.md): a plan runs node by node, and every node's GPU outputs are
 * compared with its operator's CPU implementation (the one constant folding uses) computed from
 * that node's own GPU inputs, read back. The first node that differs beyond tolerance is named
 * in a ValidationError, so a wrong kernel is found where it goes wrong rather than at the
 * model's outputs. A debugging mode: every node's inputs and outputs cross to the host. */
import { type CpuTensor, type DType, shapeString, sizeOf } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import { encodeDispatches, fromGpuArray, type Gpu, type GpuTensor } from "../gpu/mod.ts";
import type { ComputePrecision, OnnxNode } from "./types.ts";
import { UnsupportedError } from "./graph.ts";
import { NONDETERMINISTIC } from "./analyze.ts";
import { onNode } from "./ops/common.ts";
import type { Plan, PlannedNode } from "./plan.ts";

/** The environment variable that turns validate mode on ("1") for every model a process runs
 * (`ModelOptions.validate` overrides it). */
export const VALIDATE_ENV = "ENGINE_VALIDATE";

/** Validate mode as ENGINE_VALIDATE sets it: "1" on; unset, empty or "0" off. */
export function validateFromEnv(): boolean {
  const value = Deno.env.get(VALIDATE_ENV);
  if (value === undefined || value === "" || value === "0") return false;
  if (value === "1") return true;
  throw new EngineError(
    `${VALIDATE_ENV} is '${value}': set it to 1 to check every node against the CPU, or 0`,
  );
}

/** A GPU value passes where |gpu - cpu| <= atol + rtol * |cpu| (numpy's allclose), with atol
 * widened by `atolOfMax` times the largest |cpu| of the output. */
export interface Tolerance {
  readonly rtol: number;
  readonly atol: number;
  /** Share of the output's largest magnitude added to `atol`: half-precision operands err by a
   * share of the summands' size, which cancellation can leave far above a small result. */
  readonly atolOfMax: number;
}

/** float32 results: the conformance runner's rtol (tasks/conformance.ts); a larger atol, since
 * one node's sums round differently on the GPU and values near zero after cancellation keep
 * only the absolute error. */
export const FLOAT32_TOLERANCE: Tolerance = { rtol: 1e-3, atol: 1e-4, atolOfMax: 0 };
/** float16 results, and every float result of a model planned with precision "f16" (half
 * operands): about ten half-precision ulps, and the share of the output's scale that the
 * precision tests allow a whole model (tests/models/precision_test.ts). */
export const FLOAT16_TOLERANCE: Tolerance = { rtol: 1e-2, atol: 1e-3, atolOfMax: 5e-3 };

/** The tolerance for an output of `dtype`; undefined: integers and bools, compared exactly. */
export function toleranceFor(dtype: DType, precision: ComputePrecision): Tolerance | undefined {
  if (dtype === "float16") return FLOAT16_TOLERANCE;
  if (dtype === "float32") return precision === "f16" ? FLOAT16_TOLERANCE : FLOAT32_TOLERANCE;
  return undefined;
}

/** How a GPU output differs from the CPU's: the value furthest off, and how many are off. */
export interface Mismatch {
  /** Flat index and multi-index of the value with the largest |diff| among those off. */
  readonly index: number;
  readonly at: readonly number[];
  readonly gpu: number;
  readonly cpu: number;
  readonly maxAbsDiff: number;
  /** Largest |diff| / |cpu| among the values off (Infinity where cpu is 0). */
  readonly maxRelDiff: number;
  readonly count: number;
  readonly total: number;
  /** The absolute tolerance the values were held to (0: compared exactly). */
  readonly atol: number;
}

/** Compares a GPU result with the CPU's (same dtype and shape): floats within `tolerance` (NaN
 * equals NaN, infinities must match), everything else exactly. Undefined when they agree. */
export function compareValues(
  gpu: CpuTensor,
  cpu: CpuTensor,
  tolerance: Tolerance | undefined,
): Mismatch | undefined {
  const g = gpu.data as ArrayLike<number | bigint>;
  const c = cpu.data as ArrayLike<number | bigint>;
  const atol = tolerance ? effectiveAtol(tolerance, c) : 0;
  let worst = -1, maxAbsDiff = 0, maxRelDiff = 0, count = 0;
  for (let i = 0; i < c.length; i++) {
    const a = Number(g[i]), b = Number(c[i]);
    if (a === b || (Number.isNaN(a) && Number.isNaN(b))) continue;
    const diff = Math.abs(a - b);
    if (
      tolerance && Number.isFinite(a) && Number.isFinite(b) &&
      diff <= atol + tolerance.rtol * Math.abs(b)
    ) continue;
    count++;
    const rel = b === 0 ? Infinity : diff / Math.abs(b);
    if (rel > maxRelDiff || Number.isNaN(rel)) maxRelDiff = rel;
    if (worst < 0 || diff > maxAbsDiff || Number.isNaN(diff)) {
      worst = i;
      maxAbsDiff = diff;
    }
  }
  if (count === 0) return undefined;
  return {
    index: worst,
    at: multiIndex(worst, cpu.shape),
    gpu: Number(g[worst]),
    cpu: Number(c[worst]),
    maxAbsDiff,
    maxRelDiff,
    count,
    total: c.length,
    atol,
  };
}

/** `tolerance.atol` plus its share of the largest finite |value| in `values`. */
function effectiveAtol(tolerance: Tolerance, values: ArrayLike<number | bigint>): number {
  if (tolerance.atolOfMax === 0) return tolerance.atol;
  let max = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(Number(values[i]));
    if (v > max && Number.isFinite(v)) max = v;
  }
  return tolerance.atol + tolerance.atolOfMax * max;
}

function multiIndex(flat: number, shape: readonly number[]): number[] {
  const at = new Array<number>(shape.length);
  for (let d = shape.length - 1, rest = flat; d >= 0; d--) {
    at[d] = rest % shape[d];
    rest = Math.floor(rest / shape[d]);
  }
  return at;
}

const num = (v: number) => String(Number(v.toPrecision(6)));

/** The first node whose GPU output differs from its CPU implementation. */
export class ValidationError extends EngineError {
  constructor(
    readonly node: OnnxNode,
    readonly output: string,
    /** Undefined when dtype or shape already differ (then `message` says how). */
    readonly mismatch: Mismatch | undefined,
    detail: string,
  ) {
    super(`validate: node '${node.name}' (${node.opType}) output '${output}': ${detail}`);
    this.name = "ValidationError";
  }

  static values(
    node: OnnxNode,
    output: string,
    m: Mismatch,
    tolerance?: Tolerance,
  ): ValidationError {
    const within = tolerance ? `rtol ${tolerance.rtol}, atol ${num(m.atol)}` : "exact";
    return new ValidationError(
      node,
      output,
      m,
      `max |diff| ${num(m.maxAbsDiff)} at [${m.at.join(",")}] (gpu ${num(m.gpu)}, cpu ` +
        `${num(m.cpu)}); ${m.count} of ${m.total} value(s) off (${within}; max rel diff ` +
        `${num(m.maxRelDiff)})`,
    );
  }
}

/** What a validated run checked. */
export interface ValidationReport {
  /** Nodes whose every output agreed with the CPU. */
  readonly checked: number;
  /** Nodes left unchecked, and why. */
  readonly skipped: readonly { readonly node: OnnxNode; readonly why: string }[];
}

/** Runs `plan`'s dispatches node by node (the caller has written its inputs and cleared its
 * status slots), checking each node against its CPU implementation; throws a ValidationError
 * for the first node that differs. `precision` is the model's (half operands widen the float
 * tolerance). */
export async function validatePlan(
  gpu: Gpu,
  plan: Plan,
  precision: ComputePrecision,
): Promise<ValidationReport> {
  const skipped: { node: OnnxNode; why: string }[] = [];
  let checked = 0;
  const readback = new Readback(gpu);
  try {
    for (const planned of plan.nodes) {
      const { node, op } = planned.step;
      const encoder = gpu.device.createCommandEncoder({ label: `validate ${node.name}` });
      encodeDispatches(
        encoder,
        plan.dispatches.slice(
          planned.firstDispatch,
          planned.firstDispatch + planned.dispatchCount,
        ),
      );
      if (NONDETERMINISTIC.has(node.opType)) {
        gpu.device.queue.submit([encoder.finish()]);
        skipped.push({ node, why: "random outputs" });
        continue;
      }
      const { inputs, outputs, status } = await readback.nodeTensors(encoder, planned, plan);
      if (status && plan.statusError(status)) {
        // Invalid data a kernel flagged in its status slot (an index outside its table): the
        // run reports it as it would without validation; the rest of the plan runs unchecked.
        const rest = gpu.device.createCommandEncoder({ label: "validate: the rest unchecked" });
        encodeDispatches(
          rest,
          plan.dispatches.slice(planned.firstDispatch + planned.dispatchCount),
        );
        gpu.device.queue.submit([rest.finish()]);
        skipped.push({
          node,
          why: "it flagged invalid data; it and the nodes after it run unchecked",
        });
        break;
      }
      let expected: CpuTensor[];
      try {
        expected = onNode(node, () => op.cpu(planned.step.ctx, inputs), "cpu");
      } catch (e) {
        if (!(e instanceof UnsupportedError)) throw e;
        skipped.push({ node, why: `no CPU implementation for it (${e.message})` });
        continue;
      }
      node.outputs.forEach((name, k) => {
        if (name !== "") checkOutput(node, name, outputs[k], expected[k], precision);
      });
      checked++;
    }
  } finally {
    readback.dispose();
  }
  return { checked, skipped };
}

function checkOutput(
  node: OnnxNode,
  name: string,
  gpu: CpuTensor,
  cpu: CpuTensor | undefined,
  precision: ComputePrecision,
): void {
  if (!cpu) throw new ValidationError(node, name, undefined, "the CPU implementation gave none");
  const sameShape = gpu.shape.length === cpu.shape.length &&
    gpu.shape.every((d, i) => d === cpu.shape[i]);
  if (gpu.dtype !== cpu.dtype || !sameShape) {
    throw new ValidationError(
      node,
      name,
      undefined,
      `gpu ${gpu.dtype}${shapeString(gpu.shape)}, cpu ${cpu.dtype}${shapeString(cpu.shape)}`,
    );
  }
  const tolerance = toleranceFor(cpu.dtype, precision);
  const mismatch = compareValues(gpu, cpu, tolerance);
  if (mismatch) throw ValidationError.values(node, name, mismatch, tolerance);
}

/** Reads a node's tensors back after its dispatches, through one staging buffer that grows to
 * the largest node's. */
class Readback {
  #staging: GPUBuffer | undefined;

  constructor(readonly gpu: Gpu) {}

  /** Submits `encoder` (the node's dispatches) with copies of the node's GPU inputs and
   * outputs and of the plan's status words, and returns the node's inputs as the CPU
   * implementation takes them (constants from the plan, the rest read back), its outputs and
   * the status words as read back. */
  async nodeTensors(
    encoder: GPUCommandEncoder,
    planned: PlannedNode,
    plan: Plan,
  ): Promise<{ inputs: (CpuTensor | undefined)[]; outputs: CpuTensor[]; status?: Uint32Array }> {
    const { step } = planned;
    const reads: { tensor: GpuTensor; offset: number; bytes: number }[] = [];
    let total = 0;
    const read = (tensor: GpuTensor) => {
      const bytes = sizeOf(tensor.shape) * 4;
      const r = { tensor, offset: total, bytes };
      reads.push(r);
      total += bytes;
      return r;
    };
    const inputReads = planned.inputs.map((t, i) =>
      t && step.inputs[i]?.value === undefined ? read(t) : undefined
    );
    const outputReads = planned.outputs.map(read);
    const statusBuffer = plan.statusBuffer;
    const statusOffset = total;
    if (statusBuffer) total += statusBuffer.size;
    const staging = total > 0 ? this.#stagingOf(total) : undefined;
    for (const r of reads) {
      if (r.bytes > 0) encoder.copyBufferToBuffer(r.tensor.buffer, 0, staging!, r.offset, r.bytes);
    }
    if (statusBuffer) {
      encoder.copyBufferToBuffer(statusBuffer, 0, staging!, statusOffset, statusBuffer.size);
    }
    this.gpu.device.queue.submit([encoder.finish()]);
    let mapped = new ArrayBuffer(0);
    if (staging) {
      await this.gpu.untilLost(staging.mapAsync(GPUMapMode.READ, 0, total), "validate");
      mapped = staging.getMappedRange(0, total).slice(0);
      staging.unmap();
    }
    const host = (r: { tensor: GpuTensor; offset: number; bytes: number }): CpuTensor => {
      const t = r.tensor;
      const n = r.bytes / 4;
      const view = t.dtype === "float32" || t.dtype === "float16"
        ? new Float32Array(mapped, r.offset, n)
        : t.dtype === "bool"
        ? new Uint32Array(mapped, r.offset, n)
        : new Int32Array(mapped, r.offset, n);
      return fromGpuArray(view, t.shape, t.dtype);
    };
    const inputs = step.node.inputs.map((name, i) => {
      if (name === "") return undefined;
      const r = inputReads[i];
      return r ? host(r) : step.inputs[i]?.value;
    });
    const status = statusBuffer
      ? new Uint32Array(mapped, statusOffset, statusBuffer.size / 4)
      : undefined;
    return { inputs, outputs: outputReads.map(host), status };
  }

  #stagingOf(bytes: number): GPUBuffer {
    if (!this.#staging || this.#staging.size < bytes) {
      this.#staging?.destroy();
      this.#staging = this.gpu.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: "validate readback",
      });
    }
    return this.#staging;
  }

  dispose(): void {
    this.#staging?.destroy();
  }
}
