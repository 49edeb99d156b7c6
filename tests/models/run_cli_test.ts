/** `deno task run` (tasks/run.ts) end to end on a fixture model: .npy in, .npy out matching the
 * float64 reference, `--profile` accounting for every dispatch, and a bad flag named. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { npyArray, readNpy, writeNpy } from "../../src/util/npy.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { NEWEST_OPSET } from "../../src/onnx/parse.ts";
import { runTask, sharedPath } from "../helpers.ts";

Deno.test("deno task run: npy in, npy out, --profile covers every dispatch", async () => {
  const dir = sharedPath("fixtures", "clip_vit_tiny");
  if (!dir) return;
  const tmp = Deno.makeTempDirSync();
  try {
    const x = new Float32Array(Deno.readFileSync(join(dir, "input_image.bin")).buffer);
    writeNpy(join(tmp, "x.npy"), npyArray("float32", [3, 3, 32, 32], x));
    const out = join(tmp, "y.npy");
    const r = await runTask("run", [
      join(dir, "clip_vit_tiny.opset14.onnx"),
      "--input",
      `image=${join(tmp, "x.npy")}`,
      "--output",
      out,
      "--no-tune",
      "--variant-cache",
      "none",
      "--profile",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const y = readNpy(out);
    assert.deepEqual(y.shape, [3, 32]);
    const ref = new Float64Array(Deno.readFileSync(join(dir, "output_embedding_f64.bin")).buffer);
    let err = 0, max = 0;
    for (let i = 0; i < ref.length; i++) {
      err = Math.max(err, Math.abs(Number(y.data[i]) - ref[i]));
      max = Math.max(max, Math.abs(ref[i]));
    }
    assert.ok(err <= 1e-4 * max + 1e-5, `max error ${err}`);
    // The profile: one row per op type, whose dispatch counts add up to the plan's.
    const m = /profile of the plan for image \[3,3,32,32\] \((\d+) dispatches\)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    const rows = r.stdout.split("\n").filter((l) => /^\S+\s+\d+\s+\d+\s+[\d.]+\s+[\d.]+%$/.test(l));
    const dispatches = rows.reduce((a, l) => a + Number(l.trim().split(/\s+/)[2]), 0);
    assert.equal(dispatches, Number(m[1]), r.stdout);
    assert.ok(rows.some((l) => l.startsWith("engine.LayerNormalization")), r.stdout);
    assert.match(r.stdout, /sum of dispatches [\d.]+ ms; whole plan [\d.]+ ms per run/);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("deno task run: a bad flag is named, exit 1, no stack", async () => {
  const r = await runTask("run", ["model.onnx", "--precision", "f8"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--precision: expected f32 or f16, got 'f8'/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
});

Deno.test("deno task run: a misshapen input names the file's shape, not one chunk's", async () => {
  const dir = sharedPath("fixtures", "clip_vit_tiny");
  if (!dir) return;
  const tmp = Deno.makeTempDirSync();
  try {
    // 300 rows run in more than one chunk with --max-chunk 64; the error must say 300.
    for (
      const [shape, want] of [
        [[300, 3, 30, 30], "got [300,3,30,30] (dim 2 is 30, must be 32)"],
        [[300, 3, 32], "expected rank 4 [batch,3,32,32], got rank 3 [300,3,32]"],
      ] as const
    ) {
      const n = shape.reduce((a, b) => a * b, 1);
      writeNpy(join(tmp, "x.npy"), npyArray("float32", [...shape], new Float32Array(n)));
      const r = await runTask("run", [
        join(dir, "clip_vit_tiny.opset14.onnx"),
        "--input",
        join(tmp, "x.npy"),
        "--max-chunk",
        "64",
        "--no-tune",
        "--variant-cache",
        "none",
      ]);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(want), r.stderr);
      assert.ok(!/^\s+at /m.test(r.stderr), r.stderr);
    }
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("deno task run: a model importing an opset newer than the engine knows runs with a warning", async () => {
  const tmp = Deno.makeTempDirSync();
  try {
    const b = new GraphBuilder("relu", NEWEST_OPSET + 2);
    b.output(b.op("Relu", [b.input("x", "float32", [2])], {}, "y"), "float32", [2]);
    const model = join(tmp, "new.onnx");
    Deno.writeFileSync(model, b.encode());
    writeNpy(join(tmp, "x.npy"), npyArray("float32", [2], new Float32Array([-1, 2])));
    const r = await runTask("run", [model, "--input", join(tmp, "x.npy"), "--no-tune"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      r.stderr.includes(`imports ONNX opset ${NEWEST_OPSET + 2}, newer than the newest`),
      r.stderr,
    );
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
