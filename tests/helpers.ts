/** Shared test utilities: where shared data lives, seeded random data, numeric comparison. */
import "./gpu_teardown.ts";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { sharedDataDir as sharedDir } from "../src/data/assets.ts";

export { sharedDir };

export const IN_CI = Deno.env.get("CI") === "true";

/** Path inside the shared folder if present. When absent a test skips with a message, except
 * under CI=true where absence fails the run (so nothing passes by skipping). */
export function sharedPath(...parts: string[]): string | undefined {
  const p = resolve(sharedDir(), ...parts);
  if (existsSync(p)) return p;
  const msg = `shared data missing: ${p} (set SHARED_DIR)`;
  if (IN_CI) throw new Error(`${msg}; CI requires it`);
  console.warn(`SKIP: ${msg}`);
  return undefined;
}

/** Deterministic PRNG (mulberry32) so failing cases reproduce. */
export { seededRandom as rng } from "../src/util/random.ts";
import { seededRandom as rng } from "../src/util/random.ts";

/** `n` uniform values in [lo, hi) from a seeded generator. */
export function randomFloats(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Asserts |a - b| <= atol + rtol * |b| elementwise (NaN matches NaN), naming the first index
 * that differs, how many do, and the worst. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  opts: { rtol?: number; atol?: number; label?: string } = {},
): void {
  const { rtol = 1e-5, atol = 1e-6, label = "values" } = opts;
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} != expected ${expected.length}`);
  }
  let first = -1;
  let worst = -1;
  let worstExcess = 0;
  let count = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue; // covers matching infinities
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess <= 0) continue;
    count++;
    if (first < 0) first = i;
    if (worst < 0 || excess > worstExcess || Number.isNaN(excess)) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (first >= 0) {
    const at = (i: number) => `index ${i}: got ${actual[i]}, expected ${expected[i]}`;
    throw new Error(
      `${label}: mismatch at ${at(first)} (${count} of ${actual.length} differ; worst at ` +
        `${at(worst)}; rtol ${rtol}, atol ${atol})`,
    );
  }
}

const repoRoot = new URL("../", import.meta.url).pathname;

/** Runs `tasks/<name>.ts` with `args` in a fresh Deno process; its exit code and output. */
export async function runTask(
  name: string,
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${repoRoot}tasks/${name}.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: r.code, stdout: text(r.stdout), stderr: text(r.stderr) };
}

/** The tiny fixture models of a complete small CLIP (ViT image tower, text tower over CLIP's
 * real BPE vocabulary, ResNet auxiliary encoder) as `deno task train` flags, or undefined when
 * the shared data is absent (sharedPath's skip rules). */
export function fixtureModelFlags(): Record<string, string> | undefined {
  const vit = sharedPath("fixtures", "clip_vit_tiny", "clip_vit_tiny.opset14.onnx");
  const text = sharedPath(
    "fixtures",
    "clip_text_fullvocab_tiny",
    "clip_text_fullvocab_tiny.opset14.onnx",
  );
  const aux = sharedPath("fixtures", "aux_resnet_tiny", "aux_resnet_tiny.opset14.onnx");
  const bpe = sharedPath("clip", "bpe_simple_vocab_16e6.txt.gz");
  if (!vit || !text || !aux || !bpe) return undefined;
  return { clip_visual: vit, clip_text: text, aux_model: aux, bpe };
}
