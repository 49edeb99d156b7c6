/** A small declarative command-line parser shared by the AMU tasks: each flag is a `FlagSpec`
 * (name as the reference's run scripts spell it, type, help, default), specs come in groups that
 * tasks concatenate (training hyper-parameters here; datasets and models add theirs), and the
 * same table produces `--help`. Unknown flags, missing values and malformed numbers are
 * `EngineError`s naming the flag. Accepted forms: `--name value`, `--name=value`, and for
 * booleans `--name` / `--name=true|false`. */
import { EngineError } from "./errors.ts";

export type FlagType = "string" | "number" | "int" | "boolean";

export type FlagValue = string | number | boolean;

export interface FlagSpec {
  /** Flag name without dashes, e.g. "train_epoch". */
  name: string;
  type: FlagType;
  help: string;
  /** Shown in --help; parsing does not fill defaults (configs own them). */
  default?: FlagValue;
  /** Allowed values of a string flag. */
  choices?: readonly string[];
  /** Placeholder in --help (default: the type). */
  metavar?: string;
  /** Lower bound checked on numbers; `exclusiveMin` makes it strict. */
  min?: number;
  exclusiveMin?: boolean;
  max?: number;
}

export interface FlagGroup {
  title: string;
  flags: readonly FlagSpec[];
}

export interface ParsedFlags {
  /** Given flags only, by name. */
  values: Map<string, FlagValue>;
  help: boolean;
}

function findSpec(groups: readonly FlagGroup[], name: string): FlagSpec | undefined {
  for (const g of groups) for (const f of g.flags) if (f.name === name) return f;
  return undefined;
}

function allNames(groups: readonly FlagGroup[]): string[] {
  return groups.flatMap((g) => g.flags.map((f) => f.name));
}

/** Edit distance, to suggest the flag a typo meant. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  }
  return d[a.length][b.length];
}

function convert(spec: FlagSpec, raw: string): FlagValue {
  const where = `--${spec.name}`;
  switch (spec.type) {
    case "string":
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new EngineError(
          `${where}: '${raw}' is not one of ${spec.choices.join(", ")}`,
        );
      }
      return raw;
    case "boolean":
      if (raw === "true" || raw === "1") return true;
      if (raw === "false" || raw === "0") return false;
      throw new EngineError(`${where}: expected true or false, got '${raw}'`);
    case "number":
    case "int": {
      const v = raw.trim() === "" ? NaN : Number(raw);
      if (!Number.isFinite(v)) throw new EngineError(`${where}: expected a number, got '${raw}'`);
      if (spec.type === "int" && !Number.isInteger(v)) {
        throw new EngineError(`${where}: expected an integer, got '${raw}'`);
      }
      if (spec.min !== undefined && (spec.exclusiveMin ? v <= spec.min : v < spec.min)) {
        throw new EngineError(
          `${where}: must be ${spec.exclusiveMin ? ">" : ">="} ${spec.min}, got ${raw}`,
        );
      }
      if (spec.max !== undefined && v > spec.max) {
        throw new EngineError(`${where}: must be <= ${spec.max}, got ${raw}`);
      }
      return v;
    }
  }
}

/** Parses `argv` against the groups' flags. `-h` / `--help` set `help`. */
export function parseFlags(argv: readonly string[], groups: readonly FlagGroup[]): ParsedFlags {
  const values = new Map<string, FlagValue>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--") || arg === "--") {
      throw new EngineError(`unexpected argument '${arg}' (flags look like --name value)`);
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    const spec = findSpec(groups, name);
    if (!spec) {
      const near = allNames(groups).filter((n) => distance(n, name) <= 2);
      throw new EngineError(
        `unknown flag --${name}` + (near.length ? ` (did you mean --${near[0]}?)` : "") +
          "; --help lists the flags",
      );
    }
    if (values.has(name)) throw new EngineError(`--${name} given twice`);
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else if (spec.type === "boolean") raw = "true";
    else {
      if (i + 1 >= argv.length) throw new EngineError(`--${name} needs a value`);
      raw = argv[++i];
    }
    values.set(name, convert(spec, raw));
  }
  return { values, help };
}

/** Help text: usage line, then each group's flags with metavar, help and default. */
export function formatHelp(usage: string, groups: readonly FlagGroup[], footer = ""): string {
  const lines = [usage, ""];
  for (const g of groups) {
    lines.push(`${g.title}:`);
    const heads = g.flags.map((f) => {
      const meta = f.type === "boolean" ? "" : ` ${f.metavar ?? f.type.toUpperCase()}`;
      return `  --${f.name}${meta}`;
    });
    // Align help text after the heads; a head longer than 28 columns gets its own line.
    const width = Math.max(...heads.map((h) => h.length <= 28 ? h.length : 0)) + 2;
    g.flags.forEach((f, i) => {
      const choices = f.choices ? ` (one of: ${f.choices.join(", ")})` : "";
      const dflt = f.default !== undefined ? ` (default: ${f.default})` : "";
      const head = heads[i];
      const text = `${f.help}${choices}${dflt}`;
      if (head.length + 2 > width) lines.push(head, " ".repeat(width) + text);
      else lines.push(head.padEnd(width) + text);
    });
    lines.push("");
  }
  if (footer) lines.push(footer);
  return lines.join("\n").trimEnd();
}
