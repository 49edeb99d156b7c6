/** Checkpoint weights under the names an architecture reads, with shape checks that name the
 * file and key. A view over a StateDict: nothing is read until a builder asks for a tensor. */
import type { CpuTensor } from "../../util/tensor.ts";
import {
  CheckpointError,
  type ReadView,
  type StateDict,
  type WeightDType,
} from "../checkpoint/state_dict.ts";

/** One weight as the architecture names it: its stored dtype and shape, and how to read it. */
export interface WeightSource {
  /** The key in the file (for messages). */
  readonly fileKey: string;
  readonly dtype: WeightDType;
  readonly shape: readonly number[];
  read(view?: ReadView): CpuTensor;
}

export class Weights {
  constructor(
    /** The file, for messages. */
    readonly source: string,
    /** Which key layout the file uses ("OpenAI CLIP", "Hugging Face CLIPModel"...). */
    readonly layout: string,
    readonly map: ReadonlyMap<string, WeightSource>,
    /** The file's key an architecture name would be read from (for messages about a key that
     * is absent: a Hugging Face file is missing its `q_proj`, not OpenAI's `in_proj`). */
    readonly fileKeyOf: (name: string) => string = (name) => name,
  ) {}

  /** Weights of `sd` under the names `rename` gives its keys (undefined: not a weight). */
  static fromStateDict(
    sd: StateDict,
    layout: string,
    rename: (key: string) => string | undefined,
    fileKeyOf?: (name: string) => string,
  ): Weights {
    const map = new Map<string, WeightSource>();
    for (const [key, info] of sd.entries) {
      const name = rename(key);
      if (name === undefined) continue;
      map.set(name, {
        fileKey: key,
        dtype: info.dtype,
        shape: info.shape,
        read: (view) => sd.read(key, view),
      });
    }
    return new Weights(sd.source, layout, map, fileKeyOf);
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  #missing(name: string): CheckpointError {
    const fileKey = this.fileKeyOf(name);
    const near = [...this.map.values()].map((w) => w.fileKey)
      .filter((k) => k.startsWith(fileKey.split(".")[0])).slice(0, 6);
    return new CheckpointError(
      `${this.source}: missing key '${fileKey}' (${this.layout} layout` +
        (fileKey === name ? ")" : `, read as '${name}')`) +
        (near.length ? `; keys nearby: ${near.join(", ")}` : ""),
    );
  }

  /** The stored shape of `name`. */
  shape(name: string): readonly number[] {
    const w = this.map.get(name);
    if (!w) throw this.#missing(name);
    return w.shape;
  }

  /** The stored shape of `name`, which must have `rank` dimensions (a hyper-parameter is read
   * from it, so a wrong rank is named here rather than surfacing as NaN sizes later). */
  dims(name: string, rank: number): readonly number[] {
    const shape = this.shape(name);
    if (shape.length !== rank) this.expectShape(name, new Array<number>(rank).fill(-1));
    return shape;
  }

  /** Reads `name`, checking its stored shape when `expected` is given (-1 matches any size);
   * `view` "transposed" reads a matrix transposed. */
  get(name: string, expected?: readonly number[], view: ReadView = "stored"): CpuTensor {
    const w = this.map.get(name);
    if (!w) throw this.#missing(name);
    if (expected) this.expectShape(name, expected);
    const t = w.read(view);
    if (t.dtype !== "float32") {
      throw new CheckpointError(
        `${this.source}: key '${w.fileKey}' holds ${w.dtype} values; weights must be floating ` +
          "point",
      );
    }
    return t;
  }

  /** Throws naming the key when its shape differs from `expected` (-1: any size). */
  expectShape(name: string, expected: readonly number[]): void {
    const shape = this.shape(name);
    const ok = shape.length === expected.length &&
      shape.every((d, i) => expected[i] === -1 || d === expected[i]);
    if (!ok) {
      const fileKey = this.map.get(name)!.fileKey;
      throw new CheckpointError(
        `${this.source}: key '${fileKey}' has shape [${shape.join(",")}], expected ` +
          `[${expected.map((d) => (d === -1 ? "*" : d)).join(",")}]`,
      );
    }
  }

  /** Distinct integer indices N of the keys `${prefix}N.…` (blocks of a stage, layers). */
  indices(prefix: string): number[] {
    const found = new Set<number>();
    for (const k of this.map.keys()) {
      if (!k.startsWith(prefix)) continue;
      const m = /^(\d+)\./.exec(k.slice(prefix.length));
      if (m) found.add(Number(m[1]));
    }
    const sorted = [...found].sort((a, b) => a - b);
    sorted.forEach((v, i) => {
      if (v !== i) {
        throw new CheckpointError(`${this.source}: keys '${prefix}N' skip index ${i}`);
      }
    });
    return sorted;
  }

  /** Parameters (elements) of the keys `select` picks (default all), as torch counts them:
   * without BatchNorm's running statistics or integer buffers. */
  parameterCount(select: (name: string) => boolean = () => true): number {
    let n = 0;
    for (const [k, w] of this.map) {
      if (!select(k) || !isFloat(w.dtype) || /\.running_(mean|var)$/.test(k)) continue;
      n += w.shape.reduce((a, b) => a * b, 1);
    }
    return n;
  }

  /** Stored dtypes of the keys `select` picks, most common first ("float16 (78%), float32"). */
  dtypeSummary(select: (name: string) => boolean = () => true): string {
    const count = new Map<string, number>();
    let total = 0;
    for (const [k, w] of this.map) {
      if (!select(k) || !isFloat(w.dtype)) continue;
      const n = w.shape.reduce((a, b) => a * b, 1);
      count.set(w.dtype, (count.get(w.dtype) ?? 0) + n);
      total += n;
    }
    return [...count].sort((a, b) => b[1] - a[1]).map(([d, n], i) =>
      i === 0 && count.size > 1 ? `${d} (${Math.round((100 * n) / total)}%)` : d
    ).join(", ");
  }
}

function isFloat(d: WeightDType): boolean {
  return d === "float16" || d === "bfloat16" || d === "float32" || d === "float64";
}
