/** Synthetic AMU features with class structure (for tests and benchmarks): each class has a
 * random CLIP prototype and auxiliary prototype; a row is its class's prototype plus Gaussian
 * noise, so zero-shot and trained accuracies are neither 0 nor 100. CLIP's weights are the
 * normalised CLIP prototypes perturbed (so zero-shot is imperfect), as unit columns [Dc, C]. */
import { type AmuFeatures, featureMatrix } from "../models/features.ts";
import { xoshiro128 } from "./order.ts";

export interface SyntheticSpec {
  trainRows: number;
  testRows: number;
  classes: number;
  clipDim: number;
  auxDim: number;
  seed?: number;
  /** Noise standard deviation relative to the unit-scale prototypes (default 1). */
  noise?: number;
}

function gaussian(next: () => number): () => number {
  return () => {
    const u = (next() + 1) / 4294967297;
    const v = next() / 4294967296;
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

export function syntheticFeatures(spec: SyntheticSpec): AmuFeatures {
  const { trainRows, testRows, classes: C, clipDim: Dc, auxDim: Da } = spec;
  const noise = spec.noise ?? 1;
  const g = gaussian(xoshiro128(spec.seed ?? 7));
  const proto = (dim: number) => Float32Array.from({ length: C * dim }, g);
  const clipProto = proto(Dc);
  const auxProto = proto(Da);
  const rowsOf = (n: number, labelOffset: number) => {
    const labels = Int32Array.from({ length: n }, (_, i) => (i + labelOffset) % C);
    const clip = new Float32Array(n * Dc);
    const aux = new Float32Array(n * Da);
    const scale = noise / Math.sqrt(Math.max(Dc, 1) / 8);
    for (let i = 0; i < n; i++) {
      const c = labels[i];
      for (let k = 0; k < Dc; k++) clip[i * Dc + k] = clipProto[c * Dc + k] + scale * 2 * g();
      for (let k = 0; k < Da; k++) aux[i * Da + k] = auxProto[c * Da + k] + noise * 1.5 * g();
    }
    return { labels, clip, aux };
  };
  const train = rowsOf(trainRows, 0);
  const test = rowsOf(testRows, 3);
  const weights = new Float32Array(Dc * C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    const col = new Float64Array(Dc);
    for (let k = 0; k < Dc; k++) {
      col[k] = clipProto[c * Dc + k] + 0.5 * g();
      s += col[k] * col[k];
    }
    const norm = Math.sqrt(s);
    for (let k = 0; k < Dc; k++) weights[k * C + c] = col[k] / norm;
  }
  return {
    trainClip: featureMatrix(trainRows, Dc, train.clip),
    trainAux: featureMatrix(trainRows, Da, train.aux),
    trainLabels: train.labels,
    testClip: featureMatrix(testRows, Dc, test.clip),
    testAux: featureMatrix(testRows, Da, test.aux),
    testLabels: test.labels,
    clipWeights: featureMatrix(Dc, C, weights),
  };
}
