/** scripts/gpu-report.sh: the --local form runs end to end here (tiny fixtures, CPU PyTorch peer
 * or its skip note) and writes report.json and report.md with every section; the device form
 * refuses a software adapter (llvmpipe) with a clear message instead of reporting its numbers. */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import type { GpuReport } from "../../scripts/gpu_report/types.ts";

const REPO = new URL("../..", import.meta.url).pathname;
const SCRIPT = join(REPO, "scripts", "gpu-report.sh");

async function runScript(args: string[], out: string) {
  const r = await new Deno.Command("bash", {
    args: [SCRIPT, ...args],
    // A bundle left by --prepare must not change what the test runs.
    env: {
      OUT: out,
      GPU_REPORT_BUNDLE: join(out, "no-bundle"),
      // The script runs `deno` from PATH: the one running this test.
      PATH: `${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}`,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  return { code: r.code, text };
}

Deno.test("gpu-report.sh --local writes every section as JSON and markdown", async () => {
  const out = await Deno.makeTempDir({ prefix: "gpu-report-" });
  try {
    const t0 = performance.now();
    const r = await runScript(["--local"], out);
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0, r.text.slice(-3000));
    assert.ok(seconds < 120, `--local took ${seconds.toFixed(0)} s`);
    const report = JSON.parse(await Deno.readTextFile(join(out, "report.json"))) as GpuReport;
    const md = await Deno.readTextFile(join(out, "report.md"));
    assert.equal(report.mode, "local");

    // Conformance: both required lists, counted, nothing failing.
    assert.deepEqual(report.conformance.map((c) => c.list), [
      "required-node.txt",
      "required-pytorch-converted.txt",
    ]);
    for (const c of report.conformance) {
      assert.ok(c.passed > 0 && c.failed === 0, `${c.list}: ${JSON.stringify(c)}`);
      assert.match(md, new RegExp(`\\| ${c.list} \\| ${c.passed} \\| 0 \\|`));
    }
    // Bench rows: kernels and models, each with its reference check passed before timing.
    assert.ok(report.kernels.length > 0 && report.models.length > 0);
    for (const row of [...report.kernels, ...report.models]) {
      assert.equal(row.ours.status, "ok", `${row.name}: ${row.ours.note}`);
      assert.ok(row.ours.maxError !== undefined && row.ours.measurement !== undefined);
      assert.match(md, new RegExp(`\\| ${row.name} \\|.*\\| ok \\(max err `));
    }
    for (const p of ["f32", "f16"]) {
      assert.ok(report.models.some((m) => m.name === `vit-tiny-b8-${p}`), `vit-tiny-b8-${p}`);
    }
    // The PyTorch peer: its rows where torch is installed, else the skip note.
    if (report.torch.skipped) {
      assert.match(md, /PyTorch peer skipped: /);
    } else {
      const ok = report.torch.rows.filter((t) => t.status === "ok");
      assert.ok(ok.length > 0, JSON.stringify(report.torch.rows));
      assert.match(md, /\| vit-tiny \| 8 \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
      assert.ok(report.torch.amu.fp32?.status === "ok");
    }
    // The AMU epoch row.
    assert.equal(report.amu.engine?.status, "ok");
    assert.match(md, /\| engine \(WebGPU\) \| \d+ \| ok \(loss rel err /);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("gpu-report.sh without --local refuses a software adapter", async () => {
  const out = await Deno.makeTempDir({ prefix: "gpu-report-" });
  try {
    const r = await runScript([], out);
    // This machine's adapter is llvmpipe (tests run without a GPU): the device form refuses.
    assert.equal(r.code, 3, r.text.slice(-2000));
    assert.match(r.text, /refusing to run: the WebGPU adapter is '.*llvmpipe.*', a software/);
    assert.match(r.text, /--local/);
    let wrote = true;
    try {
      await Deno.stat(join(out, "report.json"));
    } catch {
      wrote = false;
    }
    assert.ok(!wrote, "a refused run must not write a report");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
