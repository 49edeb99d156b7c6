/** StateDicts over tensors already in memory: key-name mappings' tests and synthetic
 * architectures use them. */
import type { CpuTensor } from "../../util/tensor.ts";
import { transposeMatrix } from "./dtypes.ts";
import {
  CheckpointError,
  type CheckpointFormat,
  type ReadView,
  type StateDict,
  viewLayout,
  type WeightInfo,
} from "./state_dict.ts";

/** A StateDict over tensors already in memory (key-name mappings and tests use it). */
export function memoryStateDict(
  source: string,
  format: CheckpointFormat,
  tensors: ReadonlyMap<string, { info: WeightInfo; read: () => CpuTensor }>,
  extras: ReadonlyMap<string, unknown> = new Map(),
): StateDict {
  return {
    source,
    format,
    entries: new Map([...tensors].map(([k, v]) => [k, v.info])),
    read(name: string, view: ReadView = "stored"): CpuTensor {
      const t = tensors.get(name);
      if (!t) throw new CheckpointError(`${source}: no tensor '${name}'`);
      const stored = t.read();
      if (view === "stored") return stored;
      viewLayout(stored.shape, [0, 0], view, `${source}: tensor '${name}'`);
      return transposeMatrix(stored);
    },
    extras,
    close() {},
  };
}
