/** End to end through the sweep CLI: the same small grid (2 shots x 2 seeds x 2 methods on a
 * generated image folder) run locally and on a real single-node Slurm cluster (`--runner slurm
 * --wait`) gives the same results.csv, numbers identical. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { writeDemoImageFolder } from "../../src/data/demo_data.ts";
import { runTask, sharedPath } from "../helpers.ts";
import { withSlurmCluster } from "./slurm_cluster.ts";

/** Columns that may differ between two runs of the same grid (wall time, dates, folders). */
const VOLATILE = /time|seconds|duration|elapsed|date|_s$|_ms$/i;

/** results.csv as sorted rows of its stable columns, with the sweep folder written `<out>`, and
 * how many rows are cells (a numeric seed; the others are means over seeds). */
function stableRows(sweepDir: string): { header: string[]; rows: string[]; cells: number } {
  const text = Deno.readTextFileSync(join(sweepDir, "results.csv")).replaceAll(sweepDir, "<out>");
  const [head, ...lines] = text.trimEnd().split("\n");
  const header = splitCsv(head);
  const keep = header.map((h) => !VOLATILE.test(h));
  const fields = lines.map(splitCsv);
  const seed = header.indexOf("seed");
  const cells = fields.filter((f) => seed < 0 || /^\d+$/.test(f[seed])).length;
  // Quoted fields with commas stay whole: only their place among the stable columns matters.
  const rows = fields.map((f) => f.filter((_, i) => keep[i]).join(",")).sort();
  return { header, rows, cells };
}

function splitCsv(line: string): string[] {
  const out: string[] = [];
  let cur = "", quoted = false;
  for (const c of line) {
    if (c === '"') quoted = !quoted;
    if (c === "," && !quoted) {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

Deno.test("sweep: --runner slurm --wait gives the local runner's results.csv", async () => {
  const visual = sharedPath("fixtures", "clip_vit_tiny", "clip_vit_tiny.opset14.onnx");
  const text = sharedPath(
    "fixtures",
    "clip_text_fullvocab_tiny",
    "clip_text_fullvocab_tiny.opset14.onnx",
  );
  const aux = sharedPath("fixtures", "aux_resnet_tiny", "aux_resnet_tiny.opset14.onnx");
  const bpe = sharedPath("clip", "bpe_simple_vocab_16e6.txt.gz");
  if (!visual || !text || !aux || !bpe) return;
  const root = await Deno.makeTempDir({ prefix: "slurm-sweep-" });
  try {
    const images = writeDemoImageFolder(join(root, "images"), {
      trainPerClass: 3,
      testPerClass: 2,
      size: 32,
      seed: 1,
    });
    const grid = join(root, "grid.yaml");
    await Deno.writeTextFile(
      grid,
      stringify({
        name: "ci",
        datasets: [{ name: "imagefolder", root_path: images }],
        shots: [1, 2],
        seeds: [1, 2],
        shards: 2, // two extraction array tasks under Slurm
        methods: ["zero-shot", "tip-adapter"],
        flags: { clip_visual: visual, clip_text: text, aux_model: aux, bpe, tune: "off" },
      }),
    );
    const local = join(root, "A");
    const a = await runTask("sweep", [grid, "--out", local]);
    assert.equal(a.code, 0, `local sweep failed:\n${a.stdout}\n${a.stderr}`);
    const slurm = join(root, "B");
    const b = await withSlurmCluster(() =>
      runTask("sweep", [grid, "--out", slurm, "--runner", "slurm", "--wait"])
    );
    if (!b) return; // no Slurm here: skipped with a message
    const logs = (() => {
      try {
        return [...Deno.readDirSync(join(slurm, "slurm"))]
          .filter((e) => e.name.endsWith(".err"))
          .map((e) => `${e.name}: ${Deno.readTextFileSync(join(slurm, "slurm", e.name)).trim()}`)
          .join("\n");
      } catch {
        return "(no slurm/ folder)";
      }
    })();
    assert.equal(b.code, 0, `slurm sweep failed:\n${b.stdout}\n${b.stderr}\n${logs}`);
    for (const dir of [local, slurm]) {
      for (const f of ["results.csv", "results.md", "results.svg"]) {
        assert.ok((await Deno.stat(join(dir, f))).isFile, `${dir}/${f}`);
      }
    }
    for (const s of ["extract.sh", "cells.sh", "report.sh"]) {
      assert.ok((await Deno.stat(join(slurm, "slurm", s))).isFile, s);
    }
    const ra = stableRows(local), rb = stableRows(slurm);
    assert.deepEqual(rb.header, ra.header);
    assert.equal(ra.cells, 8, "2 shots x 2 seeds x 2 methods");
    assert.deepEqual(rb.rows, ra.rows);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
