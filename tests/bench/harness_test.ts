/** The benchmark's pure parts: statistics, reference checks, the JSON report's schema,
 * `--compare`, `--filter` and case selection. No GPU, no timing assertions. */
import assert from "node:assert/strict";
import {
  checkOutput,
  gelu,
  mixedError,
  referenceAt,
  rowIndices,
  sampleIndices,
} from "../../src/bench/check.ts";
import { erf } from "../../src/util/math.ts";
import { parsePeers, selectCases } from "../../src/bench/cli.ts";
import {
  buildReport,
  compareReports,
  formatCompare,
  formatMs,
  formatResults,
  formatTable,
  type JsonReport,
  matchesFilter,
  parseReport,
  rowToJson,
} from "../../src/bench/report.ts";
import { chooseReps, chooseRuns, gbps, gflops, ratio, summarize } from "../../src/bench/stats.ts";
import { KERNEL_SUITES } from "../../src/bench/suites/kernels.ts";
import {
  type BenchCase,
  type Measurement,
  PEER_NAMES,
  type RowResult,
  type Suite,
} from "../../src/bench/types.ts";

function measurement(samples: number[], wall = samples): Measurement {
  return {
    stats: summarize(samples),
    clock: "gpu-timestamp",
    wall: summarize(wall),
    reps: 2,
  };
}

function row(name: string, oursMs: number | undefined, extra: Partial<RowResult> = {}): RowResult {
  return {
    name,
    suite: "matmul",
    shape: "8x8 @ 8x8",
    flops: 2e9,
    bytes: 4e6,
    variant: "texture16x16",
    ours: oursMs === undefined
      ? { status: "wrong", maxError: 0.5, note: "max error 5e-1 > 0.001" }
      : {
        status: "ok",
        measurement: measurement([oursMs, oursMs * 1.1, oursMs * 0.9]),
        maxError: 1e-6,
      },
    peers: {
      "onnxruntime-web-webgpu": {
        status: "ok",
        measurement: measurement([4 * (oursMs ?? 1)]),
        maxError: 2e-6,
      },
      "tfjs-webgpu": { status: "unsupported", note: "no workload for this peer" },
      "onnxruntime-node-cpu": { status: "unavailable", note: "no native binding" },
    },
    ...extra,
  };
}

Deno.test("summarize: median, range and spread; even counts average the middle", () => {
  const s = summarize([5, 1, 3]);
  assert.equal(s.median, 3);
  assert.equal(s.min, 1);
  assert.equal(s.max, 5);
  assert.ok(Math.abs(s.spread - 2 / 3) < 1e-12);
  assert.deepEqual(s.samples, [5, 1, 3]);
  assert.equal(summarize([1, 2, 3, 10]).median, 2.5);
  assert.equal(summarize([4]).spread, 0);
  assert.throws(() => summarize([]), /no samples/);
});

Deno.test("reps and runs follow the warm-up time and the budget", () => {
  assert.equal(chooseReps(1, 100, 20), 20); // short kernels are repeated, capped
  assert.equal(chooseReps(30, 100, 20), 4);
  assert.equal(chooseReps(500, 100, 20), 1);
  assert.equal(chooseRuns(100, 5, 3, 10_000), 5);
  assert.equal(chooseRuns(3000, 5, 3, 10_000), 3); // slow runner: budget cuts to the minimum
  assert.equal(chooseRuns(2400, 5, 3, 10_000), 4);
  assert.equal(chooseRuns(100, 2, 3, 10_000), 2); // minimum never exceeds the asked runs
});

Deno.test("rates and ratios", () => {
  assert.equal(gflops(2e9, 100), 20);
  assert.equal(gbps(1e8, 10), 10);
  assert.equal(gflops(undefined, 1), undefined);
  assert.equal(gflops(1e9, 0), undefined);
  assert.equal(ratio(1, 4), 0.25);
  assert.equal(ratio(1, undefined), undefined);
  assert.equal(ratio(1, 0), undefined);
});

Deno.test("reference check: absolute metric compares |got - expected| with a scaled bound", () => {
  const ref = { ...referenceAt(2, [0, 1], (i) => i * 100, 0.02), metric: "absolute" as const };
  assert.ok(checkOutput(ref, [0.01, 100.015]).ok);
  const off = checkOutput(ref, [0, 100.03]); // relative 3e-4 would pass the mixed metric
  assert.equal(off.ok, false);
  assert.ok(Math.abs(off.maxError - 0.03) < 1e-9);
});

Deno.test("reference check: mixed error, NaN and short outputs fail", () => {
  assert.equal(mixedError(1.5, 1), 0.5);
  assert.equal(mixedError(110, 100), 0.1);
  const ref = referenceAt(4, [0, 3], (i) => i * 10, 1e-3);
  assert.deepEqual([...ref.values], [0, 30]);
  assert.ok(checkOutput(ref, [0, 99, 99, 30]).ok); // unchecked positions do not matter
  const off = checkOutput(ref, [0, 0, 0, 30.3]);
  assert.equal(off.ok, false);
  assert.ok(Math.abs(off.maxError - 0.01) < 1e-12);
  assert.match(off.note!, /max error/);
  assert.equal(checkOutput(ref, [NaN, 0, 0, 30]).ok, false);
  const short = checkOutput(ref, [0, 0]);
  assert.equal(short.ok, false);
  assert.match(short.note!, /2 values, expected 4/);
});

Deno.test("sampled positions are seeded, in range, and cover the ends", () => {
  const a = sampleIndices(1000, 50, 7);
  assert.deepEqual(a, sampleIndices(1000, 50, 7));
  assert.equal(a.length, 50);
  assert.ok(a.includes(0) && a.includes(999));
  assert.ok(a.every((i) => Number.isInteger(i) && i >= 0 && i < 1000));
  assert.deepEqual(sampleIndices(3, 50, 7), [0, 1, 2]);
  assert.deepEqual(rowIndices([0, 2], 3), [0, 1, 2, 6, 7, 8]);
});

Deno.test("float64 erf and GELU", () => {
  // erf(0.5), erf(1), erf(2) to 1e-12 (Abramowitz & Stegun table values).
  assert.ok(Math.abs(erf(0.5) - 0.5204998778130465) < 1e-12);
  assert.ok(Math.abs(erf(1) - 0.8427007929497149) < 1e-12);
  assert.ok(Math.abs(erf(-2) + 0.9953222650189527) < 1e-12);
  assert.equal(erf(0), 0);
  assert.equal(erf(6), 1);
  assert.ok(Math.abs(gelu(1) - 0.8413447460685429) < 1e-12);
  assert.equal(gelu(0), 0);
});

Deno.test("JSON rows carry exactly the issue's keys and types", () => {
  const json = rowToJson(row("matmul-1024", 10));
  assert.equal(json.name, "matmul-1024");
  assert.equal(json.ours_ms, 10);
  assert.equal(json.max_error, 1e-6);
  assert.deepEqual(Object.keys(json.peers).sort(), [...PEER_NAMES].sort());
  assert.equal(json.peers["onnxruntime-web-webgpu"], 40);
  assert.equal(json.peers["tfjs-webgpu"], null);
  assert.equal(json.peers["onnxruntime-node-cpu"], null);
  assert.equal(json.peer_status["tfjs-webgpu"], "unsupported");
  assert.equal(json.peer_status["onnxruntime-node-cpu"], "unavailable");
  assert.equal(json.gflops, 200);
  assert.equal(json.clock, "gpu-timestamp");
  assert.equal(json.variant, "texture16x16");
  // A wrong result has no time but keeps its error.
  const wrong = rowToJson(row("matmul-512", undefined));
  assert.equal(wrong.ours_ms, null);
  assert.equal(wrong.max_error, 0.5);
  assert.equal(wrong.status, "wrong");
  assert.equal(wrong.gflops, undefined);
});

Deno.test("report round-trips through JSON and validates", () => {
  const report = buildReport({ description: "test adapter" }, { deno: "2.x" }, [
    row("a", 1),
    row("b", undefined),
  ], { runs: 5 });
  const parsed = parseReport(JSON.parse(JSON.stringify(report)));
  assert.equal(parsed.rows.length, 2);
  assert.equal(parsed.adapter.description, "test adapter");
  assert.equal(parsed.versions.deno, "2.x");
  assert.throws(() => parseReport([]), /not a JSON object/);
  assert.throws(() => parseReport({ adapter: {}, rows: {} }), /"rows"/);
  assert.throws(
    () =>
      parseReport({ adapter: {}, rows: [{ name: "x", ours_ms: "1", max_error: 0, peers: {} }] }),
    /ours_ms/,
  );
  assert.throws(
    () =>
      parseReport({
        adapter: {},
        rows: [{ name: "x", ours_ms: 1, max_error: null, peers: { p: "fast" } }],
      }),
    /peers\.p/,
  );
});

Deno.test("compare: change, noise band, new and removed rows", () => {
  const mk = (rows: [string, number | null][]): JsonReport => ({
    adapter: {},
    versions: {},
    rows: rows.map(([name, ms]) => ({
      ...rowToJson(row(name, 1)),
      ours_ms: ms,
    })),
  });
  const old = mk([["same", 10], ["faster", 10], ["slower", 10], ["gone", 5]]);
  const now = mk([["same", 11], ["faster", 5], ["slower", 20], ["added", 3]]);
  const lines = compareReports(old, now);
  const by = new Map(lines.map((l) => [l.name, l]));
  assert.equal(by.get("same")!.significant, false);
  assert.ok(Math.abs(by.get("same")!.change! - 1.1) < 1e-12);
  assert.equal(by.get("faster")!.change, 0.5);
  assert.equal(by.get("faster")!.significant, true);
  assert.equal(by.get("slower")!.significant, true);
  assert.equal(by.get("added")!.status, "new");
  assert.equal(by.get("gone")!.status, "removed");
  assert.equal(by.get("faster")!.peers["onnxruntime-web-webgpu"]!.newMs, 4);
  const text = formatCompare(lines);
  assert.match(text, /faster/);
  assert.match(text, /SLOWER/);
  assert.match(text, /1 rows of the old report not run now/);
  assert.doesNotMatch(text, /^gone/m);
});

Deno.test("filter: substring, comma alternatives, empty keeps all", () => {
  assert.ok(matchesFilter("matmul-1024", "matmul"));
  assert.ok(matchesFilter("vit-b16-b1-qkv", "rn50,b1-qkv"));
  assert.ok(!matchesFilter("matmul-1024", "vit"));
  assert.ok(matchesFilter("anything", undefined));
  assert.ok(matchesFilter("anything", ""));
});

Deno.test("case selection: suites, filter, large shapes, opt-in suites, unknown suite", () => {
  const small = { large: false }, large = { large: true };
  const names = (sel: { c: BenchCase }[]) => sel.map((s) => s.c.name);
  const matmul = names(selectCases(KERNEL_SUITES, ["matmul"], undefined, small));
  assert.deepEqual(matmul, ["matmul-256", "matmul-512", "matmul-1024", "matmul-1024-f16"]);
  assert.ok(
    names(selectCases(KERNEL_SUITES, ["matmul"], undefined, large)).includes("matmul-2048"),
  );
  const all = names(selectCases(KERNEL_SUITES, [], undefined, small));
  assert.equal(new Set(all).size, all.length, "row names are unique");
  for (
    const want of [
      "vit-b16-b1-qkv",
      "vit-b16-b1-softmax",
      "vit-b16-b8-layernorm",
      "rn50-b1-stem-7x7",
      "rn50-b1-s4-1x1",
      "text-b1-causal-attn",
    ]
  ) assert.ok(all.includes(want), want);
  assert.ok(!all.includes("vit-b16-b8-mlp-up"), "batch-8 projections are opt-in");
  assert.deepEqual(names(selectCases(KERNEL_SUITES, [], "stem", small)), ["rn50-b1-stem-7x7"]);
  assert.throws(() => selectCases(KERNEL_SUITES, ["nope"], undefined, small), /unknown suite/);

  const row = (name: string): BenchCase => ({
    name,
    shape: "",
    prepare: () => Promise.reject(new Error("not run")),
  });
  const optIn: Suite = {
    name: "models",
    description: "",
    optIn: true,
    cases: ({ large, modelsDir }) => [row(`m-${modelsDir}-${large ? 8 : 1}`)],
  };
  const suites = [...KERNEL_SUITES, optIn];
  assert.ok(!names(selectCases(suites, [], undefined, small)).some((n) => n.startsWith("m-")));
  assert.deepEqual(
    names(selectCases(suites, ["models"], undefined, { large: true, modelsDir: "d" })),
    [
      "m-d-8",
    ],
  );
  const everything = names(selectCases(suites, ["all"], undefined, small));
  assert.ok(everything.includes("m-undefined-1") && everything.includes("matmul-256"));
});

Deno.test("kernel cases report their work for GFLOP/s and GB/s", () => {
  const cases = selectCases(KERNEL_SUITES, [], "matmul-1024,rn50-b1-stem", { large: false });
  const mm = cases.find((s) => s.c.name === "matmul-1024")!.c;
  assert.equal(mm.flops, 2 * 1024 ** 3);
  assert.equal(mm.bytes, 4 * 3 * 1024 ** 2);
  const stem = cases.find((s) => s.c.name === "rn50-b1-stem-7x7")!.c;
  assert.equal(stem.flops, 2 * 64 * 112 * 112 * 3 * 49);
});

Deno.test("peers: short and full names, none", () => {
  assert.deepEqual(parsePeers(undefined), [...PEER_NAMES]);
  assert.deepEqual(parsePeers("none"), []);
  assert.deepEqual(parsePeers("ort-web,onnxruntime-node-cpu"), [
    "onnxruntime-web-webgpu",
    "onnxruntime-node-cpu",
  ]);
  assert.throws(() => parsePeers("torch"), /unknown peer/);
});

Deno.test("tables: alignment and cells", () => {
  const t = formatTable(["a", "num"], [["x", "1"], ["long", "100"]], ["l", "r"]);
  assert.deepEqual(t.split("\n"), ["a     num", "----  ---", "x       1", "long  100"]);
  assert.equal(formatMs(1234.5), "1235");
  assert.equal(formatMs(12.345), "12.3");
  assert.equal(formatMs(0.01234), "0.012");
  assert.equal(formatMs(null), "-");
  const text = formatResults([row("matmul-1024", 10), row("bad", undefined)], [...PEER_NAMES]);
  assert.match(text, /matmul-1024/);
  assert.match(text, /WRONG/);
  assert.match(text, /40\.0 \(0\.25\)/); // peer ms and ours/theirs by wall clock
  assert.match(text, /n\/a/);
  assert.match(text, /unavailable/);
  assert.doesNotMatch(text, /items\/s|GPU MiB/); // model columns only when a row has them
  const model = formatResults(
    [row("vit-b16-b1", 2000, { items: 8, extra: { gpu_memory_mib: 340 } })],
    [],
  );
  assert.match(model, /items\/s +GPU MiB/);
  assert.match(model, /4\.00 +340/); // 8 items in 2 s
});
