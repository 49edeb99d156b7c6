/** The float16 compute path (`precision: "f16"`): every tiny fixture, encoded with MatMul/Gemm
 * operands stored as halves (float32 accumulation) and Conv weights as half texels, stays within
 * the issue's bound `max|y - ref| <= 5e-3 * max|ref|` of its float64 reference. The fixtures'
 * matmuls are too small for the half-precision kernel to be the default choice, so a variant
 * cache that picks it for every matmul allowed to use halves makes the test exercise it on every
 * MatMul/Gemm (the full-size models pick it by default; see the closing note for their numbers). */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Gpu } from "../../src/gpu/mod.ts";
import { MATMUL_KERNEL } from "../../src/kernels/matmul.ts";
import { VariantCache } from "../../src/kernels/variants.ts";
import { loadEncoder } from "../../src/models/mod.ts";
import { sharedPath } from "../helpers.ts";
import { assertMatchesReference, encoderCases, preprocessingFor } from "./fixture.ts";

/** Answers the half-precision texture kernel for every matmul problem that allows halves. */
class HalvesEverywhere extends VariantCache {
  override get(gpu: Gpu, kernel: string, problem: string): string | undefined {
    if (kernel === MATMUL_KERNEL && problem.endsWith("xf16")) return "texture-f16-16x16";
    return super.get(gpu, kernel, problem);
  }
}

const FIXTURES = [
  "clip_vit_tiny",
  "clip_rn_tiny",
  "clip_text_tiny",
  "clip_text_fullvocab_tiny",
  "aux_resnet_tiny",
];

for (const name of FIXTURES) {
  const dir = sharedPath("fixtures", name);
  if (!dir) continue;
  for (const c of encoderCases(dir)) {
    Deno.test(`precision f16: ${c.label} within 5e-3 * max|ref| of float64`, async () => {
      const encoder = await loadEncoder(c.path, preprocessingFor(c), {
        precision: "f16",
        variantCache: new HalvesEverywhere(),
      });
      try {
        const y = await encoder.encodeToCpu(c.input);
        assert.deepEqual(y.shape, c.outputShape);
        const s = assertMatchesReference(y.data, c.reference, `${c.label} f16`, 5e-3, 0);
        const rel = s.maxErr / s.maxRef;
        console.log(`  ${c.label}: f16 max|y - ref| / max|ref| = ${rel.toExponential(2)}`);
        // float32 operands give ~5e-7 here: a smaller error means halves were not used.
        assert.ok(rel > 2e-5, `${c.label}: error ${rel} too small for float16 operands`);
      } finally {
        encoder.dispose();
      }
    });
  }
}

// Full-size models (opt-in, as in full_size_test.ts: FULL_MODELS_DIR=DIR made by
// ../shared/fixtures/generator/export.py --full), with the kernels' default choices: their large
// matmuls take the half-precision kernel without help.
const FULL: Record<string, string> = {
  vit_b16: "clip_vit_b16",
  rn50: "clip_rn50",
  text: "clip_text_b",
  aux: "aux_resnet50",
};
const fullRoot = Deno.env.get("FULL_MODELS_DIR");
for (const key of (Deno.env.get("FULL_MODELS") ?? Object.keys(FULL).join(",")).split(",")) {
  const name = FULL[key];
  if (!name) throw new Error(`FULL_MODELS: unknown model '${key}' (${Object.keys(FULL)})`);
  const dir = fullRoot ? join(fullRoot, name) : undefined;
  Deno.test({
    name: `precision f16: full-size ${name} within 5e-3 * max|ref| of float64`,
    ignore: !dir || !existsSync(join(dir, "manifest.json")),
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const c = encoderCases(dir!)[0];
      const encoder = await loadEncoder(c.path, preprocessingFor(c), { precision: "f16" });
      try {
        const t0 = performance.now();
        const y = await encoder.encodeToCpu(c.input);
        const seconds = (performance.now() - t0) / 1000;
        const s = assertMatchesReference(y.data, c.reference, `${c.label} f16`, 5e-3, 0);
        console.log(
          `  ${c.label}: f16 max|y - ref| / max|ref| = ${(s.maxErr / s.maxRef).toExponential(2)}` +
            `, ${seconds.toFixed(1)} s for batch ${c.input.shape[0]} (first run)`,
        );
      } finally {
        encoder.dispose();
      }
    },
  });
}
