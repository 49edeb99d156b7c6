import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  packUniformValues,
  parseUniformLayout,
  UniformLayoutError,
} from "../../src/gpu/uniform_layout.ts";
import { packUniforms, uniformLayout } from "../../src/gpu/uniforms.ts";

const SHADERS = new URL("../../shaders/", import.meta.url);

Deno.test("uniform layout: WGSL alignment of scalars, vec2/vec3/vec4 and arrays", () => {
  const layout = parseUniformLayout(
    "t",
    `// a comment with struct Params { nope: u32 }
    struct Other { x: f32 }
    struct Params {
      a: u32, // trailing comment
      b: vec2<f32>,
      /* block */ c: vec3<i32>,
      d: f32,
      e: array<vec4<u32>, 2>,
      f: array<array<vec4<u32>, 2>, 3>,
      g: i32,
    }`,
  );
  const at = Object.fromEntries(layout.fields.map((f) => [f.name, f.offset]));
  assertEquals(at, { a: 0, b: 8, c: 16, d: 28, e: 32, f: 64, g: 160 });
  assertEquals(layout.size, 176);
  assertEquals(layout.fields.find((f) => f.name === "c")!.components, [0, 4, 8]);
  assertEquals(layout.fields.find((f) => f.name === "f")!.components.length, 24);
});

Deno.test("uniform layout: values are written by name with their field's type", () => {
  const layout = parseUniformLayout(
    "t",
    "struct Params { n: u32, k: i32, eps: f32, shape: array<vec4<u32>, 2> }",
  );
  const bytes = packUniformValues(layout, { eps: 0.5, k: -3, n: 7, shape: [1, 2, 3, 4, 5] });
  const view = new DataView(bytes);
  assertEquals(bytes.byteLength, 48);
  assertEquals(view.getUint32(0, true), 7);
  assertEquals(view.getInt32(4, true), -3);
  assertEquals(view.getFloat32(8, true), 0.5);
  const shape = Array.from({ length: 8 }, (_, i) => view.getUint32(16 + 4 * i, true));
  assertEquals(shape, [1, 2, 3, 4, 5, 0, 0, 0]);
});

Deno.test("uniform layout: a missing, extra or oversized field is an error naming it", () => {
  const layout = parseUniformLayout("demo", "struct Params { rows: u32, size: vec4<u32> }");
  throws(
    () => packUniformValues(layout, { rows: 1 }),
    (e: unknown) =>
      e instanceof UniformLayoutError &&
      e.message === "shader demo: struct Params: no value given for field 'size'",
  );
  throws(
    () => packUniformValues(layout, { rows: 1, size: [1], colums: 2 }),
    /no field named 'colums' \(fields: rows, size\)/,
  );
  throws(
    () => packUniformValues(layout, { rows: 1, size: [1, 2, 3, 4, 5] }),
    /field 'size: vec4<u32>' holds 4 values, given 5/,
  );
  throws(() => packUniformValues(layout, { rows: [1, 2], size: [1] }), /holds 1 values, given 2/);
  throws(() => packUniformValues(layout, { rows: 1, size: 3 }), /needs a list of values/);
  throws(() => parseUniformLayout("x", "struct Params { m: mat4x4<f32> }"), /not a 32-bit scalar/);
  throws(() => parseUniformLayout("x", "struct Params { m: array<u32, 4> }"), /multiple of 16/);
  throws(() => parseUniformLayout("x", "fn main() {}"), /struct Params: not found/);
});

Deno.test("uniform layout: every shader's struct Params parses, and packUniforms uses it", () => {
  let parsed = 0;
  for (const entry of Deno.readDirSync(SHADERS)) {
    if (!entry.name.endsWith(".wgsl")) continue;
    const name = entry.name.slice(0, -".wgsl".length);
    const source = Deno.readTextFileSync(new URL(entry.name, SHADERS));
    if (!/\bstruct\s+Params\b/.test(source)) continue;
    const layout = uniformLayout(name);
    if (layout.size % 16 !== 0 || layout.fields.length === 0) throw new Error(name);
    parsed++;
  }
  if (parsed < 40) throw new Error(`only ${parsed} shaders have struct Params`);
  // layernorm: rows, n, scale_count, bias_count, epsilon (f32), write_stats.
  const bytes = packUniforms("layernorm", {
    rows: 3,
    n: 4,
    scale_count: 4,
    bias_count: 0,
    epsilon: 1e-5,
    write_stats: 2,
  });
  const view = new DataView(bytes);
  assertEquals([view.getUint32(0, true), view.getUint32(20, true)], [3, 2]);
  assertEquals(view.getFloat32(16, true), Math.fround(1e-5));
});
