/** Zero-shot CLIP accuracy on the GPU against a float64 host computation, at odd sizes and with
 * the rows split into chunks. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { randomFloats, rng } from "../helpers.ts";
import type { AmuFeatures, FeatureMatrix } from "../../src/models/features.ts";
import { runZeroShot, zeroShotAccuracy } from "../../src/amu/zero_shot.ts";

function hostAccuracy(x: FeatureMatrix, labels: Int32Array, w: FeatureMatrix): number {
  const D = x.cols, C = w.cols;
  let hits = 0;
  for (let r = 0; r < x.rows; r++) {
    let ss = 0;
    for (let k = 0; k < D; k++) ss += x.data[r * D + k] ** 2;
    const norm = Math.sqrt(ss);
    let best = 0, bestV = -Infinity;
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let k = 0; k < D; k++) s += (x.data[r * D + k] / norm) * w.data[k * C + c];
      if (100 * s > bestV) {
        bestV = 100 * s;
        best = c;
      }
    }
    if (best === labels[r]) hits++;
  }
  return 100 * hits / x.rows;
}

Deno.test("zero-shot accuracy matches the host at odd sizes, whole and chunked", async () => {
  const r = rng(3);
  for (const [T, D, C] of [[1, 3, 2], [37, 11, 5], [101, 33, 17]]) {
    const x = { rows: T, cols: D, data: randomFloats(T * D, T + D) };
    const w = { rows: D, cols: C, data: randomFloats(D * C, D * C + 1) };
    const labels = Int32Array.from({ length: T }, () => Math.floor(r() * C));
    const want = hostAccuracy(x, labels, w);
    assertEquals(await zeroShotAccuracy(x, labels, w), want);
    // Chunks of 3 rows (the widest row is max(D, C) floats).
    assertEquals(
      await zeroShotAccuracy(x, labels, w, { chunkBytes: Math.max(D, C) * 4 * 3 }),
      want,
    );
  }
});

Deno.test("zero-shot method result", async () => {
  const T = 23, D = 9, C = 4;
  const w = { rows: D, cols: C, data: randomFloats(D * C, 9) };
  const x = { rows: T, cols: D, data: randomFloats(T * D, 10) };
  const labels = Int32Array.from({ length: T }, (_, i) => i % C);
  const aux = (rows: number) => ({ rows, cols: 1, data: new Float32Array(rows) });
  const f: AmuFeatures = {
    trainClip: x,
    trainAux: aux(T),
    trainLabels: labels,
    testClip: x,
    testAux: aux(T),
    testLabels: labels,
    clipWeights: w,
  };
  const res = await runZeroShot(f);
  assertEquals(res.method, "zero-shot");
  assertEquals(res.final.test_acc, hostAccuracy(x, labels, w));
  assertEquals(res.zero_shot_acc, res.final.test_acc);
});
