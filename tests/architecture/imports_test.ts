import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  CHECKED_ROOTS,
  importCycles,
  type ImportGraph,
  importSpecifiers,
  layerViolations,
  readImportGraph,
  referenceViolations,
} from "./import_graph.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));

function graphOf(edges: Record<string, string[]>): ImportGraph {
  return new Map(Object.entries(edges).map(([k, v]) => [k, new Set(v)]));
}

Deno.test("import graph: specifiers of static, type-only, re-export, bare and dynamic imports", () => {
  const source = `import { a } from "./a.ts";
import type { B } from "../b.ts";
import {
  c,
  type D,
} from "./c.ts";
export * from "./e.ts";
export { f } from "./f.ts";
import "./g.ts";
import { parseArgs } from "node:util";
const h = await import("./h.ts");
const s = "not an import: from './x.ts'";`;
  assertEquals(importSpecifiers(source), [
    "./a.ts",
    "../b.ts",
    "./c.ts",
    "./e.ts",
    "./f.ts",
    "./g.ts",
    "./h.ts",
  ]);
});

Deno.test("import graph: the checks catch an upward import, a sibling import and a cycle", () => {
  const graph = graphOf({
    "src/gpu/device.ts": ["src/onnx/plan.ts", "src/gpu/buffers.ts"],
    "src/gpu/buffers.ts": ["src/gpu/device.ts"],
    "src/amu/train.ts": ["src/data/npy.ts", "src/util/errors.ts"],
    "src/onnx/plan.ts": ["src/kernels/matmul.ts"],
    "src/kernels/matmul.ts": ["src/kernels/matmul_ref.ts", "src/kernels/shape.ts"],
    "src/kernels/matmul_ref.ts": ["src/kernels/reduce.ts", "src/kernels/matmul_shape.ts"],
    "src/kernels/reduce_ref.ts": ["src/kernels/shape.ts", "src/util/tensor.ts"],
    "tasks/train.ts": ["src/amu/train.ts", "tests/helpers.ts"],
  });
  assertEquals(layerViolations(graph), [
    "src/amu/train.ts -> src/data/npy.ts",
    "src/gpu/device.ts -> src/onnx/plan.ts",
    "tasks/train.ts -> tests/helpers.ts",
  ]);
  assertEquals(importCycles(graph), [["src/gpu/buffers.ts", "src/gpu/device.ts"]]);
  assertEquals(referenceViolations(graph), [
    "src/kernels/matmul.ts -> src/kernels/matmul_ref.ts (a binding imports a reference)",
    "src/kernels/matmul_ref.ts -> src/kernels/reduce.ts (a reference imports a non-reference)",
  ]);
});

Deno.test("import graph: src, tasks and scripts import downward only, with no cycle", () => {
  const graph = readImportGraph(REPO, CHECKED_ROOTS);
  if (graph.size < 200) throw new Error(`only ${graph.size} files read from ${REPO}`);
  const missing = [...graph.values()].flatMap((t) => [...t]).filter((f) =>
    !graph.has(f) && !f.startsWith("tests/")
  );
  assertEquals(missing, [], "imports of files that do not exist");
  assertEquals(layerViolations(graph), [], "imports that go up or sideways a layer");
  assertEquals(importCycles(graph), [], "import cycles");
});

Deno.test("import graph: kernel references are leaves; bindings import no reference", () => {
  const graph = readImportGraph(REPO, ["src/kernels"]);
  assertEquals(referenceViolations(graph), []);
});
