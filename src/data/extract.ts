/** Image feature extraction for a dataset split: decode each image once, make its views (the
 * evaluation view, or `views` seeded training views: RandomResizedCrop(scale 0.5-1) + horizontal
 * flip), preprocess every view for every image tower (each tower at its own resolution and
 * normalisation: CLIP's for CLIP, ImageNet's for the auxiliary encoder), and encode batches on
 * the GPU. The next batch is decoded while the GPU encodes the previous one.
 *
 * Rows are view-major, as the reference's augmentation epochs: row `v * K + k` is view `v` of the
 * k-th readable image. The views of an image come from a generator seeded by (seed, the image's
 * id, v): its index in the list, or the plan's `imageIds` (the feature pipeline and the sweeps'
 * shared store pass ids from the image's path, so an image gets the same views in every list),
 * so they do not depend on batch sizes, segments or interruptions.
 *
 * Unreadable or corrupt images are skipped and reported (never silently). Work is saved in
 * segments (`segmentDir`), so an interrupted extraction continues where it stopped. */
import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import type { CpuTensor } from "../util/tensor.ts";
import { EngineError } from "../util/errors.ts";
import type { Encoder } from "../models/encoder.ts";
import type { Normalization } from "../models/preprocessing.ts";
import { seededRandom } from "../util/random.ts";
import { decodeImage } from "./decode.ts";
import { type RgbImage } from "./image_format.ts";
import type { LabeledImage } from "./datasets.ts";
import { type NpyArray, npyArray, toNumbers, writeFileAtomic } from "../util/npy.ts";
import { npzGet, readNpz, writeNpz } from "../util/npz.ts";
import {
  crop,
  evalView,
  flipHorizontal,
  randomResizedCropBox,
  resizeBicubic,
  toNormalizedChw,
} from "./preprocess.ts";
import { ProgressLine, type ProgressOptions } from "./progress.ts";

/** An image encoder as extraction sees it: input size, normalisation, and a batch encoder. */
export interface ImageTower {
  /** Name in messages and manifests ("clip_visual", "aux"). */
  readonly role: string;
  /** Side of the square input. */
  readonly size: number;
  readonly normalization: Normalization;
  /** Encodes float32 NCHW `[rows, 3, size, size]` into `[rows, dim]` features (row-major). */
  encode(batch: CpuTensor): Promise<{ data: Float32Array; dim: number }>;
}

/** An `ImageTower` over an image `Encoder` (its preprocessing gives size and normalisation). */
export function towerFromEncoder(role: string, encoder: Encoder): ImageTower {
  const pre = encoder.preprocessing;
  if (pre.kind !== "image") {
    throw new EngineError(`${role}: ${encoder.model.source} is not an image encoder`);
  }
  return {
    role,
    size: pre.size,
    normalization: pre.normalization,
    async encode(batch) {
      const out = await encoder.encodeToCpu(batch);
      if (out.shape.length !== 2 || !(out.data instanceof Float32Array)) {
        throw new EngineError(
          `${role}: ${encoder.model.source} gave features of shape [${out.shape}] ${out.dtype}; ` +
            `expected float32 [batch, dim]`,
        );
      }
      return { data: out.data, dim: out.shape[1] };
    },
  };
}

/** Which views to make of each image. */
export type ViewPlan =
  | { readonly kind: "eval" }
  | {
    readonly kind: "train";
    readonly views: number;
    readonly seed: number;
    /** Per item, the id its views are seeded by (default: its index). */
    readonly imageIds?: readonly number[];
  };

export interface SkippedImage {
  readonly path: string;
  readonly reason: string;
}

export interface ExtractOptions {
  /** Views per GPU batch (the reference's `val_batch_size`). */
  batchSize: number;
  /** Names the split in the progress line, e.g. "test images". */
  label: string;
  /** Progress line options (tests pass a writer). `false`: no progress line. */
  progress?: ProgressOptions | false;
  /** Saves finished segments here and reuses those found (resumable extraction). */
  segmentDir?: string;
  /** Identity of the work (models, list, views); segments saved under another key are dropped. */
  segmentKey?: string;
  /** Images per saved segment (default 1024). */
  segmentImages?: number;
  /** Reads an image file (default Deno.readFile; tests inject failures). */
  readFile?: (path: string) => Promise<Uint8Array>;
  /** Receives one-line notes (reused segments). */
  log?: (line: string) => void;
}

export interface ExtractResult {
  /** Per tower, row-major `[rows, dims[t]]`. */
  features: Float32Array[];
  dims: number[];
  labels: Int32Array;
  rows: number;
  views: number;
  /** Indices into the item list of the images that produced rows, in row order. */
  kept: number[];
  skipped: SkippedImage[];
  /** Images whose features came from saved segments. */
  resumedImages: number;
}

/** Ids that seed each item's training views, from its path relative to `root` and how often the
 * path occurred before in the list (a class sampled with replacement repeats an image, and each
 * repeat gets views of its own, as each draw does in the reference): the same image gets the
 * same views in every few-shot list and on every machine, whatever its position. */
export function pathViewIds(items: readonly LabeledImage[], root: string): number[] {
  const seen = new Map<string, number>();
  return items.map((it) => {
    const rel = relative(root, it.path);
    const occurrence = seen.get(rel) ?? 0;
    seen.set(rel, occurrence + 1);
    return viewId(rel, occurrence);
  });
}

/** The view-seeding id of the `occurrence`-th entry of `relPath` in a list (pathViewIds). */
export function viewId(relPath: string, occurrence: number): number {
  return fnv1a32(`${relPath}#${occurrence}`);
}

function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h;
}

/** 32-bit mix of the seed, image index and view index (for per-view generators). */
export function viewSeed(seed: number, image: number, view: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (image >>> 0) ^ (h >>> 15), 0xc2b2ae35) >>> 0;
  h = Math.imul(h ^ (view >>> 0) ^ (h >>> 13), 0x27d4eb2f) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The views of one decoded image for each tower: `out[view][tower]` (8-bit RGB, tower size). */
export function makeViews(
  img: RgbImage,
  sizes: readonly number[],
  plan: ViewPlan,
  imageIndex: number,
): RgbImage[][] {
  if (plan.kind === "eval") {
    const bySize = new Map<number, RgbImage>();
    return [sizes.map((s) => {
      let v = bySize.get(s);
      if (!v) bySize.set(s, v = evalView(img, s));
      return v;
    })];
  }
  const out: RgbImage[][] = [];
  for (let v = 0; v < plan.views; v++) {
    // torchvision's order of draws: the crop box, then the flip.
    const random = seededRandom(viewSeed(plan.seed, plan.imageIds?.[imageIndex] ?? imageIndex, v));
    const box = randomResizedCropBox(img.width, img.height, random);
    const flip = random() < 0.5;
    const cropped = crop(img, box[0], box[1], box[2] - box[0], box[3] - box[1]);
    const bySize = new Map<number, RgbImage>();
    out.push(sizes.map((s) => {
      let view = bySize.get(s);
      if (!view) {
        const resized = resizeBicubic(cropped, s, s);
        bySize.set(s, view = flip ? flipHorizontal(resized) : resized);
      }
      return view;
    }));
  }
  return out;
}

/** One segment's results, image-major: row `k * views + v`. */
interface Segment {
  kept: number[];
  skipped: SkippedImage[];
  features: Float32Array[];
}

function segmentPath(dir: string, index: number): string {
  return join(dir, `segment-${String(index).padStart(5, "0")}.npz`);
}

const KEY_FILE = "key.txt";

function saveSegment(path: string, seg: Segment, dims: number[], views: number): void {
  const json = new TextEncoder().encode(JSON.stringify(seg.skipped));
  const arrays: Record<string, NpyArray> = {
    kept: npyArray("int64", [seg.kept.length], seg.kept),
    skipped_json: { dtype: "uint8", shape: [json.length], data: json },
  };
  seg.features.forEach((f, t) => {
    arrays[`features_${t}`] = {
      dtype: "float32",
      shape: [seg.kept.length * views, dims[t]],
      data: f,
    };
  });
  writeNpz(path, arrays);
}

function loadSegment(path: string, towers: number): { seg: Segment; dims: number[] } {
  const z = readNpz(path);
  const kept = Array.from(toNumbers(npzGet(z, "kept", path)));
  const skipped = JSON.parse(
    new TextDecoder().decode(npzGet(z, "skipped_json", path).data as Uint8Array),
  ) as SkippedImage[];
  const features: Float32Array[] = [];
  const dims: number[] = [];
  for (let t = 0; t < towers; t++) {
    const a = npzGet(z, `features_${t}`, path);
    if (a.dtype !== "float32" || a.shape.length !== 2) {
      throw new EngineError(`${path}: features_${t} is not a float32 matrix`);
    }
    features.push(a.data as Float32Array);
    dims.push(a.shape[1]);
  }
  return { seg: { kept, skipped, features }, dims };
}

/** Prepares the segment directory: keeps it when its key matches, empties it otherwise. */
function openSegmentDir(dir: string, key: string): void {
  const keyPath = join(dir, KEY_FILE);
  if (existsSync(keyPath) && Deno.readTextFileSync(keyPath) === key) return;
  if (existsSync(dir)) Deno.removeSync(dir, { recursive: true });
  Deno.mkdirSync(dir, { recursive: true });
  writeFileAtomic(keyPath, key);
}

interface PendingBatch {
  inputs: Float32Array[];
  rows: number;
}

/** Extracts features of `items` with every tower; see the module comment. */
export async function extractFeatures(
  items: readonly LabeledImage[],
  towers: readonly ImageTower[],
  plan: ViewPlan,
  options: ExtractOptions,
): Promise<ExtractResult> {
  if (towers.length === 0) throw new EngineError("feature extraction needs at least one encoder");
  if (!(options.batchSize >= 1)) throw new EngineError(`batch size must be >= 1`);
  const views = plan.kind === "eval" ? 1 : plan.views;
  if (!Number.isInteger(views) || views < 1) {
    throw new EngineError(`views per image must be an integer >= 1, got ${views}`);
  }
  const sizes = towers.map((t) => t.size);
  const planeSizes = sizes.map((s) => 3 * s * s);
  const readFile = options.readFile ?? ((p: string) => Deno.readFile(p));
  const segmentImages = Math.max(1, options.segmentImages ?? 1024);
  const segmentCount = Math.ceil(items.length / segmentImages);
  const unit = plan.kind === "eval" ? "images" : "views";
  const progress = options.progress === false ? undefined : new ProgressLine(
    options.label,
    items.length * views,
    unit,
    options.progress,
  );
  if (options.segmentDir) openSegmentDir(options.segmentDir, options.segmentKey ?? "");

  let dims: number[] | undefined;
  const segments: Segment[] = [];
  let resumedImages = 0;
  try {
    for (let s = 0; s < segmentCount; s++) {
      const start = s * segmentImages, end = Math.min(items.length, start + segmentImages);
      const path = options.segmentDir ? segmentPath(options.segmentDir, s) : undefined;
      if (path && existsSync(path)) {
        try {
          const loaded = loadSegment(path, towers.length);
          dims ??= loaded.dims;
          segments.push(loaded.seg);
          resumedImages += end - start;
          progress?.advance((end - start) * views);
          continue;
        } catch (e) {
          options.log?.(`ignoring unreadable saved segment ${path}: ${(e as Error).message}`);
        }
      }
      const seg = await extractSegment(start, end);
      segments.push(seg);
      if (path && dims) saveSegment(path, seg, dims, views);
    }
  } finally {
    progress?.finish();
  }
  if (resumedImages > 0) {
    options.log?.(
      `${options.label}: reused ${resumedImages} images' features saved by an ` +
        `interrupted run`,
    );
  }

  const kept = segments.flatMap((s) => s.kept);
  const skipped = segments.flatMap((s) => s.skipped);
  const K = kept.length;
  if (K === 0) {
    throw new EngineError(
      `${options.label}: none of the ${items.length} images could be read` +
        (skipped.length ? ` (first: ${skipped[0].path}: ${skipped[0].reason})` : ""),
    );
  }
  const finalDims = dims!;
  const rows = K * views;
  const features = finalDims.map((d) => new Float32Array(rows * d));
  let offset = 0;
  for (const seg of segments) {
    const k = seg.kept.length;
    finalDims.forEach((d, t) => {
      const src = seg.features[t], dst = features[t];
      for (let i = 0; i < k; i++) {
        for (let v = 0; v < views; v++) {
          const from = (i * views + v) * d;
          dst.set(src.subarray(from, from + d), (v * K + offset + i) * d);
        }
      }
    });
    offset += k;
  }
  const labels = new Int32Array(rows);
  for (let v = 0; v < views; v++) {
    for (let k = 0; k < K; k++) labels[v * K + k] = items[kept[k]].label;
  }
  return { features, dims: finalDims, labels, rows, views, kept, skipped, resumedImages };

  /** Decodes, preprocesses and encodes images [start, end): batches of `batchSize` views, the
   * next batch prepared on the CPU while the previous one encodes. */
  async function extractSegment(start: number, end: number): Promise<Segment> {
    const kept: number[] = [];
    const skipped: SkippedImage[] = [];
    const outputs: Float32Array[][] = towers.map(() => []);
    const newBatch = (): PendingBatch => ({
      inputs: planeSizes.map((p) => new Float32Array(options.batchSize * p)),
      rows: 0,
    });
    let batch = newBatch();
    let inflight: Promise<void> | undefined;

    const encodeBatch = async (b: PendingBatch): Promise<void> => {
      for (let t = 0; t < towers.length; t++) {
        const s = sizes[t];
        const x: CpuTensor = {
          dtype: "float32",
          shape: [b.rows, 3, s, s],
          data: b.inputs[t].subarray(0, b.rows * planeSizes[t]),
        };
        const out = await towers[t].encode(x);
        if (out.data.length !== b.rows * out.dim) {
          throw new EngineError(
            `${towers[t].role}: ${b.rows} images gave ${out.data.length} values, not ` +
              `${b.rows} x ${out.dim}`,
          );
        }
        if (dims && dims[t] !== undefined && dims[t] !== out.dim) {
          throw new EngineError(
            `${towers[t].role}: feature size changed from ${dims[t]} to ${out.dim}`,
          );
        }
        outputs[t].push(out.data);
        if (!dims) dims = new Array(towers.length);
        dims[t] = out.dim;
      }
      progress?.advance(b.rows);
    };
    const flush = async () => {
      if (batch.rows === 0) return;
      const b = batch;
      batch = newBatch();
      if (inflight) await inflight;
      const p = encodeBatch(b);
      p.catch(() => {}); // handled when awaited; keeps a failure from being "unhandled" meanwhile
      inflight = p;
    };

    for (let i = start; i < end; i++) {
      const item = items[i];
      let imageViews: RgbImage[][];
      try {
        const bytes = await readFile(item.path);
        const img = await decodeImage(bytes, item.path);
        if (img.width < 1 || img.height < 1) throw new EngineError("image has no pixels");
        imageViews = makeViews(img, sizes, plan, i);
      } catch (e) {
        const msg = (e as Error).message;
        const reason = msg.startsWith(item.path) ? msg.slice(item.path.length + 2) : msg;
        skipped.push({ path: item.path, reason });
        progress?.advance(views);
        continue;
      }
      kept.push(i);
      for (const perTower of imageViews) {
        perTower.forEach((view, t) =>
          toNormalizedChw(
            view,
            towers[t].normalization,
            batch.inputs[t],
            batch.rows * planeSizes[t],
          )
        );
        batch.rows++;
        if (batch.rows === options.batchSize) await flush();
      }
    }
    await flush();
    if (inflight) await inflight;
    const features = outputs.map((chunks) => {
      const total = chunks.reduce((n, c) => n + c.length, 0);
      const out = new Float32Array(total);
      let o = 0;
      for (const c of chunks) {
        out.set(c, o);
        o += c.length;
      }
      return out;
    });
    return { kept, skipped, features };
  }
}
