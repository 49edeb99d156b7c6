import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { expandIncludes, shaderSource } from "../../src/gpu/pipelines.ts";
import { EngineError } from "../../src/util/errors.ts";

const SHADERS = new URL("../../shaders/", import.meta.url);

/** A reader over in-memory files that counts how often each one is read. */
function memoryReader(files: Record<string, string>) {
  const reads = new Map<string, number>();
  const read = (path: string): string => {
    reads.set(path, (reads.get(path) ?? 0) + 1);
    const text = files[path];
    if (text === undefined) throw new Error(`no such file '${path}'`);
    return text;
  };
  return { read, reads };
}

function engineError(pattern: RegExp, source: string) {
  return (e: unknown) => e instanceof EngineError && e.source === source && pattern.test(e.message);
}

/** Names of the shaders directly under shaders/ (without `.wgsl`). */
function shaderNames(): string[] {
  return [...Deno.readDirSync(SHADERS)]
    .filter((e) => e.isFile && e.name.endsWith(".wgsl"))
    .map((e) => e.name.slice(0, -".wgsl".length))
    .sort();
}

Deno.test("shader include: nested includes expand in place, each file once", () => {
  const { read, reads } = memoryReader({
    "lib/a.wgsl": '//#include "lib/c.wgsl"\nfn a() {}\n',
    "lib/b.wgsl": '  //#include "lib/c.wgsl"  \nfn b() {}\n',
    "lib/c.wgsl": "fn c() {}\n",
  });
  const out = expandIncludes(
    "main.wgsl",
    'fn first() {}\n//#include "lib/a.wgsl"\n//#include "lib/b.wgsl"\n//#include "lib/a.wgsl"\nfn last() {}\n',
    read,
  );
  assertEquals(out, "fn first() {}\nfn c() {}\nfn a() {}\n\nfn b() {}\n\nfn last() {}\n");
  assertEquals(Object.fromEntries(reads), { "lib/a.wgsl": 1, "lib/b.wgsl": 1, "lib/c.wgsl": 1 });
});

Deno.test("shader include: text without directives is returned unchanged", () => {
  const text = '// #include "lib/x.wgsl" (a plain comment)\nlet s = "//#include";\n';
  assertEquals(expandIncludes("plain.wgsl", text, memoryReader({}).read), text);
});

Deno.test("shader include: a missing file names the including shader and the path", () => {
  const { read } = memoryReader({ "lib/a.wgsl": '//#include "lib/gone.wgsl"\n' });
  throws(
    () => expandIncludes("main.wgsl", '//#include "lib/a.wgsl"\n', read),
    engineError(
      /^shaders\/lib\/a\.wgsl: cannot read included "lib\/gone\.wgsl": no such file/,
      "shaders/lib/a.wgsl",
    ),
  );
  throws(
    () => expandIncludes("main.wgsl", '//#include "lib/none.wgsl"\n', read),
    engineError(/cannot read included "lib\/none\.wgsl"/, "shaders/main.wgsl"),
  );
});

Deno.test("shader include: a cycle is an error that shows the chain", () => {
  const { read } = memoryReader({
    "lib/a.wgsl": '//#include "lib/b.wgsl"\n',
    "lib/b.wgsl": '//#include "lib/a.wgsl"\n',
    "lib/self.wgsl": '//#include "lib/self.wgsl"\n',
    "lib/back.wgsl": '//#include "main.wgsl"\n',
  });
  throws(
    () => expandIncludes("main.wgsl", '//#include "lib/a.wgsl"\n', read),
    engineError(
      /include cycle main\.wgsl -> lib\/a\.wgsl -> lib\/b\.wgsl -> lib\/a\.wgsl$/,
      "shaders/lib/b.wgsl",
    ),
  );
  throws(
    () => expandIncludes("main.wgsl", '//#include "lib/self.wgsl"\n', read),
    engineError(/include cycle .*lib\/self\.wgsl -> lib\/self\.wgsl$/, "shaders/lib/self.wgsl"),
  );
  throws(
    () => expandIncludes("main.wgsl", '//#include "lib/back.wgsl"\n', read),
    engineError(
      /include cycle main\.wgsl -> lib\/back\.wgsl -> main\.wgsl$/,
      "shaders/lib/back.wgsl",
    ),
  );
});

Deno.test("shader include: a malformed directive is an error quoting it", () => {
  const { read } = memoryReader({ "lib/a.wgsl": "fn a() {}\n" });
  for (
    const line of [
      "//#include lib/a.wgsl",
      "//#include",
      '//#include "../a.wgsl"',
      '//#include "lib/a"',
    ]
  ) {
    throws(
      () => expandIncludes("main.wgsl", `${line}\n`, read),
      (e: unknown) =>
        e instanceof EngineError && e.source === "shaders/main.wgsl" &&
        e.message.includes(`malformed include '${line}'`),
    );
  }
});

Deno.test("shader include: every shader expands, and helpers from shaders/lib are defined once", () => {
  const names = shaderNames();
  if (names.length < 50) throw new Error(`only ${names.length} shaders found`);
  let includers = 0;
  for (const name of names) {
    const raw = Deno.readTextFileSync(new URL(`${name}.wgsl`, SHADERS));
    const src = shaderSource(name);
    if (/^[ \t]*\/\/#include/m.test(src)) throw new Error(`${name}: unexpanded include`);
    if (src !== raw) includers++;
    const defined = [...src.matchAll(/^fn (\w+)\(/gm)].map((m) => m[1]);
    const twice = defined.filter((f, i) => defined.indexOf(f) !== i);
    assertEquals(twice, [], `${name}: functions defined twice`);
  }
  // The 12 round_f16 users, 4 NaN helpers' users, 4 matmuls, 5 StepState readers (unary,
  // binary and reduce are counted once).
  if (includers < 22) throw new Error(`only ${includers} shaders include a helper`);
  assertEquals(shaderSource("scan").match(/^fn round_f16\(/gm)?.length, 1);
  assertEquals(shaderSource("unary").match(/^fn (is_nan|max_f|min_f|round_f16)\(/gm)?.length, 4);
});

Deno.test("shader include: shaders take round_f16 from lib/f16.wgsl, never a copy of their own", () => {
  const users: string[] = [];
  for (const name of shaderNames()) {
    const raw = Deno.readTextFileSync(new URL(`${name}.wgsl`, SHADERS));
    if (/\bfn\s+round_f16\b/.test(raw)) throw new Error(`shaders/${name}.wgsl defines round_f16`);
    if (/\bround_f16\s*\(/.test(shaderSource(name))) users.push(name);
  }
  if (users.length < 12) throw new Error(`only ${users.length} shaders use round_f16`);
});

Deno.test("shader include: shaders/lib holds no struct Params (it stays in each shader)", () => {
  let files = 0;
  for (const entry of Deno.readDirSync(new URL("lib/", SHADERS))) {
    if (!entry.name.endsWith(".wgsl")) continue;
    files++;
    const src = Deno.readTextFileSync(new URL(`lib/${entry.name}`, SHADERS));
    if (/\bstruct\s+Params\b/.test(src)) throw new Error(`shaders/lib/${entry.name}`);
  }
  if (files === 0) throw new Error("shaders/lib is empty");
});
