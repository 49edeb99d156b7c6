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
 * segments (`segmentDir`), so an interrupted extraction continues where it stopped.
 *
 * `extractFeatures` reads as its phases: check the request, then per segment read back what an
 * earlier run saved or extract it (batching in extract_batches.ts, saving in
 * extract_segments.ts), then lay the rows out view-major. */
import { relative } from "node:path";
import { EngineError } from "../util/errors.ts";
import { seededRandom } from "../util/random.ts";
import { decodeImage } from "./decode.ts";
import { type RgbImage } from "./image_format.ts";
import type { LabeledImage } from "./datasets.ts";
import type { ImageTower } from "./image_tower.ts";
import { BatchEncoder, FeatureSizes } from "./extract_batches.ts";
import {
  openSegmentDir,
  readSavedSegment,
  saveSegment,
  type Segment,
  segmentPath,
  type SkippedImage,
} from "./extract_segments.ts";
import {
  crop,
  evalView,
  flipHorizontal,
  randomResizedCropBox,
  resizeBicubic,
} from "./preprocess.ts";
import { ProgressLine, type ProgressOptions } from "./progress.ts";

// Callers of extraction get its tower and result types from this one module.
export { type ImageTower, towerFromEncoder } from "./image_tower.ts";
export type { SkippedImage } from "./extract_segments.ts";

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

/** One extraction's inputs, checked, and what every phase derives from them. */
interface ExtractionJob {
  readonly items: readonly LabeledImage[];
  readonly towers: readonly ImageTower[];
  readonly plan: ViewPlan;
  readonly options: ExtractOptions;
  /** Views per image (1 for the evaluation view). */
  readonly views: number;
  /** Per tower, the side of its square input. */
  readonly sizes: readonly number[];
  readonly readFile: (path: string) => Promise<Uint8Array>;
  readonly segmentImages: number;
  readonly progress: ProgressLine | undefined;
}

/** The segments of one extraction, in item order, each saved by an earlier run or extracted. */
interface ExtractedSegments {
  readonly segments: Segment[];
  readonly sizes: FeatureSizes;
  /** Images whose features came from saved segments. */
  resumedImages: number;
}

/** Extracts features of `items` with every tower; see the module comment. */
export async function extractFeatures(
  items: readonly LabeledImage[],
  towers: readonly ImageTower[],
  plan: ViewPlan,
  options: ExtractOptions,
): Promise<ExtractResult> {
  const job = prepareExtraction(items, towers, plan, options);
  if (options.segmentDir) openSegmentDir(options.segmentDir, options.segmentKey ?? "");
  const extracted = await extractSegments(job);
  if (extracted.resumedImages > 0) {
    options.log?.(
      `${options.label}: reused ${extracted.resumedImages} images' features saved by an ` +
        `interrupted run`,
    );
  }
  return viewMajorResult(job, extracted);
}

/** Checks the request and starts the progress line. */
function prepareExtraction(
  items: readonly LabeledImage[],
  towers: readonly ImageTower[],
  plan: ViewPlan,
  options: ExtractOptions,
): ExtractionJob {
  if (towers.length === 0) throw new EngineError("feature extraction needs at least one encoder");
  if (!(options.batchSize >= 1)) throw new EngineError(`batch size must be >= 1`);
  const views = plan.kind === "eval" ? 1 : plan.views;
  if (!Number.isInteger(views) || views < 1) {
    throw new EngineError(`views per image must be an integer >= 1, got ${views}`);
  }
  const unit = plan.kind === "eval" ? "images" : "views";
  return {
    items,
    towers,
    plan,
    options,
    views,
    sizes: towers.map((t) => t.size),
    readFile: options.readFile ?? ((p: string) => Deno.readFile(p)),
    segmentImages: Math.max(1, options.segmentImages ?? 1024),
    progress: options.progress === false
      ? undefined
      : new ProgressLine(options.label, items.length * views, unit, options.progress),
  };
}

/** Every segment in order: read back when an earlier run saved it, else extracted (and saved
 * when there is a segment directory). The progress line ends here, even on failure. */
async function extractSegments(job: ExtractionJob): Promise<ExtractedSegments> {
  const { items, options, segmentImages } = job;
  const extracted: ExtractedSegments = {
    segments: [],
    sizes: new FeatureSizes(job.towers.length),
    resumedImages: 0,
  };
  const segmentCount = Math.ceil(items.length / segmentImages);
  try {
    for (let s = 0; s < segmentCount; s++) {
      const start = s * segmentImages, end = Math.min(items.length, start + segmentImages);
      const path = options.segmentDir ? segmentPath(options.segmentDir, s) : undefined;
      const saved = path ? readSavedSegment(path, job.towers.length, options.log) : undefined;
      if (saved) {
        extracted.sizes.adopt(saved.dims);
        extracted.segments.push(saved.seg);
        extracted.resumedImages += end - start;
        job.progress?.advance((end - start) * job.views);
        continue;
      }
      const seg = await extractSegment(job, extracted.sizes, start, end);
      extracted.segments.push(seg);
      const dims = extracted.sizes.dims;
      if (path && dims) saveSegment(path, seg, dims, job.views);
    }
  } finally {
    job.progress?.finish();
  }
  return extracted;
}

/** Decodes, preprocesses and encodes images [start, end), skipping the unreadable ones. */
async function extractSegment(
  job: ExtractionJob,
  sizes: FeatureSizes,
  start: number,
  end: number,
): Promise<Segment> {
  const kept: number[] = [];
  const skipped: SkippedImage[] = [];
  const encoder = new BatchEncoder(
    job.towers,
    job.options.batchSize,
    sizes,
    (rows) => job.progress?.advance(rows),
  );
  for (let i = start; i < end; i++) {
    const image = await readImageViews(job, i);
    if ("skipped" in image) {
      skipped.push(image.skipped);
      job.progress?.advance(job.views);
      continue;
    }
    kept.push(i);
    for (const perTower of image.views) await encoder.add(perTower);
  }
  return { kept, skipped, features: await encoder.finish() };
}

/** Item `i`'s views for every tower, or why it cannot be read (without the path the message
 * starts with: the skipped entry names it). */
async function readImageViews(
  job: ExtractionJob,
  i: number,
): Promise<{ views: RgbImage[][] } | { skipped: SkippedImage }> {
  const item = job.items[i];
  try {
    const bytes = await job.readFile(item.path);
    const img = await decodeImage(bytes, item.path);
    if (img.width < 1 || img.height < 1) throw new EngineError("image has no pixels");
    return { views: makeViews(img, job.sizes, job.plan, i) };
  } catch (e) {
    const msg = (e as Error).message;
    const reason = msg.startsWith(item.path) ? msg.slice(item.path.length + 2) : msg;
    return { skipped: { path: item.path, reason } };
  }
}

/** The segments' rows put view-major (row `v * K + k`), with their labels; no readable image at
 * all is an error. */
function viewMajorResult(job: ExtractionJob, extracted: ExtractedSegments): ExtractResult {
  const { segments, resumedImages } = extracted;
  const kept = segments.flatMap((s) => s.kept);
  const skipped = segments.flatMap((s) => s.skipped);
  if (kept.length === 0) {
    throw new EngineError(
      `${job.options.label}: none of the ${job.items.length} images could be read` +
        (skipped.length ? ` (first: ${skipped[0].path}: ${skipped[0].reason})` : ""),
    );
  }
  // Some image was kept, so some segment was loaded or encoded and gave the sizes.
  const dims = extracted.sizes.dims!;
  const features = viewMajorFeatures(segments, dims, job.views, kept.length);
  const labels = viewMajorLabels(job.items, kept, job.views);
  const rows = kept.length * job.views;
  return { features, dims, labels, rows, views: job.views, kept, skipped, resumedImages };
}

/** Per tower, the segments' image-major rows (`k * views + v`) rearranged view-major. */
function viewMajorFeatures(
  segments: readonly Segment[],
  dims: readonly number[],
  views: number,
  keptImages: number,
): Float32Array[] {
  const features = dims.map((d) => new Float32Array(keptImages * views * d));
  let offset = 0;
  for (const seg of segments) {
    const k = seg.kept.length;
    dims.forEach((d, t) => {
      const src = seg.features[t], dst = features[t];
      for (let i = 0; i < k; i++) {
        for (let v = 0; v < views; v++) {
          const from = (i * views + v) * d;
          dst.set(src.subarray(from, from + d), (v * keptImages + offset + i) * d);
        }
      }
    });
    offset += k;
  }
  return features;
}

/** Row `v * K + k`'s label: the k-th kept item's. */
function viewMajorLabels(
  items: readonly LabeledImage[],
  kept: readonly number[],
  views: number,
): Int32Array {
  const K = kept.length;
  const labels = new Int32Array(K * views);
  for (let v = 0; v < views; v++) {
    for (let k = 0; k < K; k++) labels[v * K + k] = items[kept[k]].label;
  }
  return labels;
}
