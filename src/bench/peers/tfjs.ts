/** TensorFlow.js with `@tensorflow/tfjs-backend-webgpu` (matmul and conv rows). tfjs records
 * kernels into a command encoder and submits in batches; the fence ends its pass, submits what
 * is pending and waits for its device's queue. */
import type * as TfCore from "@tensorflow/tfjs-core";
import type { PeerWorkloads, TfjsWorkload } from "../types.ts";
import type { Peer, PeerRun } from "./peer.ts";

type Tf = typeof TfCore;

/** The parts of tfjs-backend-webgpu's WebGPUBackend that the fence needs. */
interface WebGpuBackendLike {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

export async function loadTfjs(): Promise<Peer> {
  const tf: Tf = await import("@tensorflow/tfjs-core");
  await import("@tensorflow/tfjs-backend-webgpu");
  if (!(await tf.setBackend("webgpu"))) {
    throw new Error("tfjs could not initialise its WebGPU backend");
  }
  await tf.ready();
  const backend = tf.backend() as unknown as WebGpuBackendLike;
  if (typeof backend.endComputePassEncoder !== "function" || !backend.device) {
    throw new Error("tfjs-backend-webgpu internals changed: no endComputePassEncoder/device");
  }
  return new TfjsPeer(tf, backend);
}

class TfjsPeer implements Peer {
  readonly name = "tfjs-webgpu";
  readonly version: string;

  constructor(private readonly tf: Tf, private readonly backend: WebGpuBackendLike) {
    this.version = tf.version_core;
  }

  prepare(workloads: PeerWorkloads): Promise<PeerRun | undefined> {
    const w = workloads.tfjs;
    if (!w) return Promise.resolve(undefined);
    return Promise.resolve(new TfjsRun(this.tf, this.backend, w));
  }
}

class TfjsRun implements PeerRun {
  readonly #inputs: TfCore.Tensor[];
  #last: TfCore.Tensor | undefined;

  constructor(
    private readonly tf: Tf,
    private readonly backend: WebGpuBackendLike,
    private readonly workload: TfjsWorkload,
  ) {
    this.#inputs = workload.inputs.map((t) => {
      if (t.dtype === "int64") throw new Error("tfjs workloads take float32 inputs");
      return tf.tensor(t.data, [...t.shape], "float32");
    });
  }

  invoke(): Promise<void> {
    const y = this.workload.run(this.tf, this.#inputs);
    this.#last?.dispose();
    this.#last = y;
    return Promise.resolve();
  }

  async fence(): Promise<void> {
    this.backend.endComputePassEncoder();
    if (this.backend.commandEncoder) this.backend.submitQueue();
    await this.backend.device.queue.onSubmittedWorkDone();
  }

  async output(): Promise<ArrayLike<number>> {
    if (!this.#last) throw new Error("no output (run first)");
    const data = await this.#last.data() as Float32Array;
    return this.workload.toReference ? this.workload.toReference(data) : data;
  }

  dispose(): void {
    this.#last?.dispose();
    this.#last = undefined;
    for (const t of this.#inputs) t.dispose();
  }
}
