/** The AMU session's epoch statistics buffer: where the iteration records and the totals lie, and
 * that reading it back names each value by what the kernels wrote there. */
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { epochStatsLayout, unpackEpochStats, unpackTotalsSlot } from "../../src/amu/epoch_stats.ts";

Deno.test("epoch stats: records then a vec4-aligned totals slot; values unpack by name", () => {
  const layout = epochStatsLayout(3);
  assertEquals(layout, { iters: 3, totalsOffset: 12, totalsBytes: 32, bytes: 80 });
  // Record i holds (loss, merge, aux, correct) = 10 i + (1, 2, 3, 4); the totals 101..105.
  const words = new Float32Array(layout.bytes / 4);
  for (let i = 0; i < 3; i++) for (let k = 0; k < 4; k++) words[i * 4 + k] = 10 * i + k + 1;
  words.set([101, 102, 103, 104, 105], layout.totalsOffset);
  const { records, totals } = unpackEpochStats(layout, words.buffer, 2);
  assertEquals(records, {
    loss: Float32Array.of(1, 11),
    lossMerge: Float32Array.of(2, 12),
    lossAux: Float32Array.of(3, 13),
    correct: Float32Array.of(4, 14),
  });
  const want = { lossMerge: 101, lossAux: 102, fusedHits: 103, auxHits: 104, clipHits: 105 };
  assertEquals(totals, want);
  const slot = words.slice(layout.totalsOffset, layout.totalsOffset + layout.totalsBytes / 4);
  assertEquals(unpackTotalsSlot(slot.buffer), want);
});

Deno.test("epoch stats: a short read-back or an iteration past the epoch is a bug, not zeros", () => {
  const layout = epochStatsLayout(2);
  throws(() => unpackEpochStats(layout, new ArrayBuffer(layout.bytes - 16), 2), RangeError);
  throws(() => unpackEpochStats(layout, new ArrayBuffer(layout.bytes), 3), RangeError);
});
