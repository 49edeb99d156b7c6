/** `deno task bench checkpoints --files A.pt,B.pth.tar [--gpu]`: how long a checkpoint takes to
 * become engine graphs, and the peak host memory that takes, against the file's size. Each file
 * loads in a fresh process (tasks/bench/checkpoint_load.ts) so peaks do not mix. Full-size
 * random-weight files: `/usr/bin/python3 ../shared/fixtures/generator/checkpoints.py DIR --set
 * full`. */
import { join } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import type { BenchSuite } from "./_suite.ts";
import { seconds, table } from "./_suite.ts";

interface LoadResult {
  path: string;
  bytes: number;
  format: string;
  openMs: number;
  towers: Record<string, { buildMs: number; planMs?: number; parameters: number }>;
  hostPeakMiB: number;
  startMiB: number;
  peakMiB: number;
}

const here = new URL(".", import.meta.url).pathname;

async function loadOnce(path: string, gpu: boolean): Promise<LoadResult> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(here, "checkpoint_load.ts"), path, ...(gpu ? ["--gpu"] : [])],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(r.stdout).trim().split("\n").pop() ?? "";
  if (!r.success) {
    throw new EngineError(`${path}: load failed: ${new TextDecoder().decode(r.stderr).trim()}`);
  }
  return JSON.parse(text);
}

export const checkpointsSuite: BenchSuite = {
  name: "checkpoints",
  summary: "checkpoint files to engine graphs: load time and peak host memory vs file size",
  flags: {
    title: "checkpoints",
    flags: [
      {
        name: "files",
        type: "string",
        metavar: "A,B,...",
        help: "checkpoint files (OpenAI .pt, torch.save, safetensors) to load",
      },
      {
        name: "gpu",
        type: "boolean",
        help: "also create each tower's model and plan it at batch 1 (weights uploaded)",
      },
    ],
  },
  async run(flags) {
    const files = String(flags.get("files") ?? "").split(",").filter(Boolean);
    if (files.length === 0) throw new EngineError("--files A.pt,B.pth.tar is required");
    const rows: string[][] = [];
    for (const f of files) {
      const r = await loadOnce(f, flags.get("gpu") === true);
      const mib = r.bytes / 2 ** 20;
      const build = Object.entries(r.towers).map(([t, v]) => `${t} ${seconds(v.buildMs)}`);
      const plan = Object.entries(r.towers).filter(([, v]) => v.planMs !== undefined)
        .map(([t, v]) => `${t} ${seconds(v.planMs!)}`);
      rows.push([
        f.split("/").pop()!,
        r.format,
        mib.toFixed(0),
        seconds(r.openMs),
        build.join(", "),
        r.hostPeakMiB.toFixed(0),
        ((r.hostPeakMiB - r.startMiB) / mib).toFixed(2),
        plan.join(", ") || "-",
        r.peakMiB.toFixed(0),
      ]);
    }
    console.log(table([
      "file",
      "format",
      "MiB",
      "open",
      "read + build",
      "peak MiB (host)",
      "(peak - start) / file",
      "GPU plan b1",
      "peak MiB (all)",
    ], rows));
  },
};
