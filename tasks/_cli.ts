/** Shared CLI convention: expected errors (EngineError and subclasses: bad files, bad inputs,
 * unsupported models, missing adapter) print `error: <message>` without a stack and exit 1;
 * anything else is a bug and keeps its stack. */
import { EngineError, releaseGpu } from "../src/gpu/mod.ts";

/** Runs `main(args)` and exits with its status (0 when it returns nothing). */
export async function runCli(
  main: (args: string[]) => Promise<number | void> | number | void,
): Promise<never> {
  let code: number;
  try {
    code = (await main(Deno.args)) ?? 0;
  } catch (e) {
    if (e instanceof EngineError) {
      console.error(`error: ${e.message}`);
      code = 1;
    } else {
      console.error(e);
      code = 1;
    }
  }
  await releaseGpu();
  Deno.exit(code);
}
