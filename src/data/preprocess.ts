/** torchvision-on-PIL preprocessing, reproduced exactly: PIL's bicubic resampling (a = -0.5,
 * antialiased support, 22-bit fixed-point coefficients, horizontal pass then vertical pass with
 * an 8-bit intermediate), center crop with Python's rounding, RandomResizedCrop and flips,
 * then ToTensor + Normalize into float32 CHW. */
import type { RgbImage } from "./image_format.ts";
import type { Normalization } from "../models/preprocessing.ts";

// The normalisation constants belong to the encoders (src/models); re-exported for callers here.
export {
  CLIP_NORMALIZATION,
  IMAGENET_NORMALIZATION,
  type Normalization,
} from "../models/preprocessing.ts";

const PRECISION_BITS = 32 - 8 - 2;
const BICUBIC_A = -0.5;

function bicubic(x: number): number {
  x = Math.abs(x);
  if (x < 1) return ((BICUBIC_A + 2) * x - (BICUBIC_A + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * BICUBIC_A;
  return 0;
}

interface Coefficients {
  /** First input index of each output's window. */
  starts: Int32Array;
  /** Window length of each output. */
  lengths: Int32Array;
  /** Fixed-point weights, `stride` per output. */
  weights: Float64Array;
  stride: number;
}

/** PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for input range [in0, in1) -> outSize. */
function coefficients(inSize: number, in0: number, in1: number, outSize: number): Coefficients {
  const scale = (in1 - in0) / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const starts = new Int32Array(outSize);
  const lengths = new Int32Array(outSize);
  const weights = new Float64Array(outSize * stride);
  const k = new Float64Array(stride);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubic((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      // C's (int)(w * 2^22 + 0.5) for w >= 0, (int)(w * 2^22 - 0.5) otherwise.
      weights[xx * stride + x] = Math.trunc(w * (1 << PRECISION_BITS) + (w < 0 ? -0.5 : 0.5));
    }
    starts[xx] = xmin;
    lengths[xx] = xmax;
  }
  return { starts, lengths, weights, stride };
}

function clip8(acc: number): number {
  const v = Math.floor(acc / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** A crop box in input pixels: [left, top, right, bottom). */
export type Box = readonly [number, number, number, number];

/** PIL `Image.resize((width, height), Image.BICUBIC, box)` on an RGB image. */
export function resizeBicubic(img: RgbImage, width: number, height: number, box?: Box): RgbImage {
  const [left, top, right, bottom] = box ?? [0, 0, img.width, img.height];
  const half = 1 << (PRECISION_BITS - 1);
  // Horizontal pass over the rows the vertical pass needs.
  const v = coefficients(img.height, top, bottom, height);
  const rowFirst = v.starts[0];
  const rowLast = v.starts[height - 1] + v.lengths[height - 1];
  const h = coefficients(img.width, left, right, width);
  const rows = rowLast - rowFirst;
  const tmp = new Uint8Array(rows * width * 3);
  for (let y = 0; y < rows; y++) {
    const src = (y + rowFirst) * img.width * 3;
    for (let xx = 0; xx < width; xx++) {
      const s = h.starts[xx], n = h.lengths[xx], wo = xx * h.stride;
      let r = half, g = half, b = half;
      for (let x = 0; x < n; x++) {
        const w = h.weights[wo + x];
        const p = src + (s + x) * 3;
        r += img.data[p] * w;
        g += img.data[p + 1] * w;
        b += img.data[p + 2] * w;
      }
      const o = (y * width + xx) * 3;
      tmp[o] = clip8(r);
      tmp[o + 1] = clip8(g);
      tmp[o + 2] = clip8(b);
    }
  }
  const out = new Uint8Array(width * height * 3);
  for (let yy = 0; yy < height; yy++) {
    const s = v.starts[yy] - rowFirst, n = v.lengths[yy], wo = yy * v.stride;
    for (let xx = 0; xx < width; xx++) {
      let r = half, g = half, b = half;
      for (let y = 0; y < n; y++) {
        const w = v.weights[wo + y];
        const p = ((s + y) * width + xx) * 3;
        r += tmp[p] * w;
        g += tmp[p + 1] * w;
        b += tmp[p + 2] * w;
      }
      const o = (yy * width + xx) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return { width, height, data: out };
}

/** Python's round(): halves go to the even neighbour. */
function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision `Resize(size)` (shorter side to `size`, bicubic, antialiased). */
export function resizeShorter(img: RgbImage, size: number): RgbImage {
  const { width: w, height: h } = img;
  const short = Math.min(w, h), long = Math.max(w, h);
  if (short === size) return img;
  const newLong = Math.trunc(size * long / short);
  return w <= h ? resizeBicubic(img, size, newLong) : resizeBicubic(img, newLong, size);
}

/** torchvision `CenterCrop(size)` (pads with zeros when the image is smaller). */
export function centerCrop(img: RgbImage, size: number): RgbImage {
  const top = pyRound((img.height - size) / 2);
  const left = pyRound((img.width - size) / 2);
  return crop(img, left, top, size, size);
}

/** Pixel crop; regions outside the image are zero, as PIL's crop does. */
export function crop(img: RgbImage, left: number, top: number, w: number, h: number): RgbImage {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < w; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= img.width) continue;
      const s = (sy * img.width + sx) * 3, d = (y * w + x) * 3;
      out[d] = img.data[s];
      out[d + 1] = img.data[s + 1];
      out[d + 2] = img.data[s + 2];
    }
  }
  return { width: w, height: h, data: out };
}

export function flipHorizontal(img: RgbImage): RgbImage {
  const out = new Uint8Array(img.data.length);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const s = (y * img.width + x) * 3, d = (y * img.width + img.width - 1 - x) * 3;
      out[d] = img.data[s];
      out[d + 1] = img.data[s + 1];
      out[d + 2] = img.data[s + 2];
    }
  }
  return { width: img.width, height: img.height, data: out };
}

/** torchvision `RandomResizedCrop.get_params` with `random()` in [0, 1): a crop box. */
export function randomResizedCropBox(
  width: number,
  height: number,
  random: () => number,
  scale: readonly [number, number] = [0.5, 1],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): Box {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + (scale[1] - scale[0]) * random());
    const aspect = Math.exp(logRatio[0] + (logRatio[1] - logRatio[0]) * random());
    const w = pyRound(Math.sqrt(target * aspect));
    const h = pyRound(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = Math.floor(random() * (height - h + 1));
      const left = Math.floor(random() * (width - w + 1));
      return [left, top, left + w, top + h];
    }
  }
  // Fallback: the whole image cropped to the nearest allowed aspect ratio, centred.
  const inRatio = width / height;
  let w = width, h = height;
  if (inRatio < ratio[0]) h = pyRound(w / ratio[0]);
  else if (inRatio > ratio[1]) w = pyRound(h * ratio[1]);
  const top = Math.trunc((height - h) / 2), left = Math.trunc((width - w) / 2);
  return [left, top, left + w, top + h];
}

/** ToTensor + Normalize: 8-bit HWC RGB -> float32 CHW written at `out[offset...]`. */
export function toNormalizedChw(
  img: RgbImage,
  norm: Normalization,
  out: Float32Array,
  offset = 0,
): void {
  const plane = img.width * img.height;
  for (let c = 0; c < 3; c++) {
    const m = norm.mean[c], s = norm.std[c];
    for (let p = 0; p < plane; p++) {
      out[offset + c * plane + p] = (img.data[p * 3 + c] / 255 - m) / s;
    }
  }
}

/** Evaluation transform: Resize(size, bicubic) + CenterCrop(size). */
export function evalView(img: RgbImage, size: number): RgbImage {
  return centerCrop(resizeShorter(img, size), size);
}

/** Training view: RandomResizedCrop(size, scale 0.5-1, bicubic) + RandomHorizontalFlip. */
export function trainView(img: RgbImage, size: number, random: () => number): RgbImage {
  const box = randomResizedCropBox(img.width, img.height, random);
  const cropped = crop(img, box[0], box[1], box[2] - box[0], box[3] - box[1]);
  const resized = resizeBicubic(cropped, size, size);
  return random() < 0.5 ? flipHorizontal(resized) : resized;
}
