/** onnxruntime-web with its WebGPU execution provider (the `onnxruntime-web/webgpu` entry point).
 *
 * Inputs live in GPU buffers on onnxruntime's own device (same adapter as ours) and outputs stay
 * there (`preferredOutputLocation: "gpu-buffer"`), so a timed invocation is a session run without
 * host transfers, as ours is. The wasm runtime that drives the EP loads from the npm package's
 * dist folder, single-threaded and without a proxy worker. */
import type { OnnxWorkload, PeerWorkloads } from "../types.ts";
import { paddedSize, type Peer, type PeerRun } from "./peer.ts";

type Ort = typeof import("onnxruntime-web/webgpu");
type OrtTensor = InstanceType<Ort["Tensor"]>;
type OrtSession = Awaited<ReturnType<Ort["InferenceSession"]["create"]>>;

export async function loadOrtWeb(): Promise<Peer> {
  const ort: Ort = await import("onnxruntime-web/webgpu");
  ort.env.wasm.wasmPaths = new URL("./", import.meta.resolve("onnxruntime-web/webgpu")).href;
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "error";
  return new OrtWebPeer(ort);
}

class OrtWebPeer implements Peer {
  readonly name = "onnxruntime-web-webgpu";
  readonly version: string;

  constructor(private readonly ort: Ort) {
    this.version = ort.env.versions.web ?? "unknown";
  }

  async prepare(workloads: PeerWorkloads): Promise<PeerRun | undefined> {
    const w = workloads.onnx;
    if (!w) return undefined;
    const session = await this.ort.InferenceSession.create(w.model, {
      executionProviders: ["webgpu"],
      preferredOutputLocation: "gpu-buffer",
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
    });
    // The EP's device exists once a session was created on it.
    const device = await (this.ort.env.webgpu.device as unknown as Promise<GPUDevice> | GPUDevice);
    return new OrtWebRun(this.ort, session, device, w);
  }
}

class OrtWebRun implements PeerRun {
  readonly #buffers: GPUBuffer[] = [];
  readonly #feeds: Record<string, OrtTensor> = {};
  #last: Record<string, OrtTensor> | undefined;

  constructor(
    ort: Ort,
    private readonly session: OrtSession,
    private readonly device: GPUDevice,
    private readonly workload: OnnxWorkload,
  ) {
    for (const [name, t] of Object.entries(workload.inputs)) {
      const buffer = device.createBuffer({
        size: paddedSize(t.data.byteLength),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        label: `ort-web input ${name}`,
      });
      device.queue.writeBuffer(
        buffer,
        0,
        t.data.buffer as ArrayBuffer,
        t.data.byteOffset,
        t.data.byteLength,
      );
      this.#buffers.push(buffer);
      this.#feeds[name] = ort.Tensor.fromGpuBuffer(buffer, {
        dataType: t.dtype ?? "float32",
        dims: [...t.shape],
      });
    }
  }

  #releaseLast(): void {
    if (this.#last) { for (const t of Object.values(this.#last)) t.dispose(); }
    this.#last = undefined;
  }

  async invoke(): Promise<void> {
    const out = await this.session.run(this.#feeds);
    this.#releaseLast();
    this.#last = out as Record<string, OrtTensor>;
  }

  async fence(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
  }

  async output(): Promise<ArrayLike<number>> {
    const t = this.#last?.[this.workload.output];
    if (!t) throw new Error(`no output '${this.workload.output}' (run first)`);
    const data = await t.getData() as Float32Array;
    return this.workload.toReference ? this.workload.toReference(data) : data;
  }

  async dispose(): Promise<void> {
    this.#releaseLast();
    await this.session.release();
    for (const b of this.#buffers) b.destroy();
  }
}
