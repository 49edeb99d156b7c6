/** ONNX backend conformance runner.
 *
 *   deno task conformance [DIR ...] [--list FILE] [--verbose]
 *
 * Each DIR is a case folder (model.onnx + test_data_set_*) or a folder of case folders. Every
 * data set's outputs are compared like the ONNX reference runner does: dtype and shape exact,
 * then numpy's assert_allclose(rtol=1e-3, atol=1e-7) for floats (NaN equals NaN) and exact
 * equality for integers and bools. Prints a per-operator table and, last, the summary line
 * `N passed, N failed, N unsupported`; exits 1 when any case fails. */
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import onnxProto from "onnx-proto";
import { type CpuTensor } from "../src/util/tensor.ts";
import { createGpu, getGpu, type Gpu } from "../src/gpu/mod.ts";
import { EngineError } from "../src/util/errors.ts";
import { loadModel, type Model } from "../src/onnx/executor.ts";
import { UnsupportedError, UnsupportedOperatorError } from "../src/onnx/graph.ts";
import { type LoadedTensor, onnxTypeName, readTensorFile } from "../src/onnx/tensor_proto.ts";
import { runCli } from "./_cli.ts";

export const RTOL = 1e-3;
export const ATOL = 1e-7;

export interface Case {
  readonly name: string;
  readonly dir: string;
}

export type CaseStatus = "pass" | "fail" | "unsupported";

export interface CaseResult {
  readonly name: string;
  readonly status: CaseStatus;
  /** Distinct op types in the model (for unsupported cases: the unsupported ones). */
  readonly opTypes: readonly string[];
  readonly reason?: string;
  readonly ms: number;
}

function isCaseDir(dir: string): boolean {
  return existsSync(join(dir, "model.onnx"));
}

/** Case folders under `dirs`, optionally restricted to the names in `list` (a name in the list
 * that no folder has becomes a failing case, so a required case cannot silently vanish). */
export function findCases(dirs: readonly string[], list?: readonly string[]): {
  cases: Case[];
  missing: string[];
} {
  const found = new Map<string, Case>();
  for (const d of dirs) {
    const dir = resolve(d);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new EngineError(`not a folder: ${d}`);
    }
    if (isCaseDir(dir)) {
      found.set(basename(dir), { name: basename(dir), dir });
      continue;
    }
    for (const entry of readdirSync(dir).sort()) {
      const sub = join(dir, entry);
      if (isCaseDir(sub)) found.set(entry, { name: entry, dir: sub });
    }
  }
  if (!list) return { cases: [...found.values()], missing: [] };
  const cases: Case[] = [];
  const missing: string[] = [];
  for (const name of list) {
    const c = found.get(name);
    if (c) cases.push(c);
    else missing.push(name);
  }
  return { cases, missing };
}

/** Case names from a list file: one per line; blank lines and `#` comments ignored. */
export function readList(path: string): string[] {
  return Deno.readTextFileSync(path).split("\n").map((l) => l.replace(/#.*/, "").trim())
    .filter((l) => l.length > 0);
}

function numbered(dir: string, prefix: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".pb"))
    .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
    .map((f) => join(dir, f));
}

/** Compares one output; returns why it differs, or undefined when it matches. */
export function compareOutput(
  name: string,
  got: CpuTensor,
  expected: LoadedTensor,
  rtol = RTOL,
  atol = ATOL,
): string | undefined {
  const exp = expected.tensor;
  const expType = onnxTypeName(expected.onnxType);
  if (got.dtype !== expType) return `output '${name}': dtype ${got.dtype}, expected ${expType}`;
  if (got.shape.length !== exp.shape.length || got.shape.some((d, i) => d !== exp.shape[i])) {
    return `output '${name}': shape [${got.shape}], expected [${exp.shape}]`;
  }
  const floats = got.dtype === "float32" || got.dtype === "float16";
  let worst = -1, worstExcess = 0, bad = 0;
  for (let i = 0; i < exp.data.length; i++) {
    const a = got.data[i], e = exp.data[i];
    if (a === e) continue;
    let excess: number;
    if (floats) {
      if (Number.isNaN(a) && Number.isNaN(e)) continue;
      excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
      if (excess <= 0) continue;
      if (Number.isNaN(excess)) excess = Infinity; // NaN vs number, or mismatched infinities
    } else excess = Math.abs(a - e);
    bad++;
    if (worst < 0 || excess > worstExcess) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst < 0) return undefined;
  const a = got.data[worst], e = exp.data[worst];
  return `output '${name}': ${bad}/${exp.data.length} values differ; worst at index ${worst}: ` +
    `got ${a}, expected ${e} (abs err ${Math.abs(a - e)}` +
    (floats ? `, rtol ${rtol}, atol ${atol})` : ")");
}

/** Op types listed in a model file, read without running anything (for the report). */
function fileOpTypes(path: string): string[] {
  try {
    const m = onnxProto.onnx.ModelProto.decode(Deno.readFileSync(path));
    return [...new Set((m.graph?.node ?? []).map((n) => n.opType ?? "?"))];
  } catch {
    return ["(unreadable)"];
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Runs every test data set of one case. Never throws: errors become a failing result. */
export async function runCase(gpu: Gpu, c: Case): Promise<CaseResult> {
  const start = performance.now();
  const modelPath = join(c.dir, "model.onnx");
  const done = (status: CaseStatus, opTypes: readonly string[], reason?: string): CaseResult => ({
    name: c.name,
    status,
    opTypes,
    reason,
    ms: performance.now() - start,
  });
  let model: Model | undefined;
  try {
    model = await loadModel(modelPath, gpu);
  } catch (e) {
    if (e instanceof UnsupportedOperatorError) return done("unsupported", e.opTypes, e.message);
    if (e instanceof UnsupportedError) {
      return done("unsupported", fileOpTypes(modelPath), e.message);
    }
    return done("fail", fileOpTypes(modelPath), `load: ${messageOf(e)}`);
  }
  const opTypes = [...new Set(model.opTypes)];
  try {
    const sets = readdirSync(c.dir).filter((f) => f.startsWith("test_data_set_")).sort();
    if (sets.length === 0) return done("fail", opTypes, "no test_data_set_* folders");
    for (const set of sets) {
      const dir = join(c.dir, set);
      const inputFiles = numbered(dir, "input_");
      const outputFiles = numbered(dir, "output_");
      if (inputFiles.length !== model.inputs.length) {
        return done(
          "fail",
          opTypes,
          `${set}: ${inputFiles.length} input files for ${model.inputs.length} model inputs`,
        );
      }
      if (outputFiles.length !== model.outputs.length) {
        return done(
          "fail",
          opTypes,
          `${set}: ${outputFiles.length} output files for ${model.outputs.length} model outputs`,
        );
      }
      const inputs: Record<string, CpuTensor> = {};
      model.inputs.forEach((decl, i) => (inputs[decl.name] = readTensorFile(inputFiles[i]).tensor));
      const got = await model.run(inputs);
      for (let i = 0; i < outputFiles.length; i++) {
        const name = model.outputs[i].name;
        const why = compareOutput(name, got[name], readTensorFile(outputFiles[i]));
        if (why) return done("fail", opTypes, `${set}: ${why}`);
      }
    }
    gpu.checkHealthy(c.name);
    return done("pass", opTypes);
  } catch (e) {
    if (e instanceof UnsupportedError) return done("unsupported", opTypes, e.message);
    return done("fail", opTypes, messageOf(e));
  } finally {
    model.dispose();
  }
}

/** Runs cases in order on one device (recreated only if it is lost), releasing each case's
 * buffers before the next. `gpu` defaults to the shared device. */
export async function runCases(
  cases: readonly Case[],
  opts: { gpu?: Gpu; onResult?: (r: CaseResult) => void } = {},
): Promise<CaseResult[]> {
  let gpu = opts.gpu ?? await getGpu();
  const results: CaseResult[] = [];
  // A promise an operator forgot to await must fail its case, not end the process.
  let stray: unknown;
  const onStray = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    stray ??= e.reason;
  };
  globalThis.addEventListener("unhandledrejection", onStray);
  try {
    for (const c of cases) {
      stray = undefined;
      let r = await runCase(gpu, c);
      await new Promise((ok) => setTimeout(ok, 0)); // let stray rejections surface
      if (stray !== undefined && r.status !== "fail") {
        r = { ...r, status: "fail", reason: `unhandled rejection: ${messageOf(stray)}` };
      }
      results.push(r);
      opts.onResult?.(r);
      gpu.pool.clear();
      if (r.status === "fail" && /device lost/i.test(r.reason ?? "")) {
        gpu = await createGpu(); // one case must not take the rest of the run down with it
      }
    }
  } finally {
    globalThis.removeEventListener("unhandledrejection", onStray);
  }
  return results;
}

/** Per-operator table: a case counts under every op type of its model (unsupported cases under
 * their unsupported op types only). */
export function formatTable(results: readonly CaseResult[]): string {
  const rows = new Map<string, { pass: number; fail: number; unsupported: number }>();
  for (const r of results) {
    for (const op of r.opTypes) {
      const row = rows.get(op) ?? { pass: 0, fail: 0, unsupported: 0 };
      row[r.status]++;
      rows.set(op, row);
    }
  }
  const names = [...rows.keys()].sort();
  const width = Math.max(8, ...names.map((n) => n.length));
  const lines = [
    `${"operator".padEnd(width)}  ${"pass".padStart(5)}  ${"fail".padStart(5)}  unsupported`,
  ];
  for (const n of names) {
    const r = rows.get(n)!;
    lines.push(
      `${n.padEnd(width)}  ${String(r.pass).padStart(5)}  ${String(r.fail).padStart(5)}  ` +
        String(r.unsupported).padStart(11),
    );
  }
  return lines.join("\n");
}

export function summaryLine(results: readonly CaseResult[]): string {
  const count = (s: CaseStatus) => results.filter((r) => r.status === s).length;
  return `${count("pass")} passed, ${count("fail")} failed, ${count("unsupported")} unsupported`;
}

/** Failing cases with reasons (and, with `unsupported`, unsupported ones too). */
export function formatFailures(results: readonly CaseResult[], unsupported = false): string {
  return results
    .filter((r) => r.status === "fail" || (unsupported && r.status === "unsupported"))
    .map((r) => `${r.status.toUpperCase()} ${r.name}: ${(r.reason ?? "").replace(/\n\s*/g, "; ")}`)
    .join("\n");
}

/** Runs the cases of `dirs` (restricted by a list file) as the CLI does. */
export async function runConformance(
  dirs: readonly string[],
  listFile?: string,
  gpu?: Gpu,
): Promise<CaseResult[]> {
  const { cases, missing } = findCases(dirs, listFile ? readList(listFile) : undefined);
  const results = await runCases(cases, { gpu });
  for (const name of missing) {
    results.push({
      name,
      status: "fail",
      opTypes: ["(missing)"],
      reason: "case folder not found",
      ms: 0,
    });
  }
  return results;
}

async function main(args: string[]): Promise<number> {
  const dirs: string[] = [];
  let listFile: string | undefined;
  let verbose = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--list") listFile = args[++i];
    else if (a === "--verbose" || a === "-v") verbose = true;
    else if (a === "--help" || a === "-h") {
      console.log("usage: deno task conformance [DIR ...] [--list FILE] [--verbose]");
      return 0;
    } else if (a.startsWith("-")) throw new EngineError(`unknown flag ${a}`);
    else dirs.push(a);
  }
  if (dirs.length === 0) {
    // Default: the node/ suite in the shared data folder ($SHARED_DIR, else ../shared).
    const shared = Deno.env.get("SHARED_DIR") ??
      resolve(import.meta.dirname ?? ".", "..", "..", "shared");
    dirs.push(join(shared, "onnx-backend-tests", "node"));
  }
  if (listFile && !existsSync(listFile)) throw new EngineError(`list file not found: ${listFile}`);
  const t0 = performance.now();
  const results = await runConformance(dirs, listFile);
  const failures = formatFailures(results);
  if (verbose && failures) console.log(`${failures}\n`);
  else if (failures) {
    const names = results.filter((r) => r.status === "fail").map((r) => r.name);
    console.log(`failing cases (--verbose for reasons): ${names.join(" ")}\n`);
  }
  console.log(formatTable(results));
  console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  console.log(summaryLine(results));
  return results.some((r) => r.status === "fail") ? 1 : 0;
}

if (import.meta.main) runCli(main);
