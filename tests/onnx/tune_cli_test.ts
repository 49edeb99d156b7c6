/** `deno task tune` (a full search saved to the variant cache, nothing measured again on a second
 * call) and `deno task run`'s tuning messages: a progress line and a summary on stderr. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { VariantCache } from "../../src/kernels/variants.ts";
import { runTask, sharedPath } from "../helpers.ts";

const task = runTask;

Deno.test("deno task tune: every problem of the plans measured and saved; a second call measures nothing", async () => {
  const model = sharedPath("fixtures", "clip_vit_tiny", "clip_vit_tiny.opset17.onnx");
  if (!model) return;
  const dir = Deno.makeTempDirSync();
  try {
    const cacheFile = join(dir, "variant-cache.json");
    const first = await task("tune", [model, "--batch", "2", "--variant-cache", cacheFile, "-v"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /tuned the plan for \w+ \[2,3,32,32\]/);
    const summary = first.stderr.split("\n").filter((l) => l.startsWith("kernel tuning: "));
    assert.equal(summary.length, 1, first.stderr);
    assert.match(summary[0], /measured [1-9]\d* problem\(s\) in [\d.]+ s \(budget none/);
    assert.doesNotMatch(first.stderr, /left at default kernels/);
    const cache = new VariantCache();
    assert.ok(cache.loadFile(cacheFile));
    assert.ok(cache.size > 0);
    const again = await task("tune", [model, "--batch", "2", "--variant-cache", cacheFile, "-v"]);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /measured [1-9]/, "all cached");
    const bad = await task("tune", [model, "--batch", "0"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error: --batch: expected positive integers, got '0'/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
