/** `deno task train`: the AMU-Tuning experiment end to end (tasks/train/): image folders ->
 * features -> training -> results, the bundled demo when no dataset is given, and training from
 * a feature cache with `--features CACHE_DIR` (src/amu). See `--help`. */
import { runCli } from "./_cli.ts";
import { trainMain } from "./train/main.ts";

await runCli((args) => trainMain(args));
