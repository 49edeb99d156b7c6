import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { attentionCopies, attentionTextureLayout } from "../../src/kernels/attention_layout.ts";
import { EngineError } from "../../src/util/errors.ts";

const limits = { maxTextureDimension2D: 16384, maxTextureArrayLayers: 256 };

Deno.test("attention layout: heads side by side, bands stacked, then layers", () => {
  // ViT-B/16 at batch 8 as torch exports it: batch folded into 96 heads of 197 x 64.
  const vit = attentionTextureLayout(
    limits,
    "a",
    { batch: 1, heads: 96, rows: 197, cols: 64 },
    false,
  );
  assertEquals(vit, {
    headTexels: 16,
    texRows: 208,
    across: 96,
    bandsPerBatch: 1,
    bandsPerLayer: 1,
    width: 1536,
    height: 208,
    layers: 1,
  });
  // Halves: two rows per texel.
  assertEquals(
    attentionTextureLayout(limits, "a", { batch: 1, heads: 96, rows: 197, cols: 64 }, true)
      .texRows,
    104,
  );
  // A small texture: 5 heads of 3 texels across, 3 bands per batch entry, one 16-row band per
  // layer.
  const small = { maxTextureDimension2D: 16, maxTextureArrayLayers: 64 };
  const l = attentionTextureLayout(small, "a", { batch: 3, heads: 11, rows: 3, cols: 9 }, false);
  assertEquals([l.headTexels, l.across, l.bandsPerBatch, l.texRows], [3, 5, 3, 16]);
  assertEquals([l.bandsPerLayer, l.width, l.height, l.layers], [1, 15, 16, 9]);
  throws(
    () =>
      attentionTextureLayout(small, "node 'x'", { batch: 1, heads: 1, rows: 17, cols: 4 }, false),
    (e: unknown) => e instanceof EngineError && /node 'x'.*do not fit/.test(e.message),
  );
});

Deno.test("attention layout: a band of adjacent heads is one copy, other heads one each", () => {
  const shape = { batch: 2, heads: 3, rows: 5, cols: 64 };
  const layout = attentionTextureLayout(limits, "a", shape, false);
  // [B, S, H, D]: a row holds every head of its batch entry.
  const bshd = attentionCopies(layout, shape, [5 * 3 * 64, 64, 3 * 64, 1], false);
  assertEquals(bshd, [
    { offset: 0, bytesPerRow: 768, x: 0, y: 0, layer: 0, texels: 48, rows: 5 },
    { offset: 3840, bytesPerRow: 768, x: 0, y: 16, layer: 0, texels: 48, rows: 5 },
  ]);
  // [B, H, S, D]: each head its own copy, rows 256 bytes apart.
  const bhsd = attentionCopies(layout, shape, [3 * 5 * 64, 5 * 64, 64, 1], false);
  assertEquals(bhsd?.length, 6);
  assertEquals(bhsd?.[4], {
    offset: (1 * 3 * 5 * 64 + 1 * 5 * 64) * 4,
    bytesPerRow: 256,
    x: 16,
    y: 16,
    layer: 0,
    texels: 16,
    rows: 5,
  });
});

Deno.test("attention layout: operands a copy cannot stage are packed", () => {
  const shape = { batch: 1, heads: 2, rows: 5, cols: 64 };
  const layout = attentionTextureLayout(limits, "a", shape, false);
  const bshd = [5 * 2 * 64, 64, 2 * 64, 1] as const;
  assertEquals(attentionCopies(layout, shape, bshd, false)?.length, 1);
  // Halves are converted by the pack shader.
  assertEquals(attentionCopies(layout, shape, bshd, true), undefined);
  // Strided columns (a transposed operand).
  assertEquals(attentionCopies(layout, shape, [640, 1, 2, 10], false), undefined);
  // A row pitch that is no multiple of 256 bytes: 2 heads of 40 columns.
  const narrow = { ...shape, cols: 40 };
  const narrowLayout = attentionTextureLayout(limits, "a", narrow, false);
  assertEquals(attentionCopies(narrowLayout, narrow, [400, 40, 80, 1], false), undefined);
  // Columns that are not whole texels.
  const odd = { ...shape, cols: 62 };
  const oddLayout = attentionTextureLayout(limits, "a", odd, false);
  assertEquals(attentionCopies(oddLayout, odd, [5 * 128, 62, 128, 1], false), undefined);
  // A head offset that is not a whole texel.
  assertEquals(attentionCopies(layout, shape, [640, 66, 192, 1], false), undefined);
  // One row needs no pitch at all.
  const one = { ...narrow, rows: 1 };
  assertEquals(
    attentionCopies(narrowLayout, one, [80, 40, 80, 1], false)?.[0].bytesPerRow,
    undefined,
  );
});
