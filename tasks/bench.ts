/** `deno task bench [SUITE...] [flags]`: performance benchmarks.
 *
 *   deno task bench amu [--batches 8,256] [--steps N] [--no_torch] ...   AMU training + eval
 *   deno task bench checkpoints --files A.pt,B.pth.tar [--gpu]           checkpoint load
 *   deno task bench [kernel/model suites] [...]                          src/bench harness
 *
 * Task-level suites (whole workloads with their own peers, e.g. AMU-Tuning against PyTorch) live
 * in `tasks/bench/<name>.ts` and are registered in TASK_SUITES below, each with its own flags
 * (`deno task bench amu --help`). Every other suite name and flag goes to the row-based harness
 * in `src/bench/` (kernels and models against onnxruntime / tfjs). */
import { formatHelp, parseFlags } from "../src/util/flags.ts";
import { benchMain } from "../src/bench/cli.ts";
import { runCli } from "./_cli.ts";
import type { BenchSuite } from "./bench/_suite.ts";
import { amuSuite } from "./bench/amu.ts";
import { checkpointsSuite } from "./bench/checkpoints.ts";

const TASK_SUITES: Record<string, BenchSuite> = {
  amu: amuSuite,
  checkpoints: checkpointsSuite,
};

await runCli(async () => {
  const [name, ...rest] = Deno.args;
  const suite = name === undefined ? undefined : TASK_SUITES[name];
  if (!suite) {
    if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
      console.log("Task-level suites (own flags: deno task bench SUITE --help):");
      for (const s of Object.values(TASK_SUITES)) {
        console.log(`  ${s.name.padEnd(10)} ${s.summary}`);
      }
      console.log("");
    }
    return await benchMain(Deno.args);
  }
  const usage = `usage: deno task bench ${suite.name} [flags]\n\n${suite.summary}`;
  const { values, help } = parseFlags(rest, [suite.flags]);
  if (help) {
    console.log(formatHelp(usage, [suite.flags]));
    return 0;
  }
  await suite.run(values);
  return 0;
});
