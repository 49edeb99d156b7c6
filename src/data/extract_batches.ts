/** Batched encoding for feature extraction: views are preprocessed into a batch per tower, and a
 * full batch is encoded on the GPU while the next one is prepared on the CPU. */
import type { CpuTensor } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import type { RgbImage } from "./image_format.ts";
import type { ImageTower } from "./image_tower.ts";
import { toNormalizedChw } from "./preprocess.ts";

/** Per tower, its feature size: known from the first segment loaded or batch encoded; a batch of
 * another size is an error. */
export class FeatureSizes {
  #dims: number[] | undefined;

  constructor(readonly towerCount: number) {}

  /** Per tower, the size; undefined until a segment was loaded or a batch encoded. */
  get dims(): number[] | undefined {
    return this.#dims;
  }

  /** Takes a saved segment's sizes when none are known yet. */
  adopt(dims: number[]): void {
    this.#dims ??= dims;
  }

  /** Records tower `t`'s size from an encoded batch. */
  record(tower: ImageTower, t: number, dim: number): void {
    const known = this.#dims?.[t];
    if (known !== undefined && known !== dim) {
      throw new EngineError(`${tower.role}: feature size changed from ${known} to ${dim}`);
    }
    this.#dims ??= new Array(this.towerCount);
    this.#dims[t] = dim;
  }
}

/** Views waiting to be encoded: per tower, `rows` preprocessed views at its size. */
interface PendingBatch {
  inputs: Float32Array[];
  rows: number;
}

/** Encodes views in batches of `batchSize` with every tower, one batch in flight while the next is
 * filled, and keeps each tower's features in the order the views were added. */
export class BatchEncoder {
  readonly #planeSizes: number[];
  readonly #outputs: Float32Array[][];
  #batch: PendingBatch;
  #inflight: Promise<void> | undefined;

  /** `onEncoded` hears how many views each finished batch held (the progress line). */
  constructor(
    readonly towers: readonly ImageTower[],
    readonly batchSize: number,
    readonly sizes: FeatureSizes,
    readonly onEncoded: (rows: number) => void,
  ) {
    this.#planeSizes = towers.map((t) => 3 * t.size * t.size);
    this.#outputs = towers.map(() => []);
    this.#batch = this.#newBatch();
  }

  /** Adds one view, `perTower[t]` at tower `t`'s size; a full batch goes to the GPU. */
  async add(perTower: readonly RgbImage[]): Promise<void> {
    const batch = this.#batch;
    perTower.forEach((view, t) =>
      toNormalizedChw(
        view,
        this.towers[t].normalization,
        batch.inputs[t],
        batch.rows * this.#planeSizes[t],
      )
    );
    batch.rows++;
    if (batch.rows === this.batchSize) await this.#flush();
  }

  /** Encodes the last partial batch, waits for every batch, and returns per tower the features of
   * all views added, row-major. */
  async finish(): Promise<Float32Array[]> {
    await this.#flush();
    if (this.#inflight) await this.#inflight;
    return this.#outputs.map(concatenate);
  }

  #newBatch(): PendingBatch {
    return {
      inputs: this.#planeSizes.map((p) => new Float32Array(this.batchSize * p)),
      rows: 0,
    };
  }

  /** Starts encoding the current batch once the previous one is done. */
  async #flush(): Promise<void> {
    if (this.#batch.rows === 0) return;
    const b = this.#batch;
    this.#batch = this.#newBatch();
    if (this.#inflight) await this.#inflight;
    const p = this.#encode(b);
    p.catch(() => {}); // handled when awaited; keeps a failure from being "unhandled" meanwhile
    this.#inflight = p;
  }

  async #encode(b: PendingBatch): Promise<void> {
    for (let t = 0; t < this.towers.length; t++) {
      const tower = this.towers[t];
      const x: CpuTensor = {
        dtype: "float32",
        shape: [b.rows, 3, tower.size, tower.size],
        data: b.inputs[t].subarray(0, b.rows * this.#planeSizes[t]),
      };
      const out = await tower.encode(x);
      if (out.data.length !== b.rows * out.dim) {
        throw new EngineError(
          `${tower.role}: ${b.rows} images gave ${out.data.length} values, not ` +
            `${b.rows} x ${out.dim}`,
        );
      }
      this.sizes.record(tower, t, out.dim);
      this.#outputs[t].push(out.data);
    }
    this.onEncoded(b.rows);
  }
}

function concatenate(chunks: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
