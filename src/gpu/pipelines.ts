import { EngineError } from "../util/errors.ts";

const SHADER_DIR = new URL("../../shaders/", import.meta.url);
const sourceCache = new Map<string, string>();

/** Reads `shaders/<name>.wgsl` once, its `//#include` lines expanded (see `expandIncludes`). */
export function shaderSource(name: string): string {
  let src = sourceCache.get(name);
  if (src === undefined) {
    const url = new URL(`${name}.wgsl`, SHADER_DIR);
    try {
      src = Deno.readTextFileSync(url);
    } catch (e) {
      throw new EngineError(`cannot read shader ${url.pathname}: ${(e as Error).message}`);
    }
    src = expandIncludes(
      `${name}.wgsl`,
      src,
      (path) => Deno.readTextFileSync(new URL(path, SHADER_DIR)),
    );
    sourceCache.set(name, src);
  }
  return src;
}

// A whole line `//#include "lib/<file>.wgsl"`: a WGSL comment, so a shader stays valid WGSL for
// tools that read it unexpanded.
const INCLUDE_LINE = /^[ \t]*\/\/#include\b(.*)$/gm;
const INCLUDE_PATH = /^[ \t]+"((?:[A-Za-z0-9_]+\/)*[A-Za-z0-9_]+\.wgsl)"[ \t]*$/;

/** Replaces each `//#include "<path>"` line of `text` (the file `path` under shaders/) by the
 * included file, itself expanded. Include paths are relative to shaders/, whoever includes them.
 * Each file is included once: a later include of it expands to nothing, as WGSL declarations may
 * come in any order. `read(path)` gives a file's text; an unreadable file, a malformed directive
 * and an include cycle are EngineErrors naming the including file. */
export function expandIncludes(
  path: string,
  text: string,
  read: (path: string) => string,
): string {
  const included = new Set<string>([path]);
  const expand = (file: string, src: string, chain: readonly string[]): string =>
    src.replace(INCLUDE_LINE, (line: string, rest: string) => {
      const source = `shaders/${file}`;
      const target = INCLUDE_PATH.exec(rest)?.[1];
      if (target === undefined) {
        throw new EngineError(
          `malformed include '${line.trim()}' (expected //#include "lib/<name>.wgsl")`,
          { source },
        );
      }
      if (chain.includes(target)) {
        throw new EngineError(`include cycle ${[...chain, target].join(" -> ")}`, { source });
      }
      if (included.has(target)) return "";
      included.add(target);
      let body: string;
      try {
        body = read(target);
      } catch (e) {
        throw new EngineError(
          `cannot read included "${target}": ${(e as Error).message}`,
          { source, cause: e },
        );
      }
      return expand(target, body, [...chain, target]).replace(/\n$/, "");
    });
  return expand(path, text, [path]);
}

/** Fills `{{NAME}}` placeholders; every placeholder in the file must be given. Placeholders are
 * for what `override` constants cannot express (element types, vector widths). */
export function fillPlaceholders(
  name: string,
  src: string,
  values: Record<string, string | number>,
): string {
  return src.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_, key: string) => {
    const v = values[key];
    if (v === undefined) throw new EngineError(`shader ${name}: no value for placeholder ${key}`);
    return String(v);
  });
}

export interface PipelineSpec {
  /** File name under shaders/ without `.wgsl`. */
  shader: string;
  entryPoint?: string;
  /** WGSL `override` constants. */
  constants?: Record<string, number>;
  /** `{{NAME}}` text substitutions. */
  placeholders?: Record<string, string | number>;
}

function specKey(spec: PipelineSpec): string {
  return JSON.stringify([
    spec.shader,
    spec.entryPoint ?? "main",
    spec.constants ?? {},
    spec.placeholders ?? {},
  ]);
}

/** Compiles each (shader, entry point, constants, placeholders) once per device. */
export class PipelineCache {
  #pipelines = new Map<string, GPUComputePipeline>();
  #modules = new Map<string, GPUShaderModule>();

  constructor(private readonly device: GPUDevice) {}

  get size(): number {
    return this.#pipelines.size;
  }

  get(spec: PipelineSpec): GPUComputePipeline {
    const key = specKey(spec);
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      const moduleKey = JSON.stringify([spec.shader, spec.placeholders ?? {}]);
      let module = this.#modules.get(moduleKey);
      if (!module) {
        let code = shaderSource(spec.shader);
        if (spec.placeholders || code.includes("{{")) {
          code = fillPlaceholders(spec.shader, code, spec.placeholders ?? {});
        }
        module = this.device.createShaderModule({ code, label: spec.shader });
        this.#modules.set(moduleKey, module);
      }
      pipeline = this.device.createComputePipeline({
        label: `${spec.shader}:${spec.entryPoint ?? "main"}`,
        layout: "auto",
        compute: { module, entryPoint: spec.entryPoint ?? "main", constants: spec.constants },
      });
      this.#pipelines.set(key, pipeline);
    }
    return pipeline;
  }
}
