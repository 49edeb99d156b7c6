/** `deno task bench` as a user runs it: selecting rows, and bad selections refused with one clear
 * line (no stack), before anything is measured. */
import assert from "node:assert/strict";
import { runTask } from "../helpers.ts";

function assertCleanError(r: { code: number; stderr: string }, pattern: RegExp) {
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
}

Deno.test("deno task bench --list: suites and --filter select rows without running them", async () => {
  const r = await runTask("bench", ["vit", "--filter", "softmax", "--list", "--peers", "none"]);
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.split("\n").filter((l) => /^\s+vit\s+/.test(l)).map((l) => l.trim());
  assert.deepEqual(rows.map((l) => l.split(/\s+/)[1]), [
    "vit-b16-b1-softmax",
    "vit-b16-b8-softmax",
  ]);
});

Deno.test("deno task bench: an unknown suite, flag or empty selection is one clear error", async () => {
  assertCleanError(await runTask("bench", ["nosuch"]), /unknown suite 'nosuch' \(one of matmul,/);
  assertCleanError(await runTask("bench", ["--bogus"]), /--bogus/);
  assertCleanError(
    await runTask("bench", ["--filter", "zzz", "--peers", "none"]),
    /no benchmark rows match the selection/,
  );
  assertCleanError(
    await runTask("bench", ["vit", "--filter", "softmax", "--peers", "nope"]),
    /unknown peer 'nope' \(one of ort-web, tfjs, ort-node\)/,
  );
});
