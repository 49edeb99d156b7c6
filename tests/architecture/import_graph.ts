/** The project's import graph, read from the source text, and the rules it must keep: layers
 * import downward only (tasks -> amu, data -> models -> onnx -> kernels -> gpu -> util), no
 * file imports itself through others (no cycles, type-only imports included), and in
 * src/kernels a CPU reference is a leaf that shares pure helper modules with its binding. */
import { dirname, join, normalize, relative } from "node:path";

/** Repo-relative file -> repo-relative files it imports (relative specifiers only). */
export type ImportGraph = Map<string, Set<string>>;

/** Lower rank = lower layer. Files may import files of their own layer or of a lower rank;
 * two layers of the same rank (data, amu) may not import each other. */
export const LAYER_RANK: Readonly<Record<string, number>> = {
  "src/util": 0,
  "src/gpu": 1,
  "src/kernels": 2,
  "src/onnx": 3,
  "src/models": 4,
  "src/data": 5,
  "src/amu": 5,
  "src/bench": 6,
  "tasks": 7,
  "scripts": 8,
};

/** The folders whose files are checked (tests may import anything; nothing imports tests). */
export const CHECKED_ROOTS = ["src", "tasks", "scripts"] as const;

const STATIC_IMPORT = /^\s*(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']/gm;
const BARE_IMPORT = /^\s*import\s*["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The relative specifiers a TypeScript source imports (static, side-effect and dynamic). */
export function importSpecifiers(source: string): string[] {
  const found: string[] = [];
  for (const pattern of [STATIC_IMPORT, BARE_IMPORT, DYNAMIC_IMPORT]) {
    for (const m of source.matchAll(pattern)) found.push(m[1]);
  }
  return found.filter((s) => s.startsWith("."));
}

function* tsFiles(dir: string): Generator<string> {
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* tsFiles(path);
    else if (entry.isFile && entry.name.endsWith(".ts")) yield path;
  }
}

/** Reads every .ts file under `roots` (relative to `repo`) into an import graph. */
export function readImportGraph(repo: string, roots: readonly string[]): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const root of roots) {
    for (const path of tsFiles(join(repo, root))) {
      const from = relative(repo, path);
      const targets = new Set<string>();
      for (const spec of importSpecifiers(Deno.readTextFileSync(path))) {
        targets.add(normalize(join(dirname(from), spec)));
      }
      graph.set(from, targets);
    }
  }
  return graph;
}

/** The layer a repo-relative file belongs to (`src/<folder>` or its top folder). */
export function layerOf(file: string): string {
  const parts = file.split("/");
  return parts[0] === "src" ? `src/${parts[1]}` : parts[0];
}

/** "a -> b" for each import that goes up a layer, sideways between layers, or into tests. */
export function layerViolations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [from, targets] of graph) {
    const a = layerOf(from);
    for (const to of targets) {
      const b = layerOf(to);
      if (a === b) continue;
      const ra = LAYER_RANK[a];
      const rb = LAYER_RANK[b];
      if (ra === undefined || rb === undefined || rb >= ra) out.push(`${from} -> ${to}`);
    }
  }
  return out.sort();
}

/** Strongly connected components of more than one file (or a file importing itself). */
export function importCycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)?.has(v)) cycles.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

const KERNELS = "src/kernels/";
const isReference = (f: string) => f.startsWith(KERNELS) && f.endsWith("_ref.ts");
/** Pure modules both a binding and its reference may import (no GPU, no reference). */
const isSharedKernelHelper = (f: string) =>
  f === `${KERNELS}shape.ts` || f === `${KERNELS}broadcast.ts` ||
  (f.startsWith(KERNELS) && f.endsWith("_shape.ts"));

/** In src/kernels: a binding imports no CPU reference (it would run host code the GPU path must
 * not depend on), and a reference imports only other references, the shared pure helpers and
 * src/util (so a reference cannot silently reuse the code it is meant to check). */
export function referenceViolations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [from, targets] of graph) {
    if (!from.startsWith(KERNELS)) continue;
    for (const to of targets) {
      if (isReference(from)) {
        const ok = isReference(to) || isSharedKernelHelper(to) || layerOf(to) === "src/util";
        if (!ok) out.push(`${from} -> ${to} (a reference imports a non-reference)`);
      } else if (isReference(to)) {
        out.push(`${from} -> ${to} (a binding imports a reference)`);
      }
    }
  }
  return out.sort();
}
