/** Shared CLI convention: expected errors (EngineError and subclasses: bad files, bad inputs,
 * unsupported models, missing adapter) print `error: <message>` without a stack and exit 1;
 * anything else is a bug and keeps its stack. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { EngineError } from "../src/util/errors.ts";
import { releaseGpu } from "../src/gpu/mod.ts";

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

type TaskOptions = NonNullable<ParseArgsConfig["options"]>;

/** A task's command line (node:util's parseArgs, strict, `-h`/`--help` added): its values and
 * positionals, or undefined after printing `help` when asked. A bad flag or a count of
 * positionals other than `positionals` is an EngineError that shows the usage. */
export function parseTaskArgs<O extends TaskOptions>(
  help: string,
  options: O,
  positionals: number,
  args: readonly string[] = Deno.args,
) {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...options, help: { type: "boolean", short: "h" } } as O,
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new EngineError(`${(e as Error).message}\n${help}`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(help);
    return undefined;
  }
  if (parsed.positionals.length !== positionals) {
    throw new EngineError(
      `expected ${positionals} argument(s), got ${parsed.positionals.length}\n${help}`,
    );
  }
  return parsed;
}
