/** The Slurm runner without a cluster: the batch scripts' #SBATCH lines, array ranges, quoting
 * and commands; submission order and dependencies through fake `sbatch`/`scancel` programs; a
 * refusal cancelling what was submitted; the dry run; a missing sbatch; waitForJobs over a fake
 * `squeue`. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { EngineError } from "../../src/util/errors.ts";
import {
  parseSlurmArgs,
  type SlurmPlan,
  slurmScripts,
  submitSlurm,
  waitForJobs,
} from "../../tasks/sweep/slurm.ts";

function plan(over: Partial<SlurmPlan> = {}): SlurmPlan {
  return {
    sweepDir: "/data/sweeps/ci",
    workDir: "/repo",
    command: [
      "/opt/deno",
      "run",
      "-A",
      "/repo/tasks/sweep.ts",
      "/repo/grid.yaml",
      "--out",
      "/data/sweeps/ci",
    ],
    extractShards: 3,
    cells: 8,
    slurmArgs: ["--partition", "gpu", "--gres=gpu:1", "-t", "2:00:00"],
    name: "ci",
    ...over,
  };
}

/** The #SBATCH lines of a script, which must all come before its first command. */
function sbatchLines(script: string): string[] {
  const lines = script.split("\n");
  const firstCommand = lines.findIndex((l) => l.trim() !== "" && !l.startsWith("#"));
  assert.ok(
    lines.slice(firstCommand).every((l) => !l.startsWith("#SBATCH")),
    "#SBATCH after a command is ignored by sbatch",
  );
  return lines.filter((l) => l.startsWith("#SBATCH ")).map((l) => l.slice(8));
}

Deno.test("slurm scripts: #SBATCH lines, array ranges, logs, user options, stage commands", () => {
  const s = slurmScripts(plan());
  const user = ["--partition gpu", "--gres=gpu:1", "-t 2:00:00"];
  assert.deepEqual(sbatchLines(s.extract), [
    "--job-name=ci-extract",
    "--array=0-2",
    "--output=/data/sweeps/ci/slurm/extract-%A_%a.out",
    "--error=/data/sweeps/ci/slurm/extract-%A_%a.err",
    "--chdir=/repo",
    ...user,
  ]);
  assert.deepEqual(sbatchLines(s.cells), [
    "--job-name=ci-cells",
    "--array=0-7",
    "--kill-on-invalid-dep=yes",
    "--output=/data/sweeps/ci/slurm/cell-%A_%a.out",
    "--error=/data/sweeps/ci/slurm/cell-%A_%a.err",
    "--chdir=/repo",
    ...user,
  ]);
  assert.deepEqual(sbatchLines(s.report), [
    "--job-name=ci-report",
    "--kill-on-invalid-dep=yes",
    "--output=/data/sweeps/ci/slurm/report-%j.out",
    "--error=/data/sweeps/ci/slurm/report-%j.err",
    "--chdir=/repo",
    ...user,
  ]);
  const prefix = "exec /opt/deno run -A /repo/tasks/sweep.ts /repo/grid.yaml --out /data/sweeps/ci";
  assert.match(s.extract, /^#!\/bin\/bash\n/);
  assert.ok(s.extract.includes(`\nset -euo pipefail\ncd /repo\n`));
  assert.ok(s.extract.endsWith(`${prefix} --stage extract --shard "\${SLURM_ARRAY_TASK_ID}/3"\n`));
  assert.ok(s.cells.endsWith(`${prefix} --stage cell --cell "\${SLURM_ARRAY_TASK_ID}"\n`));
  assert.ok(s.report.endsWith(`${prefix} --stage report\n`));
  assert.match(s.cells, /afterok:<extraction job>/, "the dependency is said in a comment");
  assert.match(s.report, /afterany:<cells job>/);
  // One shard and one cell are still arrays, so the stage commands read the task id.
  const one = slurmScripts(plan({ extractShards: 1, cells: 1, slurmArgs: [] }));
  assert.ok(sbatchLines(one.extract).includes("--array=0-0"));
  assert.ok(sbatchLines(one.cells).includes("--array=0-0"));
  assert.ok(one.extract.includes(`--shard "\${SLURM_ARRAY_TASK_ID}/1"`));
});

Deno.test("slurm scripts: paths with spaces, quotes and % are quoted for #SBATCH and for bash", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const work = join(dir, "my repo");
    const sweep = join(dir, "sweeps 100%", "it's");
    await Deno.mkdir(work);
    // A stand-in for deno that prints its argv one per line.
    const prog = join(dir, "bin dir", "print args");
    await Deno.mkdir(join(dir, "bin dir"));
    await Deno.writeTextFile(prog, '#!/bin/bash\nprintf "%s\\n" "$PWD" "$@"\n', { mode: 0o755 });
    const s = slurmScripts(
      plan({
        sweepDir: sweep,
        workDir: work,
        command: [prog, "a b", `q"uote`, "$HOME", "--out", sweep],
        slurmArgs: ["--comment", "two words # not a comment"],
      }),
    );
    const lines = sbatchLines(s.extract);
    // sbatch strips the quotes (and ends a line at an unquoted #); % in the path is doubled.
    assert.ok(
      lines.includes(`--output="${dir}/sweeps 100%%/it's/slurm/extract-%A_%a.out"`),
      lines.join("\n"),
    );
    assert.ok(lines.includes(`--chdir="${work}"`));
    assert.ok(lines.includes(`--comment "two words # not a comment"`));
    const script = join(dir, "extract.sh");
    await Deno.writeTextFile(script, s.extract);
    const r = await new Deno.Command("bash", {
      args: [script],
      env: { SLURM_ARRAY_TASK_ID: "2" },
      stdout: "piped",
    }).output();
    assert.equal(r.code, 0);
    assert.deepEqual(new TextDecoder().decode(r.stdout).trimEnd().split("\n"), [
      work,
      "a b",
      `q"uote`,
      "$HOME",
      "--out",
      sweep,
      "--stage",
      "extract",
      "--shard",
      "2/3",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("slurm scripts: bad plans and --slurm-args are one clear error", () => {
  const bad = (over: Partial<SlurmPlan>, re: RegExp) =>
    assert.throws(
      () => slurmScripts(plan(over)),
      (e) => e instanceof EngineError && re.test(e.message),
    );
  bad({ slurmArgs: ["--array=0-3"] }, /--slurm-args: --array=0-3 is set by the sweep itself/);
  bad({ slurmArgs: ["-d", "afterok:1"] }, /--slurm-args: -d is set by the sweep itself/);
  bad({ slurmArgs: ["--output", "x"] }, /--output is set by the sweep/);
  bad({ slurmArgs: ["--wait"] }, /--wait is set by the sweep/);
  bad({ slurmArgs: ["gpu"] }, /--slurm-args: 'gpu' is not an sbatch option/);
  bad({ sweepDir: "rel/dir" }, /sweep folder must be absolute, got rel\/dir/);
  bad({ command: ["deno", "run"] }, /absolute program path/);
  bad({ cells: 0 }, /cells must be a positive integer, got 0/);
  bad({ extractShards: 1.5 }, /extraction shards must be a positive integer, got 1.5/);
  bad({ name: "two words" }, /job name 'two words' must be one plain word/);
  bad({ sweepDir: "/a\nb" }, /sweep folder contains a line break/);
});

Deno.test("slurm: --slurm-args text splits as a shell would", () => {
  assert.deepEqual(parseSlurmArgs("  --partition gpu  --gres=gpu:1 -t 1:00:00 "), [
    "--partition",
    "gpu",
    "--gres=gpu:1",
    "-t",
    "1:00:00",
  ]);
  assert.deepEqual(parseSlurmArgs(`--comment 'two words' --x="a \\"b\\"" c\\ d ''`), [
    "--comment",
    "two words",
    `--x=a "b"`,
    "c d",
    "",
  ]);
  assert.deepEqual(parseSlurmArgs(""), []);
  assert.throws(
    () => parseSlurmArgs("--comment 'open"),
    (e) => e instanceof EngineError && /--slurm-args: unterminated ' quote/.test(e.message),
  );
});

/** Fake sbatch/scancel/squeue in a temp bin folder: sbatch records its argv, answers ids 101,
 * 102, ... and refuses call number `refuseAt` as sbatch does; scancel records its argv. */
async function withFakeSlurm(
  refuseAt: number,
  fn: (bin: string, calls: () => string[], cancels: () => string[]) => Promise<void>,
): Promise<void> {
  const bin = await Deno.makeTempDir();
  const path = Deno.env.get("PATH") ?? "";
  try {
    await Deno.writeTextFile(
      join(bin, "sbatch"),
      `#!/bin/bash
d="$(dirname "$0")"
n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$d/count"
printf '%s\\n' "$*" >> "$d/sbatch.calls"
if [ "$n" = ${refuseAt} ]; then
  echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2
  exit 1
fi
if [ "$n" = 3 ]; then echo "$((100 + n));cluster"; else echo "$((100 + n))"; fi
`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(
      join(bin, "scancel"),
      `#!/bin/bash\nprintf '%s\\n' "$*" >> "$(dirname "$0")/scancel.calls"\n`,
      { mode: 0o755 },
    );
    const read = (f: string) => () => {
      try {
        return Deno.readTextFileSync(join(bin, f)).trimEnd().split("\n");
      } catch {
        return [];
      }
    };
    Deno.env.set("PATH", `${bin}:${path}`);
    await fn(bin, read("sbatch.calls"), read("scancel.calls"));
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(bin, { recursive: true });
  }
}

Deno.test("slurm submit: three jobs in order, afterok then afterany, scripts written, ids returned", async () => {
  await withFakeSlurm(0, async (_bin, calls, cancels) => {
    const dir = await Deno.makeTempDir();
    try {
      const log: string[] = [];
      const p = plan({ sweepDir: join(dir, "sweep one"), workDir: dir });
      const ids = await submitSlurm(p, { log: (l) => log.push(l) });
      assert.deepEqual(ids, { extract: "101", cells: "102", report: "103" });
      const s = join(dir, "sweep one", "slurm");
      assert.deepEqual(calls(), [
        `--parsable ${s}/extract.sh`,
        `--parsable --dependency=afterok:101 ${s}/cells.sh`,
        `--parsable --dependency=afterany:102 ${s}/report.sh`,
      ]);
      assert.deepEqual(cancels(), []);
      const scripts = slurmScripts(p);
      for (const stage of ["extract", "cells", "report"] as const) {
        assert.equal(await Deno.readTextFile(join(s, `${stage}.sh`)), scripts[stage]);
      }
      assert.match(log.join("\n"), /submitted the cells job 102/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("slurm submit: a refusal is sbatch's message and the script, and cancels what was submitted", async () => {
  for (const refuseAt of [2, 3]) {
    await withFakeSlurm(refuseAt, async (_bin, calls, cancels) => {
      const dir = await Deno.makeTempDir();
      try {
        const stage = refuseAt === 2 ? "cells" : "report";
        await assert.rejects(
          submitSlurm(plan({ sweepDir: dir, workDir: dir }), { log: () => {} }),
          (e) =>
            e instanceof EngineError &&
            e.message.includes(`sbatch refused the ${stage} job (${dir}/slurm/${stage}.sh)`) &&
            e.message.includes("Invalid partition name specified") &&
            e.message.includes(
              `cancelled the job(s) already submitted: ${refuseAt === 2 ? "101" : "101, 102"}`,
            ),
        );
        assert.equal(calls().length, refuseAt, "nothing submitted after the refusal");
        assert.deepEqual(cancels(), [refuseAt === 2 ? "101" : "101 102"]);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
  // The first job refused: nothing to cancel.
  await withFakeSlurm(1, async (_bin, calls, cancels) => {
    const dir = await Deno.makeTempDir();
    try {
      await assert.rejects(
        submitSlurm(plan({ sweepDir: dir, workDir: dir }), { log: () => {} }),
        (e) =>
          e instanceof EngineError &&
          /^sbatch refused the extraction job \(.*extract\.sh\): sbatch: error: .*specified$/.test(
            e.message,
          ),
      );
      assert.equal(calls().length, 1);
      assert.deepEqual(cancels(), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("slurm submit: --dry-run prints the scripts and the sbatch commands, writes and submits nothing", async () => {
  await withFakeSlurm(0, async (_bin, calls) => {
    const dir = await Deno.makeTempDir();
    try {
      const log: string[] = [];
      const p = plan({ sweepDir: join(dir, "sweep"), workDir: dir });
      const ids = await submitSlurm(p, { dryRun: true, log: (l) => log.push(l) });
      assert.equal(ids, undefined);
      assert.deepEqual(calls(), []);
      assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
      const text = log.join("\n") + "\n";
      const s = slurmScripts(p);
      for (const script of [s.extract, s.cells, s.report]) assert.ok(text.includes(script));
      assert.ok(
        text.includes(`# dry run: would submit: sbatch --parsable ${dir}/sweep/slurm/extract.sh`),
      );
      assert.ok(
        text.includes(
          `sbatch --parsable '--dependency=afterok:<extract job id>' ${dir}/sweep/slurm/cells.sh`,
        ),
      );
      assert.ok(
        text.includes(`'--dependency=afterany:<cells job id>' ${dir}/sweep/slurm/report.sh`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("slurm submit: no sbatch on PATH says so and names --runner local", async () => {
  const empty = await Deno.makeTempDir();
  const path = Deno.env.get("PATH") ?? "";
  try {
    Deno.env.set("PATH", empty);
    await assert.rejects(
      submitSlurm(plan({ sweepDir: join(empty, "s"), workDir: empty }), { log: () => {} }),
      (e) =>
        e instanceof EngineError &&
        /^Slurm's sbatch was not found \(not on PATH\).*--runner local/.test(e.message),
    );
    await assert.rejects(
      submitSlurm(plan({ sweepDir: join(empty, "s"), workDir: empty }), {
        log: () => {},
        sbatch: "/nowhere/sbatch",
      }),
      (e) =>
        e instanceof EngineError && /sbatch was not found \(\/nowhere\/sbatch\)/.test(e.message),
    );
    assert.deepEqual([...Deno.readDirSync(empty)], [], "nothing written");
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("slurm wait: final states per array task from squeue; vanished jobs are UNKNOWN", async () => {
  await withFakeSlurm(0, async (bin) => {
    // Poll 1: running; poll 2: all final but job 9, never listed.
    await Deno.writeTextFile(
      join(bin, "squeue"),
      `#!/bin/bash
d="$(dirname "$0")"
n=$(( $(cat "$d/polls" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$d/polls"
printf '%s\\n' "$*" > "$d/squeue.args"
if [ "$n" = 1 ]; then
  printf '5_0|COMPLETED\\n5_1|RUNNING\\n6|PENDING\\n77|RUNNING\\n'
else
  printf '5_0|COMPLETED\\n5_1|FAILED\\n6|COMPLETED\\n'
fi
`,
      { mode: 0o755 },
    );
    const log: string[] = [];
    const states = await waitForJobs(["5", "6", "9"], { log: (l) => log.push(l), pollMs: 10 });
    assert.deepEqual(
      Object.fromEntries(states),
      { "5_0": "COMPLETED", "5_1": "FAILED", "6": "COMPLETED", "9": "UNKNOWN" },
    );
    assert.equal(
      Deno.readTextFileSync(join(bin, "squeue.args")).trim(),
      "-h -r -t all -j 5,6,9 -o %i|%T",
    );
    assert.deepEqual(log, [
      "slurm: job 5: 1 COMPLETED, 1 RUNNING; job 6: 1 PENDING; job 9: 1 UNKNOWN",
      "slurm: job 5: 1 COMPLETED, 1 FAILED; job 6: 1 COMPLETED; job 9: 1 UNKNOWN",
    ]);
    // Still running at the deadline: an error with the last counts.
    await Deno.writeTextFile(join(bin, "squeue"), "#!/bin/bash\necho '5|RUNNING'\n", {
      mode: 0o755,
    });
    await assert.rejects(
      waitForJobs(["5"], { log: () => {}, pollMs: 10, timeoutMs: 50 }),
      (e) =>
        e instanceof EngineError &&
        /^timed out after .* waiting for Slurm jobs: job 5: 1 RUNNING$/.test(e.message),
    );
  });
});
