/** Seeded fuzzing of every file loader: ONNX models (parse, and for a few node-test models fold,
 * plan and run on the GPU), `.npy`, `.npz`, feature caches, checkpoints (every format, every
 * tensor read) and images. Each case mutates a real file (generic byte mutations plus cheap
 * structure-aware ones, see fuzz_util.ts) and asserts: the loader gives a self-consistent result,
 * or throws one EngineError naming the file; never another error (TypeError, RangeError, an
 * out-of-memory-sized allocation), a stack trace in the message, or a slow case (a hang). A
 * CLI check runs `inspect` and `run` on a few mutated files: exit 1, one error line, no stack.
 *
 * Deterministic by default (about 5-10 s for the file). FUZZ_SEED picks another seed,
 * FUZZ_CASES sets the cases per format (long local runs), FUZZ_CASE runs one case index only; a
 * failure prints all three. FUZZ_VERBOSE=1 prints how often each error was seen, FUZZ_TRACE=1
 * each case before it runs (to find a hang), FUZZ_CASE_LIMIT_MS the per-case time bound. */
import "../gpu_teardown.ts";
import { ok } from "node:assert/strict";
import { basename, join } from "node:path";
import { type CpuTensor } from "../../src/util/tensor.ts";
import { EngineError } from "../../src/util/errors.ts";
import { getGpu } from "../../src/gpu/mod.ts";
import { OPS, parseModel, readTensorFile } from "../../src/onnx/mod.ts";
import { Model } from "../../src/onnx/executor.ts";
import { decodeNpy, encodeNpy, type NpyArray, npyArray } from "../../src/util/npy.ts";
import { decodeNpz, encodeNpz } from "../../src/util/npz.ts";
import {
  type FeatureCacheManifest,
  readFeatureCache,
  writeFeatureCache,
} from "../../src/data/feature_cache.ts";
import { syntheticFeatures } from "../../src/amu/synthetic.ts";
import { openCheckpoint } from "../../src/models/checkpoint/open.ts";
import { decodeImage } from "../../src/data/decode.ts";
import { seededRandom } from "../../src/util/random.ts";
import { runTask, sharedPath } from "../helpers.ts";
import {
  bitFlips,
  caseSeed,
  GENERIC,
  imageStructureMutator,
  jsonMutator,
  mutate,
  type Mutated,
  type Mutator,
  npyHeaderMutator,
  onnxModelMutator,
  pick,
  pickleIntMutator,
  protobufVarintMutator,
  protobufVarints,
  type Random,
  safetensorsHeaderMutator,
  safetensorsLengthMutator,
  zipEntryMutator,
  zipFieldMutator,
  zipLayout,
} from "./fuzz_util.ts";

// ---------------------------------------------------------------------------------------------
// settings and the property

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

const SEED = Number(env("FUZZ_SEED") ?? 20261204) >>> 0;
const CASES = env("FUZZ_CASES") === undefined ? undefined : Number(env("FUZZ_CASES"));
const ONLY = env("FUZZ_CASE") === undefined ? undefined : Number(env("FUZZ_CASE"));
/** FUZZ_VERBOSE=1 prints how often each kind of error was seen (to judge the mutators). */
const VERBOSE = env("FUZZ_VERBOSE") === "1";
/** FUZZ_TRACE=1 prints each case before it runs (to find one that hangs). */
const TRACE = env("FUZZ_TRACE") === "1";
/** A case slower than this is a failure (a loader that is about to hang, or that walks a
 * corrupt count). Generous: the machine is shared and lavapipe compiles shaders. */
const CASE_LIMIT_MS = Number(env("FUZZ_CASE_LIMIT_MS") ?? 8000);
/** A successful result may hold at most this many bytes per input byte (plus 1 MiB): widening
 * (int8 to float64) is 8x; anything beyond is a corrupt count that should have been refused. */
const EXPANSION = 16;

function cases(defaultCases: number): number {
  return CASES ?? defaultCases;
}

/** One fuzz case's input: the mutated bytes, what they are, how they were made. */
interface FuzzInput {
  /** Name the loader is given (a path or label); errors must mention `mentions`. */
  readonly label: string;
  /** What an error message must contain to name the file (default: `label`). */
  readonly mentions?: string;
  readonly base: string;
  readonly mutated: Mutated;
}

class Finding extends Error {}

/** Runs `count` cases of `stream`; the loader either returns (its result checked by the caller
 * through `check`, which throws Finding) or throws an EngineError naming the file. Collects every
 * failure and fails once at the end, each with what reproduces it. */
async function fuzz(
  stream: string,
  count: number,
  makeCase: (r: Random, index: number) => FuzzInput | Promise<FuzzInput>,
  load: (input: FuzzInput, r: Random) => unknown | Promise<unknown>,
  /** Known problems of loaders other engineers own (not fixed here): a problem matching one is
   * counted and printed with its owner, not failed. Remove an entry once its owner fixes it. */
  options: { known?: readonly KnownIssue[] } = {},
): Promise<void> {
  const failures: string[] = [];
  const knownSeen = new Map<KnownIssue, string[]>();
  let errors = 0, successes = 0;
  const kinds = new Map<string, number>();
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    if (ONLY !== undefined && i !== ONLY) continue;
    const r = seededRandom(caseSeed(SEED, stream, i));
    const input = await makeCase(r, i);
    if (TRACE) console.log(`${stream} case ${i}: ${input.base} <- ${input.mutated.what}`);
    const t0 = performance.now();
    let problem: string | undefined;
    try {
      await load(input, r);
      successes++;
    } catch (e) {
      problem = judgeError(e, input.mentions ?? input.label);
      if (!problem) errors++;
      if (!problem && VERBOSE) {
        const kind = String((e as Error).message).replaceAll(input.mentions ?? input.label, "F")
          .replace(/\d+/g, "N").slice(0, 90);
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
    }
    const ms = performance.now() - t0;
    if (!problem && ms > CASE_LIMIT_MS) {
      problem = `took ${ms.toFixed(0)} ms (limit ${CASE_LIMIT_MS})`;
    }
    const known = problem ? options.known?.find((k) => k.problem.test(problem!)) : undefined;
    if (problem && known) {
      const seen = `[case ${i}] ${problem.slice(0, 200)} <- ${input.mutated.what.slice(0, 120)}`;
      knownSeen.set(known, [...(knownSeen.get(known) ?? []), seen]);
    } else if (problem) {
      failures.push(
        `[${stream} case ${i}] ${problem}\n    input: ${input.base} <- ${input.mutated.what}\n` +
          `    reproduce: FUZZ_SEED=${SEED} FUZZ_CASE=${i} deno test -A ` +
          `tests/fuzz/loaders_fuzz_test.ts --filter '${stream}'`,
      );
    }
  }
  const total = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `fuzz ${stream}: ${successes} loaded, ${errors} clear errors, ${failures.length} failures ` +
      `(seed ${SEED}, ${total} s)`,
  );
  for (const [k, seen] of knownSeen) {
    console.log(
      `  known issue, ${seen.length} case(s), left to ${k.owner}: ${k.what}\n    e.g. ` +
        seen[0],
    );
  }
  if (VERBOSE) {
    for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`  ${n}\t${k}`);
  }
  if (failures.length > 0) {
    throw new Error(`${failures.length} fuzz failure(s):\n${failures.slice(0, 12).join("\n")}`);
  }
}

/** A problem a loader outside this task's files has: matched, counted and reported. */
interface KnownIssue {
  readonly problem: RegExp;
  readonly owner: string;
  readonly what: string;
}

/** Why an error thrown by a loader is not acceptable, or undefined when it is: not an
 * EngineError, a stack, no file name, or raw bytes of the file in the message (control
 * characters, or newlines other than those starting an indented list line). */
function judgeError(e: unknown, mentions: string): string | undefined {
  if (e instanceof Finding) return e.message;
  if (!(e instanceof EngineError)) {
    const stack = e instanceof Error ? (e.stack ?? String(e)) : String(e);
    return `threw a non-EngineError: ${stack.split("\n").slice(0, 6).join("\n      ")}`;
  }
  if (/\n\s+at /.test(e.message)) return `message holds a stack: ${e.message}`;
  if (!e.message.includes(mentions)) {
    return `EngineError does not name the file (${mentions}): ${e.message.slice(0, 300)}`;
  }
  if (e.message.length > 2000) return `EngineError message of ${e.message.length} characters`;
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]|\n(?! )/.test(e.message)) {
    return `EngineError message holds raw control characters: ${
      JSON.stringify(e.message).slice(0, 400)
    }`;
  }
  return undefined;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Finding(`loaded, but ${what}`);
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A loaded tensor is self-consistent: integer shape, data length = elements, bounded size. */
function checkTensor(
  t: { shape: readonly number[]; data: { length: number; byteLength?: number } },
  name: string,
  budget: { bytes: number },
): void {
  check(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `${name} has shape [${t.shape}]`);
  check(
    t.data.length === product(t.shape),
    `${name} holds ${t.data.length} values for shape [${t.shape}]`,
  );
  budget.bytes -= t.data.byteLength ?? t.data.length * 8;
  check(budget.bytes >= 0, `${name} [${t.shape}] is larger than the file could describe`);
}

function budgetFor(bytes: number): { bytes: number } {
  return { bytes: bytes * EXPANSION + (1 << 20) };
}

const tmpRoot = Deno.makeTempDirSync({ prefix: "fuzz_loaders_" });
Deno.test.afterAll(() => Deno.removeSync(tmpRoot, { recursive: true }));

function readIf(path: string | undefined): Uint8Array | undefined {
  return path ? Deno.readFileSync(path) : undefined;
}

/** Weighted pool: structure-aware mutators `weight` times, beside the generic ones. */
function pool(structured: readonly Mutator[], weight = 2): Mutator[] {
  const out = [...GENERIC];
  for (let i = 0; i < weight; i++) out.push(...structured);
  return out;
}

// ---------------------------------------------------------------------------------------------
// ONNX

const NODE_TESTS = [
  "test_add",
  "test_matmul_2d",
  "test_conv_with_strides_padding",
  "test_relu",
  "test_gemm_default_no_bias",
  "test_reshape_reordered_all_dims",
  "test_softmax_axis_1",
  "test_transpose_default",
  "test_gather_0",
  "test_layer_normalization_2d_axis0",
  "test_averagepool_2d_default",
  "test_concat_2d_axis_0",
  "test_slice",
  "test_where_example",
];

interface OnnxBase {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly pool: Mutator[];
  /** Test data inputs (node tests only). */
  readonly inputs?: CpuTensor[];
  /** Input shapes to plan with (fixtures, which are planned rather than run). */
  readonly planShapes?: Record<string, number[]>;
}

function onnxBase(name: string, bytes: Uint8Array, inputs?: CpuTensor[]): OnnxBase {
  const varints = protobufVarintMutator(protobufVarints(bytes));
  return { name, bytes, pool: pool([varints, onnxModelMutator, onnxModelMutator], 2), inputs };
}

function nodeTestBases(): OnnxBase[] {
  const out: OnnxBase[] = [];
  for (const t of NODE_TESTS) {
    const dir = sharedPath("onnx-backend-tests", "node", t);
    if (!dir) continue;
    const inputs: CpuTensor[] = [];
    for (let k = 0;; k++) {
      const p = join(dir, "test_data_set_0", `input_${k}.pb`);
      try {
        inputs.push(readTensorFile(p).tensor);
      } catch {
        break;
      }
    }
    out.push(onnxBase(t, Deno.readFileSync(join(dir, "model.onnx")), inputs));
  }
  return out;
}

function fixtureOnnxBases(): OnnxBase[] {
  const root = sharedPath("fixtures");
  if (!root) return [];
  const out: OnnxBase[] = [];
  for (const d of [...Deno.readDirSync(root)].map((e) => e.name).sort()) {
    if (d === "generator") continue;
    let files: string[];
    try {
      files = [...Deno.readDirSync(join(root, d))].map((e) => e.name).sort();
    } catch {
      continue;
    }
    for (const f of files) {
      if (f.endsWith(".onnx")) out.push(onnxBase(`${d}/${f}`, Deno.readFileSync(join(root, d, f))));
    }
  }
  return out;
}

function onnxCase(
  bases: OnnxBase[],
  r: Random,
  index: number,
  decodable = false,
): FuzzInput & { base0: OnnxBase } {
  const base = bases[index % bases.length];
  // Planning needs a model that still decodes: mostly field-level mutations then.
  const mutated = decodable
    ? mutate(base.bytes, r, [onnxModelMutator, onnxModelMutator, onnxModelMutator, bitFlips], 1)
    : mutate(base.bytes, r, base.pool);
  const label = `fuzz_${index}_${basename(base.name)}`;
  return { label, base: base.name, mutated, base0: base };
}

function checkParsed(parsed: ReturnType<typeof parseModel>, bytes: number): void {
  const budget = budgetFor(bytes);
  for (const [name, t] of parsed.graph.constants) checkTensor(t, `constant '${name}'`, budget);
  for (const n of parsed.graph.nodes) {
    for (const [a, v] of n.attrs) {
      if (v && typeof v === "object" && "shape" in v && "data" in v) {
        checkTensor(v as CpuTensor, `attribute '${a}' of '${n.name}'`, budget);
      }
    }
  }
}

Deno.test("fuzz: ONNX models parse or give one clear error", async () => {
  const bases = [...fixtureOnnxBases(), ...nodeTestBases()];
  if (bases.length === 0) return;
  const baseDir = join(tmpRoot, "onnx");
  Deno.mkdirSync(baseDir, { recursive: true });
  await fuzz("onnx-parse", cases(600), (r, i) => onnxCase(bases, r, i), (input) => {
    const parsed = parseModel(input.mutated.bytes, { source: input.label, baseDir, ops: OPS });
    checkParsed(parsed, input.mutated.bytes.length);
  });
});

/** Fixture models to plan (not run): the input shapes of the unmutated model, symbolic axes 2, as
 * a user would pass them. */
function planBases(): OnnxBase[] {
  const out: OnnxBase[] = [];
  for (
    const f of [
      "clip_vit_tiny/clip_vit_tiny.opset14.onnx",
      "clip_text_tiny/clip_text_tiny.opset14.onnx",
      "aux_resnet_tiny/aux_resnet_tiny.opset14.onnx",
    ]
  ) {
    const path = sharedPath("fixtures", f);
    if (!path) continue;
    const bytes = Deno.readFileSync(path);
    const graph = parseModel(bytes, { source: f, ops: OPS }).graph;
    const planShapes: Record<string, number[]> = {};
    for (const d of graph.inputs) {
      planShapes[d.name] = (d.dims ?? []).map((x) => typeof x === "number" ? x : 2);
    }
    out.push({ ...onnxBase(f, bytes), planShapes });
  }
  return out;
}

Deno.test("fuzz: mutated ONNX models fold, plan and run or give one clear error", async () => {
  // Node-test models run on their test inputs; every fourth case plans a CLIP fixture instead.
  const nodes = nodeTestBases();
  const fixtures = planBases();
  if (nodes.length === 0 || fixtures.length === 0) return;
  const bases = Array.from(
    { length: nodes.length * 4 / 3 | 0 },
    (_, i) => i % 4 === 3 ? fixtures[(i >> 2) % fixtures.length] : nodes[i - (i >> 2)],
  );
  const gpu = await getGpu();
  await fuzz(
    "onnx-plan",
    cases(40),
    (r, i) => onnxCase(bases, r, i, true),
    async (input) => {
      const base = (input as ReturnType<typeof onnxCase>).base0;
      const parsed = parseModel(input.mutated.bytes, { source: input.label, ops: OPS });
      checkParsed(parsed, input.mutated.bytes.length);
      const model = new Model(gpu, parsed, OPS);
      try {
        if (base.planShapes) {
          const plan = await model.plan(base.planShapes, { tuneKernels: false });
          check(plan.outputs.size > 0, "the plan has no outputs");
          return;
        }
        const feeds: Record<string, CpuTensor> = {};
        model.inputs.forEach((d, k) => {
          if (base.inputs?.[k]) feeds[d.name] = base.inputs[k];
        });
        const out = await model.run(feeds);
        const budget = budgetFor(1 << 24);
        for (const [name, t] of Object.entries(out)) checkTensor(t, `output '${name}'`, budget);
      } finally {
        model.dispose();
      }
    },
  );
});

Deno.test("fuzz: TensorProto files (.pb) read or give one clear error", async () => {
  const bases: { name: string; bytes: Uint8Array; pool: Mutator[] }[] = [];
  for (const t of NODE_TESTS) {
    const dir = sharedPath("onnx-backend-tests", "node", t, "test_data_set_0");
    if (!dir) continue;
    for (const f of ["input_0.pb", "output_0.pb"]) {
      const bytes = Deno.readFileSync(join(dir, f));
      const varints = protobufVarintMutator(protobufVarints(bytes));
      bases.push({ name: `${t}/${f}`, bytes, pool: pool([varints], 3) });
    }
  }
  if (bases.length === 0) return;
  const dir = join(tmpRoot, "pb");
  Deno.mkdirSync(dir, { recursive: true });
  await fuzz("tensor-pb", cases(600), (r, i) => {
    const base = bases[i % bases.length];
    const mutated = mutate(base.bytes, r, base.pool);
    const path = join(dir, `fuzz_${i}.pb`);
    Deno.writeFileSync(path, mutated.bytes);
    return { label: path, base: base.name, mutated };
  }, (input) => {
    try {
      const { tensor } = readTensorFile(input.label);
      checkTensor(tensor, "tensor", budgetFor(input.mutated.bytes.length));
    } finally {
      Deno.removeSync(input.label);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// npy / npz

function npyBases(): { name: string; bytes: Uint8Array }[] {
  const out: { name: string; bytes: Uint8Array }[] = [];
  const ckpt = sharedPath("checkpoints");
  if (ckpt) {
    for (const d of ["clip_vit_ckpt.io", "mocov3_resnet_ckpt.io"]) {
      for (const f of [...Deno.readDirSync(join(ckpt, d))].map((e) => e.name).sort()) {
        if (f.endsWith(".npy")) out.push({ name: `${d}/${f}`, bytes: readIf(join(ckpt, d, f))! });
      }
    }
  }
  // Made here: every dtype, big-endian and Fortran order, a version 2.0 header.
  const values = Array.from({ length: 24 }, (_, i) => i - 7);
  const dtypes = ["float16", "float32", "float64", "int8", "int16", "int64", "uint16", "bool"];
  for (const dt of dtypes) {
    const a = npyArray(
      dt as NpyArray["dtype"],
      [2, 3, 4],
      dt === "int64" ? values.map(BigInt) : values,
    );
    out.push({ name: `made ${dt}`, bytes: encodeNpy(a) });
  }
  const big = encodeNpy(npyArray("float64", [4, 6], values));
  const text = new TextDecoder().decode(big.subarray(10, 128)).replace("<f8", ">f8")
    .replace("False", "True");
  const swapped = big.slice();
  swapped.set(new TextEncoder().encode(text), 10);
  out.push({ name: "made >f8 fortran", bytes: swapped });
  const v2 = new Uint8Array(big.length + 2);
  v2.set(big.subarray(0, 8));
  v2[6] = 2;
  new DataView(v2.buffer).setUint32(8, 118, true);
  v2.set(big.subarray(10, 128), 12);
  v2.set(big.subarray(128), 130);
  out.push({ name: "made v2.0", bytes: v2 });
  return out;
}

function checkNpy(a: NpyArray, name: string, budget: { bytes: number }): void {
  checkTensor(a, name, budget);
}

Deno.test("fuzz: .npy files decode or give one clear error", async () => {
  const bases = npyBases();
  const mutators = pool([npyHeaderMutator], 3);
  await fuzz("npy", cases(1500), (r, i) => {
    const base = bases[i % bases.length];
    return { label: `fuzz_${i}.npy`, base: base.name, mutated: mutate(base.bytes, r, mutators) };
  }, (input) => {
    checkNpy(
      decodeNpy(input.mutated.bytes, input.label),
      input.label,
      budgetFor(input.mutated.bytes.length),
    );
  });
});

Deno.test("fuzz: .npz archives decode or give one clear error", async () => {
  const arrays = (seed: number): Record<string, NpyArray> => {
    const r = seededRandom(seed);
    return {
      a: npyArray("float32", [3, 5], Array.from({ length: 15 }, r)),
      labels: npyArray("int64", [7], Array.from({ length: 7 }, (_, i) => BigInt(i))),
      empty: npyArray("float64", [0, 4]),
    };
  };
  const bases = [
    { name: "stored npz", bytes: encodeNpz(arrays(1)) },
    { name: "deflated npz", bytes: encodeNpz(arrays(2), { compress: true }) },
  ].map((b) => {
    const layout = zipLayout(b.bytes);
    return {
      ...b,
      pool: pool([
        zipFieldMutator(layout),
        zipEntryMutator(layout, () => true, npyHeaderMutator),
        zipEntryMutator(layout, () => true, (x, r) => mutate(x, r, GENERIC.slice(0, 2), 1)),
      ], 2),
    };
  });
  await fuzz("npz", cases(600), (r, i) => {
    const base = bases[i % bases.length];
    return { label: `fuzz_${i}.npz`, base: base.name, mutated: mutate(base.bytes, r, base.pool) };
  }, (input) => {
    const out = decodeNpz(input.mutated.bytes, input.label);
    const budget = budgetFor(input.mutated.bytes.length);
    for (const [k, a] of out) checkNpy(a, `array '${k}'`, budget);
  });
});

// ---------------------------------------------------------------------------------------------
// feature caches

Deno.test("fuzz: feature caches load or give one clear error", async () => {
  const original = join(tmpRoot, "cache_base");
  const features = syntheticFeatures({
    trainRows: 12,
    testRows: 9,
    classes: 4,
    clipDim: 6,
    auxDim: 5,
    seed: 3,
  });
  const manifest: FeatureCacheManifest = {
    format: "amu-feature-cache",
    version: 1,
    dataset: "synthetic",
    split: { train: "train", test: "test" },
    shots: null,
    seed: 3,
    augment_views: 1,
    class_names: ["a", "b", "c", "d"],
    encoders: [{ role: "clip_visual", path: "none.onnx", sha256: "0".repeat(64) }],
  };
  writeFeatureCache(original, features, manifest);
  const npz = Deno.readFileSync(join(original, "features.npz"));
  const json = Deno.readFileSync(join(original, "manifest.json"));
  const layout = zipLayout(npz);
  const npzPool = pool([
    zipFieldMutator(layout),
    zipEntryMutator(layout, () => true, npyHeaderMutator),
    zipEntryMutator(layout, () => true, (x, r) => mutate(x, r, GENERIC.slice(0, 2), 1)),
  ], 2);
  const jsonPool = pool([jsonMutator], 4);
  await fuzz("feature-cache", cases(300), (r, i) => {
    const dir = join(tmpRoot, `cache_${i}`);
    Deno.mkdirSync(dir, { recursive: true });
    const manifestSide = r() < 0.35;
    const mutated = mutate(manifestSide ? json : npz, r, manifestSide ? jsonPool : npzPool);
    Deno.writeFileSync(join(dir, "features.npz"), manifestSide ? npz : mutated.bytes);
    Deno.writeFileSync(join(dir, "manifest.json"), manifestSide ? mutated.bytes : json);
    return {
      label: dir,
      base: manifestSide ? "manifest.json" : "features.npz",
      mutated,
    };
  }, (input) => {
    try {
      const { features: f } = readFeatureCache(input.label);
      const budget = budgetFor(npz.length + json.length);
      for (const [k, m] of Object.entries(f)) {
        const t = "rows" in m
          ? { shape: [m.rows, m.cols], data: m.data }
          : { shape: [(m as Int32Array).length], data: m as Int32Array };
        checkTensor(t, k, budget);
      }
    } finally {
      Deno.removeSync(input.label, { recursive: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// checkpoints

interface CheckpointBase {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly pool: Mutator[];
}

function checkpointBases(includeLarge: boolean): CheckpointBase[] {
  const dir = sharedPath("checkpoints");
  if (!dir) return [];
  const files = [
    "clip_vit_ckpt.jit.pt",
    "clip_vit_ckpt.state_dict.pt",
    "clip_vit_ckpt.legacy.pt",
    "clip_vit_ckpt.hf.safetensors",
    "mocov3_resnet_ckpt.pth.tar",
    "mocov3_resnet_ckpt.legacy.pth.tar",
    ...(includeLarge ? ["clip_rn_ckpt.jit.pt"] : []),
  ];
  return files.map((name) => {
    const bytes = Deno.readFileSync(join(dir, name));
    let structured: Mutator[];
    if (name.endsWith(".safetensors")) {
      structured = [safetensorsHeaderMutator, safetensorsHeaderMutator, safetensorsLengthMutator];
    } else if (name.includes("legacy")) {
      // The pickles come first; storages follow, each after an 8-byte count.
      structured = [
        pickleIntMutator,
        (b, r) => {
          const out = b.slice();
          const at = Math.floor(r() * Math.min(b.length, 1 << 16));
          out[at] = pick(r, [0, 0xff, 0x7f, 0x80, 0x2e, 0x4b, 0x71, 0x58]);
          return { bytes: out, what: `legacy pickle byte ${at} -> ${out[at]}` };
        },
      ];
    } else {
      const layout = zipLayout(bytes);
      const isPickle = (n: string) => n.endsWith(".pkl");
      structured = [
        zipFieldMutator(layout),
        zipEntryMutator(layout, isPickle, pickleIntMutator),
        zipEntryMutator(layout, isPickle, (x, r) => mutate(x, r, GENERIC.slice(0, 2), 1)),
      ];
    }
    return { name, bytes, pool: pool(structured, 3) };
  });
}

/** Opens a checkpoint and reads every tensor, stored and (matrices) transposed. */
function readWholeCheckpoint(path: string, fileBytes: number): void {
  const sd = openCheckpoint(path);
  try {
    const budget = budgetFor(fileBytes);
    for (const [name, info] of sd.entries) {
      const t = sd.read(name);
      checkTensor(t, `tensor '${name}'`, budget);
      check(
        t.shape.join(",") === info.shape.join(","),
        `tensor '${name}' read as [${t.shape}], listed as [${info.shape}]`,
      );
      if (info.shape.length === 2 && product(info.shape) <= 1 << 16) {
        const tt = sd.read(name, "transposed");
        check(
          tt.shape.join(",") === [info.shape[1], info.shape[0]].join(","),
          `tensor '${name}' transposed read as [${tt.shape}]`,
        );
      }
    }
  } finally {
    sd.close();
  }
}

Deno.test("fuzz: checkpoints open and read every tensor or give one clear error", async () => {
  const bases = checkpointBases(false);
  if (bases.length === 0) return;
  const large = checkpointBases(true).at(-1)!;
  await fuzz("checkpoint", cases(200), (r, i) => {
    // The 15 MB ResNet TorchScript file only every 14th case: it is slow to copy.
    const base = i % 14 === 13 ? large : bases[i % bases.length];
    const mutated = mutate(base.bytes, r, base.pool);
    const dir = join(tmpRoot, `ckpt_${i}`);
    Deno.mkdirSync(dir, { recursive: true });
    const path = join(dir, base.name);
    Deno.writeFileSync(path, mutated.bytes);
    return { label: path, base: base.name, mutated };
  }, (input) => {
    try {
      readWholeCheckpoint(input.label, input.mutated.bytes.length);
    } finally {
      Deno.removeSync(join(input.label, ".."), { recursive: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// images

function imageBases(): { name: string; bytes: Uint8Array }[] {
  const out: { name: string; bytes: Uint8Array }[] = [];
  for (const d of ["pil", "pil_modes"]) {
    const dir = new URL(`../data/${d}/`, import.meta.url).pathname;
    for (const f of [...Deno.readDirSync(dir)].map((e) => e.name).sort()) {
      if (/\.(png|jpe?g)$/i.test(f)) {
        out.push({ name: `${d}/${f}`, bytes: Deno.readFileSync(join(dir, f)) });
      }
    }
  }
  return out;
}

// A decode that never returns cannot be timed out from here (synchronous wasm blocks the event
// loop): FUZZ_CASES=3000 once found such a hang (libjpeg state left by earlier corrupt JPEGs, fixed
// in jpeg_decode.ts by a fresh instance after a failed decode).
Deno.test("fuzz: images decode or give one clear error", async () => {
  const bases = imageBases();
  const mutators = pool([imageStructureMutator], 3);
  await fuzz("image", cases(300), (r, i) => {
    const base = bases[i % bases.length];
    const ext = base.name.split(".").at(-1);
    return { label: `fuzz_${i}.${ext}`, base: base.name, mutated: mutate(base.bytes, r, mutators) };
  }, async (input) => {
    const img = await decodeImage(input.mutated.bytes, input.label);
    check(
      Number.isSafeInteger(img.width) && Number.isSafeInteger(img.height) && img.width > 0 &&
        img.height > 0,
      `image is ${img.width}x${img.height}`,
    );
    checkTensor(
      { shape: [img.height, img.width, 3], data: img.data },
      "image",
      budgetFor(input.mutated.bytes.length * 64),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// command line

/** Mutations of `bytes` (from seed stream `stream`) until `fails` says a loader refuses it. */
function failingMutation(
  stream: string,
  bytes: Uint8Array,
  mutators: Mutator[],
  fails: (b: Uint8Array) => boolean,
): Mutated {
  for (let i = 0; i < 200; i++) {
    const m = mutate(bytes, seededRandom(caseSeed(SEED, stream, i)), mutators, 1);
    if (fails(m.bytes)) return m;
  }
  throw new Error(`${stream}: no failing mutation found in 200 tries`);
}

function throwsEngineError(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (e) {
    return e instanceof EngineError;
  }
}

function assertCleanFailure(r: { code: number; stderr: string }, file: string, what: string) {
  const lines = r.stderr.split("\n").filter((l) => l.trim() && !l.startsWith("warning:"));
  ok(r.code !== 0, `${what}: exit code ${r.code}, expected failure\n${r.stderr}`);
  ok(!r.stderr.includes("    at "), `${what}: stack trace in stderr:\n${r.stderr}`);
  ok(lines.length === 1 && lines[0].startsWith("error: "), `${what}: stderr:\n${r.stderr}`);
  ok(lines[0].includes(file), `${what}: the error does not name ${file}: ${lines[0]}`);
}

Deno.test("fuzz: CLI inspect/run on mutated files exit 1 with one error line", async () => {
  const ckptDir = sharedPath("checkpoints");
  const onnxPath = sharedPath("onnx-backend-tests", "node", "test_relu", "model.onnx");
  if (!ckptDir || !onnxPath) return;
  const dir = join(tmpRoot, "cli");
  Deno.mkdirSync(dir, { recursive: true });

  // A checkpoint whose pickle or directory is corrupt.
  const ckpt = Deno.readFileSync(join(ckptDir, "clip_vit_ckpt.state_dict.pt"));
  const layout = zipLayout(ckpt);
  const ckptPath = join(dir, "bad.pt");
  const badCkpt = failingMutation("cli-ckpt", ckpt, [
    zipFieldMutator(layout),
    zipEntryMutator(layout, (n) => n.endsWith(".pkl"), pickleIntMutator),
  ], (b) => {
    Deno.writeFileSync(ckptPath, b);
    return throwsEngineError(() => openCheckpoint(ckptPath).close()); // inspect reads no data
  });
  Deno.writeFileSync(ckptPath, badCkpt.bytes);

  const st = Deno.readFileSync(join(ckptDir, "clip_vit_ckpt.hf.safetensors"));
  const stPath = join(dir, "bad.safetensors");
  const badSt = failingMutation("cli-st", st, [safetensorsHeaderMutator], (b) => {
    Deno.writeFileSync(stPath, b);
    return throwsEngineError(() => openCheckpoint(stPath).close());
  });
  Deno.writeFileSync(stPath, badSt.bytes);

  // An ONNX model whose protobuf is corrupt.
  const model = Deno.readFileSync(onnxPath);
  const badOnnxPath = join(dir, "bad.onnx");
  const badOnnx = failingMutation(
    "cli-onnx",
    model,
    [protobufVarintMutator(protobufVarints(model))],
    (b) => throwsEngineError(() => parseModel(b, { source: badOnnxPath, ops: OPS })),
  );
  Deno.writeFileSync(badOnnxPath, badOnnx.bytes);

  // A good model with a corrupt input array.
  const goodOnnx = join(dir, "relu.onnx");
  Deno.copyFileSync(onnxPath, goodOnnx);
  const npy = encodeNpy(npyArray("float32", [3, 4, 5], new Float32Array(60)));
  const badNpyPath = join(dir, "bad.npy");
  const badNpy = failingMutation(
    "cli-npy",
    npy,
    [npyHeaderMutator],
    (b) => throwsEngineError(() => decodeNpy(b, badNpyPath)),
  );
  Deno.writeFileSync(badNpyPath, badNpy.bytes);

  const runs: [string, string[], string, Mutated][] = [
    ["inspect", [ckptPath], ckptPath, badCkpt],
    ["inspect", [stPath], stPath, badSt],
    ["inspect", [badOnnxPath], badOnnxPath, badOnnx],
    ["run", [badOnnxPath, "--input", badNpyPath, "--no-tune"], badOnnxPath, badOnnx],
    ["run", [goodOnnx, "--input", badNpyPath, "--no-tune"], badNpyPath, badNpy],
  ];
  const results = await Promise.all(runs.map(([task, args]) => runTask(task, args)));
  runs.forEach(([task, args, file, m], k) => {
    assertCleanFailure(results[k], file, `${task} ${args.join(" ")} (${m.what})`);
  });
});
