/** onnxruntime-node on the CPU: the practical limit of this machine's cores, and the reference
 * runtime for model outputs. Loads the native binding that the npm package ships per platform. */
import type { OnnxWorkload, PeerWorkloads } from "../types.ts";
import type { Peer, PeerRun } from "./peer.ts";

type Ort = typeof import("onnxruntime-node");
type OrtTensor = InstanceType<Ort["Tensor"]>;
type OrtSession = Awaited<ReturnType<Ort["InferenceSession"]["create"]>>;

export async function loadOrtNode(): Promise<Peer> {
  const ort: Ort = await import("onnxruntime-node");
  ort.env.logLevel = "error";
  return new OrtNodePeer(ort);
}

class OrtNodePeer implements Peer {
  readonly name = "onnxruntime-node-cpu";
  readonly version: string;

  constructor(private readonly ort: Ort) {
    this.version = ort.env.versions.node ?? ort.env.versions.common ?? "unknown";
  }

  async prepare(workloads: PeerWorkloads): Promise<PeerRun | undefined> {
    const w = workloads.onnx;
    if (!w) return undefined;
    const session = await this.ort.InferenceSession.create(w.model, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
    });
    const feeds: Record<string, OrtTensor> = {};
    for (const [name, t] of Object.entries(w.inputs)) {
      feeds[name] = t.dtype === "int64"
        ? new this.ort.Tensor("int64", t.data, [...t.shape])
        : new this.ort.Tensor("float32", t.data, [...t.shape]);
    }
    return new OrtNodeRun(session, feeds, w);
  }
}

class OrtNodeRun implements PeerRun {
  #last: Record<string, OrtTensor> | undefined;

  constructor(
    private readonly session: OrtSession,
    private readonly feeds: Record<string, OrtTensor>,
    private readonly workload: OnnxWorkload,
  ) {}

  async invoke(): Promise<void> {
    this.#last = await this.session.run(this.feeds) as Record<string, OrtTensor>;
  }

  fence(): Promise<void> {
    return Promise.resolve(); // run() returns when the CPU work is done
  }

  output(): Promise<ArrayLike<number>> {
    const t = this.#last?.[this.workload.output];
    if (!t) throw new Error(`no output '${this.workload.output}' (run first)`);
    const data = t.data as Float32Array;
    return Promise.resolve(this.workload.toReference ? this.workload.toReference(data) : data);
  }

  async dispose(): Promise<void> {
    this.#last = undefined;
    await this.session.release();
  }
}
