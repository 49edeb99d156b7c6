/** The byte layout of a shader's `struct Params`, read from the shader's own source, so the host
 * fills uniforms by field name and the WGSL struct is the one source of truth for their layout.
 * Follows WGSL's alignment rules for the uniform address space (scalars 4, vec2 8, vec3/vec4 16,
 * arrays their element's alignment with a stride rounded up to it). */

/** How a 32-bit word is written. */
export type ScalarKind = "u32" | "i32" | "f32";

/** One named member of `struct Params`. */
export interface UniformField {
  readonly name: string;
  /** The WGSL type as written, e.g. `array<vec4<u32>, 2>`. */
  readonly type: string;
  /** Byte offset in the struct. */
  readonly offset: number;
  readonly kind: ScalarKind;
  /** Byte offsets (from the field's start) of its scalar components, in value order: a scalar
   * has one, `vec3<u32>` three, `array<vec4<u32>, 2>` eight. */
  readonly components: readonly number[];
}

export interface UniformLayout {
  readonly shader: string;
  readonly fields: readonly UniformField[];
  /** Struct size in bytes, a multiple of 16 (uniform buffers are bound in 16-byte units). */
  readonly size: number;
}

/** Values by field name: a number for a scalar, numbers for a vector or array (flattened, at
 * most as many as the field holds; missing trailing components are zero). */
export type UniformValues = Readonly<Record<string, number | readonly number[]>>;

/** A layout or packing error: a bug in a binding or a shader, never the user's input. */
export class UniformLayoutError extends Error {
  constructor(shader: string, message: string) {
    super(`shader ${shader}: struct Params: ${message}`);
    this.name = "UniformLayoutError";
  }
}

interface TypeLayout {
  kind: ScalarKind;
  size: number;
  align: number;
  components: number[];
}

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** Splits `a, b<c, d>, e` at top-level commas. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "<") depth++;
    else if (c === ">") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

function typeLayout(shader: string, type: string): TypeLayout {
  const t = type.replace(/\s+/g, "");
  if (t === "u32" || t === "i32" || t === "f32") {
    return { kind: t, size: 4, align: 4, components: [0] };
  }
  const vec = /^vec([234])<(u32|i32|f32)>$/.exec(t);
  if (vec) {
    const n = Number(vec[1]);
    return {
      kind: vec[2] as ScalarKind,
      size: 4 * n,
      align: n === 2 ? 8 : 16,
      components: Array.from({ length: n }, (_, i) => 4 * i),
    };
  }
  const arr = /^array<(.+)>$/.exec(t);
  if (arr) {
    const [element, countText] = splitTopLevel(arr[1]);
    const count = Number(countText);
    if (!Number.isInteger(count) || count < 1) {
      throw new UniformLayoutError(shader, `array '${type}' needs a constant element count`);
    }
    const e = typeLayout(shader, element);
    const stride = roundUp(e.size, e.align);
    if (stride % 16 !== 0) {
      throw new UniformLayoutError(
        shader,
        `array '${type}' has a ${stride}-byte stride; uniform arrays need a multiple of 16`,
      );
    }
    const components: number[] = [];
    for (let i = 0; i < count; i++) for (const c of e.components) components.push(i * stride + c);
    return { kind: e.kind, size: stride * count, align: e.align, components };
  }
  throw new UniformLayoutError(shader, `type '${type}' is not a 32-bit scalar, vector or array`);
}

/** Reads `struct Params { ... }` from WGSL source (comments allowed) into its byte layout. */
export function parseUniformLayout(shader: string, source: string): UniformLayout {
  const withoutComments = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
  const match = /\bstruct\s+Params\s*\{([^}]*)\}/.exec(withoutComments);
  if (!match) throw new UniformLayoutError(shader, "not found");
  const fields: UniformField[] = [];
  let offset = 0;
  let structAlign = 4;
  for (const member of splitTopLevel(match[1])) {
    const m = /^(?:@\w+(?:\([^)]*\))?\s+)*([A-Za-z_]\w*)\s*:\s*(.+)$/s.exec(member);
    if (!m) throw new UniformLayoutError(shader, `cannot read member '${member}'`);
    const [, name, type] = m;
    const t = typeLayout(shader, type);
    offset = roundUp(offset, t.align);
    fields.push({ name, type: type.trim(), offset, kind: t.kind, components: t.components });
    offset += t.size;
    structAlign = Math.max(structAlign, t.align);
  }
  if (fields.length === 0) throw new UniformLayoutError(shader, "has no members");
  return { shader, fields, size: roundUp(roundUp(offset, structAlign), 16) };
}

/** Packs `values` by name into a buffer of `layout.size` bytes. Every field must be given and
 * no other name: a missing or extra field is an error, so host and shader cannot drift apart. */
export function packUniformValues(layout: UniformLayout, values: UniformValues): ArrayBuffer {
  const known = new Set(layout.fields.map((f) => f.name));
  const extra = Object.keys(values).filter((k) => !known.has(k));
  if (extra.length > 0) {
    throw new UniformLayoutError(
      layout.shader,
      `no field named ${extra.map((k) => `'${k}'`).join(", ")} (fields: ${[...known].join(", ")})`,
    );
  }
  const buffer = new ArrayBuffer(layout.size);
  const view = new DataView(buffer);
  for (const field of layout.fields) {
    const value = values[field.name];
    if (value === undefined) {
      throw new UniformLayoutError(layout.shader, `no value given for field '${field.name}'`);
    }
    const list = typeof value === "number" ? [value] : value;
    if (list.length > field.components.length) {
      throw new UniformLayoutError(
        layout.shader,
        `field '${field.name}: ${field.type}' holds ${field.components.length} values, ` +
          `given ${list.length}`,
      );
    }
    if (typeof value === "number" && field.components.length > 1) {
      throw new UniformLayoutError(
        layout.shader,
        `field '${field.name}: ${field.type}' needs a list of values, given one number`,
      );
    }
    list.forEach((v, i) => {
      const at = field.offset + field.components[i];
      if (field.kind === "f32") view.setFloat32(at, v, true);
      else if (field.kind === "i32") view.setInt32(at, v, true);
      else view.setUint32(at, v >>> 0, true);
    });
  }
  return buffer;
}
