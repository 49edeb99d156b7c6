/** The progress line off a terminal (logs, pipes): a line at most every `quietMs`, and the
 * finished state written once even when the last update already showed it. */
import assert from "node:assert/strict";
import { ProgressLine } from "../../src/data/progress.ts";

Deno.test("progress off a terminal: the final line is written once", () => {
  let now = 0;
  const lines: string[] = [];
  const p = new ProgressLine("views", 4, "views", {
    write: (t) => lines.push(t),
    inPlace: false,
    quietMs: 10_000,
    now: () => now,
  });
  now = 5_000;
  p.advance(2); // too soon for a line
  assert.equal(lines.length, 0);
  now = 11_000;
  p.advance(2); // due: writes the finished count
  now = 11_001;
  p.finish();
  assert.equal(lines.length, 1, lines.join(""));
  assert.match(lines[0], /^views \[#+\] 4\/4 views/);
  // A short loop prints only its end, once.
  const short: string[] = [];
  const q = new ProgressLine("images", 3, "images", {
    write: (t) => short.push(t),
    inPlace: false,
    now: () => 0,
  });
  q.advance(3);
  q.finish();
  assert.equal(short.length, 1);
});
