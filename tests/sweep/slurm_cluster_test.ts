/** submitSlurm and waitForJobs on a real single-node Slurm cluster, with a bash stand-in for the
 * sweep's stage commands that leaves a mark per stage and array task: array indices, the order
 * the dependencies impose, the report running after a failed cell (afterany), cells cancelled
 * rather than left pending when extraction fails, logs under the sweep folder (whose path has a
 * space and a %), and sbatch's own refusal message. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import { type SlurmPlan, submitSlurm, waitForJobs } from "../../tasks/sweep/slurm.ts";
import { withSlurmCluster } from "./slurm_cluster.ts";

/** Called as `stand-in --out DIR --stage extract --shard I/N | --stage cell --cell K |
 * --stage report`. Each stage writes marks/<stage>-<index> holding what it saw when it started:
 * the marks of the stage it depends on. Cell FAIL_CELL and extraction shard FAIL_SHARD fail. */
const STAND_IN = `#!/bin/bash
set -euo pipefail
out="$2"; stage="$4"; marks="$out/marks"
mkdir -p "$marks"
case "$stage" in
  extract)
    i="\${6%/*}"
    echo "extract shard $6 task $SLURM_ARRAY_TASK_ID in $PWD"
    echo "$6" > "$marks/extract-$i"
    if [ "$i" = "\${FAIL_SHARD:-none}" ]; then echo "shard $i fails" >&2; exit 2; fi ;;
  cell)
    (cd "$marks" && ls extract-* | tr '\\n' ' ') > "$marks/cell-$6"
    if [ "$6" = "\${FAIL_CELL:-none}" ]; then echo "cell $6 fails" >&2; exit 3; fi ;;
  report)
    (cd "$marks" && { ls cell-* 2>/dev/null || true; } | tr '\\n' ' ') > "$marks/report" ;;
esac
`;

function marks(sweepDir: string): Record<string, string> {
  const dir = join(sweepDir, "marks");
  return Object.fromEntries(
    [...Deno.readDirSync(dir)].map((
      e,
    ) => [e.name, Deno.readTextFileSync(join(dir, e.name)).trim()]),
  );
}

Deno.test("slurm cluster: extraction array, then cells array, then the report after a failed cell", async () => {
  const root = await Deno.makeTempDir({ prefix: "slurm-plan-" });
  try {
    const standIn = join(root, "stand in.sh");
    await Deno.writeTextFile(standIn, STAND_IN, { mode: 0o755 });
    const plan = (name: string): SlurmPlan => {
      const sweepDir = join(root, `sweep ${name} 100%`);
      return {
        sweepDir,
        workDir: root,
        command: ["/bin/bash", standIn, "--out", sweepDir],
        extractShards: 2,
        cells: 3,
        slurmArgs: [
          "--time",
          "5",
          "--export=ALL,FAIL_CELL=1,FAIL_SHARD=" + (name === "b" ? 1 : "none"),
        ],
        name: `t${name}`,
      };
    };
    await withSlurmCluster(async () => {
      const log: string[] = [];
      const say = (l: string) => log.push(l);
      // Plan a: cell 1 fails; the report still runs, after every cell has ended.
      const a = plan("a");
      const ids = await submitSlurm(a, { log: say });
      assert.ok(ids);
      // Plan b, queued behind a: extraction shard 1 fails, so the cells can never run.
      const b = plan("b");
      const idsB = await submitSlurm(b, { log: say });
      assert.ok(idsB);
      const all = [ids.extract, ids.cells, ids.report, idsB.extract, idsB.cells, idsB.report];
      const states = await waitForJobs(all, { log: say, pollMs: 250, timeoutMs: 60_000 });
      const e = ids.extract, c = ids.cells, eb = idsB.extract, cb = idsB.cells;
      assert.deepEqual(Object.fromEntries(states), {
        [`${e}_0`]: "COMPLETED",
        [`${e}_1`]: "COMPLETED",
        [`${c}_0`]: "COMPLETED",
        [`${c}_1`]: "FAILED",
        [`${c}_2`]: "COMPLETED",
        [ids.report]: "COMPLETED",
        [`${eb}_0`]: "COMPLETED",
        [`${eb}_1`]: "FAILED",
        [`${cb}_0`]: "CANCELLED",
        [`${cb}_1`]: "CANCELLED",
        [`${cb}_2`]: "CANCELLED",
        [idsB.report]: "COMPLETED",
      }, log.join("\n"));
      // Every cell saw both shards' marks (afterok); the report saw every cell's (afterany).
      assert.deepEqual(marks(a.sweepDir), {
        "extract-0": "0/2",
        "extract-1": "1/2",
        "cell-0": "extract-0 extract-1",
        "cell-1": "extract-0 extract-1",
        "cell-2": "extract-0 extract-1",
        "report": "cell-0 cell-1 cell-2",
      });
      assert.deepEqual(marks(b.sweepDir), { "extract-0": "0/2", "extract-1": "1/2", "report": "" });
      // Logs by job and array index under <sweepDir>/slurm/, next to the scripts.
      const logs = [...Deno.readDirSync(join(a.sweepDir, "slurm"))].map((f) => f.name).sort();
      assert.deepEqual(logs, [
        `cell-${c}_0.err`,
        `cell-${c}_0.out`,
        `cell-${c}_1.err`,
        `cell-${c}_1.out`,
        `cell-${c}_2.err`,
        `cell-${c}_2.out`,
        "cells.sh",
        `extract-${e}_0.err`,
        `extract-${e}_0.out`,
        `extract-${e}_1.err`,
        `extract-${e}_1.out`,
        "extract.sh",
        `report-${ids.report}.err`,
        `report-${ids.report}.out`,
        "report.sh",
      ]);
      const slurmDir = join(a.sweepDir, "slurm");
      assert.equal(
        Deno.readTextFileSync(join(slurmDir, `extract-${e}_1.out`)).trim(),
        `extract shard 1/2 task 1 in ${root}`,
      );
      assert.equal(Deno.readTextFileSync(join(slurmDir, `cell-${c}_1.err`)).trim(), "cell 1 fails");

      // sbatch's own refusal, with the script it refused.
      await assert.rejects(
        submitSlurm({ ...plan("c"), slurmArgs: ["--partition", "nope"] }, { log: say }),
        (err) =>
          err instanceof EngineError &&
          err.message.includes(
            `sbatch refused the extraction job (${plan("c").sweepDir}/slurm/extract.sh)`,
          ) &&
          /invalid partition/i.test(err.message),
      );
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
