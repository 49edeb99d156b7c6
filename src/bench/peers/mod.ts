/** Peer runtimes, loaded lazily (only when a selected row needs them); a peer that fails to load
 * is reported with its reason and the run goes on without it. */
import type { PeerName } from "../types.ts";
import type { Peer } from "./peer.ts";

export type { Peer, PeerRun } from "./peer.ts";

export const PEER_LOADERS: Readonly<Record<PeerName, () => Promise<Peer>>> = {
  "onnxruntime-web-webgpu": async () => (await import("./ort_web.ts")).loadOrtWeb(),
  "tfjs-webgpu": async () => (await import("./tfjs.ts")).loadTfjs(),
  "onnxruntime-node-cpu": async () => (await import("./ort_node.ts")).loadOrtNode(),
};

export type PeerSlot = { peer: Peer } | { error: string };

/** Loads peers on first use and remembers failures. */
export class PeerSet {
  readonly #slots = new Map<PeerName, Promise<PeerSlot>>();

  constructor(readonly names: readonly PeerName[]) {}

  get(name: PeerName): Promise<PeerSlot> {
    let slot = this.#slots.get(name);
    if (!slot) {
      slot = PEER_LOADERS[name]().then(
        (peer): PeerSlot => ({ peer }),
        (e): PeerSlot => ({ error: e instanceof Error ? e.message : String(e) }),
      );
      this.#slots.set(name, slot);
    }
    return slot;
  }

  /** Versions of the peers loaded so far, and load errors. */
  async versions(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [name, slot] of this.#slots) {
      const s = await slot;
      out[name] = "peer" in s ? s.peer.version : `unavailable: ${s.error}`;
    }
    return out;
  }
}
