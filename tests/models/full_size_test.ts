/** Full-size encoders (ViT-B/16, RN50, the CLIP text transformer, torchvision ResNet-50) made by
 * `python3 ../shared/fixtures/generator/export.py --full DIR` with random weights and float64
 * references at batch 2. Too large to commit and slow on a software adapter, so opt-in: set
 * FULL_MODELS_DIR=DIR (FULL_MODELS=vit_b16,rn50,text,aux picks some); absent, the test skips. */
import "../gpu_teardown.ts";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadEncoder } from "../../src/models/mod.ts";
import { assertMatchesReference, encoderCases, preprocessingFor } from "./fixture.ts";

const MODELS: Record<string, string> = {
  vit_b16: "clip_vit_b16",
  rn50: "clip_rn50",
  text: "clip_text_b",
  aux: "aux_resnet50",
};

const root = Deno.env.get("FULL_MODELS_DIR");
const only = (Deno.env.get("FULL_MODELS") ?? Object.keys(MODELS).join(",")).split(",");

for (const key of only) {
  const name = MODELS[key];
  if (!name) throw new Error(`FULL_MODELS: unknown model '${key}' (${Object.keys(MODELS)})`);
  const dir = root ? join(root, name) : undefined;
  const ignore = !dir || !existsSync(join(dir, "manifest.json"));
  if (ignore) {
    console.warn(
      `SKIP full-size ${name}: ` +
        (root
          ? `${dir} not found`
          : "set FULL_MODELS_DIR to a folder made by ../shared/fixtures/generator/export.py --full"),
    );
  }
  Deno.test({
    name: `full-size ${name} matches its float64 reference at batch 2`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const c = encoderCases(dir!)[0];
      const encoder = await loadEncoder(c.path, preprocessingFor(c));
      try {
        const t0 = performance.now();
        const y = await encoder.encodeToCpu(c.input);
        const seconds = (performance.now() - t0) / 1000;
        assert.deepEqual(y.shape, c.outputShape);
        const s = assertMatchesReference(y.data, c.reference, c.label);
        console.log(
          `  ${c.label}: max|y - ref| ${s.maxErr.toExponential(2)} (max|ref| ` +
            `${s.maxRef.toFixed(3)}), ${seconds.toFixed(1)} s for batch ${c.input.shape[0]}`,
        );
      } finally {
        encoder.dispose();
      }
    },
  });
}
