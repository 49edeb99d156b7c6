/** `deno task train`: the AMU-Tuning experiment (see `--help`, and tasks/train/experiment.ts). */
import { runCli } from "../_cli.ts";
import { runExperiment } from "./experiment.ts";
import { experimentHelp } from "./flags.ts";
import { parseExperimentArgs } from "./settings.ts";

/** Runs the command line `argv`; returns the exit status. */
export async function trainMain(argv: readonly string[]): Promise<number> {
  const settings = parseExperimentArgs(argv);
  if (settings === "help") {
    console.log(experimentHelp());
    return 0;
  }
  await runExperiment(settings);
  return 0;
}

if (import.meta.main) await runCli((args) => trainMain(args));
