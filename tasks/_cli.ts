/** Shared CLI plumbing for `tasks/*`: expected errors print one line and exit 1. */
import { EngineError } from "../src/gpu/errors.ts";

/** Runs `main`; an EngineError (bad file, bad flag, no adapter) prints `error: message` without a
 * stack and exits 1; anything else is a bug and keeps its stack. */
export async function runCli(main: () => Promise<number | void> | number | void): Promise<void> {
  try {
    const code = await main();
    Deno.exit(typeof code === "number" ? code : 0);
  } catch (e) {
    if (e instanceof EngineError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
