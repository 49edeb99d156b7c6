/** The contract between the benchmark and a peer runtime (another library a user could pick
 * instead of ours), run in the same process on the same adapter. */
import type { PeerName, PeerWorkloads } from "../types.ts";

/** One prepared workload on a peer: inputs already where the peer keeps them. */
export interface PeerRun {
  /** Issues one invocation (may return before the device finished it). */
  invoke(): Promise<void>;
  /** Waits until every issued invocation finished. */
  fence(): Promise<void>;
  /** The last invocation's output in the reference layout (downloads it). */
  output(): Promise<ArrayLike<number>>;
  dispose(): Promise<void> | void;
}

export interface Peer {
  readonly name: PeerName;
  readonly version: string;
  /** Undefined when this peer does not run this kind of workload. */
  prepare(workloads: PeerWorkloads): Promise<PeerRun | undefined>;
}

/** Buffer size for `bytes` of data: onnxruntime-web copies inputs in 16-byte units, so a
 * buffer of exactly 77 int64 ids (616 bytes) would be overrun. */
export function paddedSize(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}
