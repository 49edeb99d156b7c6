/** Buffer assignment for a plan, on the CPU: which storage every value uses (a view shares its
 * source's), how long each one lives, and how activation slots with disjoint lifetimes share
 * physical buffers. The Plan (src/onnx/plan.ts) then allocates and binds them. */
import { sizeOf } from "../util/tensor.ts";
import type { Graph } from "./graph.ts";
import type { Analysis } from "./analyze.ts";

/** Where a value's data lives during a run. */
export interface Storage {
  readonly kind: "input" | "const" | "slot";
  /** Bytes the largest value in it needs. */
  bytes: number;
  /** Index of the last step reading it; Infinity when it holds a graph output. */
  lastUse: number;
  buffer?: GPUBuffer;
}

/** The storages of a plan's values. */
export interface StorageLayout {
  /** Every value's storage by name; a view's output maps to its source's storage. */
  readonly storages: ReadonlyMap<string, Storage>;
  /** Per step, the slot storages its outputs create (none for views). */
  readonly created: readonly (readonly Storage[])[];
  /** Per step, the value name each output is written to: the output's own name, or an unnamed
   * temporary for an omitted output or one known at plan time. */
  readonly outputNames: readonly (readonly string[])[];
}

/** A physical activation buffer, shared by slot storages whose lifetimes do not overlap. */
export interface ActivationBuffer {
  bytes: number;
  buffer?: GPUBuffer;
}

/** Gives every value the steps read or write a storage: graph inputs and constants their own,
 * each non-view output a new slot, each view output its source's storage. Lifetimes run to the
 * last step reading the value (graph outputs: to the end). */
export function assignStorages(graph: Graph, analysis: Analysis): StorageLayout {
  const { infos, steps } = analysis;
  const storages = new Map<string, Storage>();
  const created: Storage[][] = [];
  const outputNames: string[][] = [];
  const inputNames = new Set(graph.inputs.map((i) => i.name));

  const storageOf = (name: string): Storage => {
    let s = storages.get(name);
    if (!s) {
      const info = infos.get(name)!;
      const kind = info.value !== undefined ? "const" : inputNames.has(name) ? "input" : "slot";
      if (kind === "slot") throw new Error(`internal: no storage for value '${name}'`);
      s = { kind, bytes: sizeOf(info.shape) * 4, lastUse: -1 };
      storages.set(name, s);
    }
    return s;
  };

  steps.forEach((step, s) => {
    const constIdx = new Set(step.op.constInputs ?? []);
    step.node.inputs.forEach((name, i) => {
      if (name === "" || constIdx.has(i)) return;
      const st = storageOf(name);
      st.lastUse = Math.max(st.lastUse, s);
    });
    const made: Storage[] = [];
    const names: string[] = [];
    step.node.outputs.forEach((name0, k) => {
      const info = step.outputs[k];
      // Omitted outputs, and outputs known at plan time although the node runs (consumers
      // read the constant), are written to unnamed temporaries.
      const name = name0 === "" || info.value !== undefined ? `\u0000tmp${s}_${k}` : name0;
      names.push(name);
      if (info.value !== undefined && step.op.view) return;
      if (step.op.view) {
        const src = storageOf(step.node.inputs[0]);
        src.lastUse = Math.max(src.lastUse, s);
        storages.set(name, src);
        return;
      }
      const st: Storage = { kind: "slot", bytes: sizeOf(info.shape) * 4, lastUse: s };
      storages.set(name, st);
      made.push(st);
    });
    created.push(made);
    outputNames.push(names);
  });
  for (const o of graph.outputs) {
    const info = infos.get(o.name)!;
    if (info.value === undefined) storageOf(o.name).lastUse = Infinity;
  }
  return { storages, created, outputNames };
}

/** Maps slot storages onto shared activation buffers, step by step: a step's outputs are placed
 * before its inputs are freed, so no kernel ever reads and writes the same buffer. Returns the
 * buffers in the order they were first needed. */
export function shareActivations(
  layout: StorageLayout,
  stepCount: number,
): { buffers: ActivationBuffer[]; placement: Map<Storage, ActivationBuffer> } {
  const free: ActivationBuffer[] = [];
  const buffers: ActivationBuffer[] = [];
  const placement = new Map<Storage, ActivationBuffer>();
  const dying: Storage[][] = Array.from({ length: stepCount }, () => []);
  for (const st of new Set(layout.storages.values())) {
    if (st.kind === "slot" && Number.isFinite(st.lastUse)) dying[st.lastUse].push(st);
  }
  for (let s = 0; s < stepCount; s++) {
    for (const st of layout.created[s]) {
      // Best fit among free buffers; else grow the largest free one; else a new buffer.
      let best = -1;
      for (let i = 0; i < free.length; i++) {
        if (free[i].bytes >= st.bytes && (best < 0 || free[i].bytes < free[best].bytes)) best = i;
      }
      if (best < 0 && free.length > 0) {
        best = free.reduce((m, p, i) => (p.bytes > free[m].bytes ? i : m), 0);
        free[best].bytes = st.bytes;
      }
      let buffer: ActivationBuffer;
      if (best >= 0) buffer = free.splice(best, 1)[0];
      else {
        buffer = { bytes: st.bytes };
        buffers.push(buffer);
      }
      placement.set(st, buffer);
    }
    for (const st of dying[s]) free.push(placement.get(st)!);
  }
  return { buffers, placement };
}
