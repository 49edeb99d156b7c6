/** Kernel workloads as benchmark cases: each calls our kernel binding directly, builds a float64
 * reference at sampled positions, and describes the same computation for the peers (a one-op
 * ONNX model built with GraphBuilder; tfjs ops for matmul and conv). */
import {
  allocTensor,
  type Dispatch,
  type Gpu,
  type GpuTensor,
  readTensor,
  releaseTensor,
  ResourceScope,
  uploadTensor,
} from "../gpu/mod.ts";
import { cpuTensor, roundToF16, sizeOf } from "../util/tensor.ts";
import { prepareConv, type PrepareConvOptions } from "../kernels/conv.ts";
import { convCandidates, convVariantOptions, tuneConv } from "../kernels/conv_tune.ts";
import { type ConvAttrs, convOutputShape } from "../kernels/conv_shape.ts";
import { prepareUnary } from "../kernels/elementwise.ts";
import { prepareLayerNorm } from "../kernels/layernorm.ts";
import {
  chooseMatmulVariant,
  matmulLayout,
  type MatmulVariant,
  prepareMatmul,
} from "../kernels/matmul.ts";
import { tuneMatmul } from "../kernels/matmul_tune.ts";
import type { TrialResult } from "../kernels/variants.ts";
import { prepareSoftmax } from "../kernels/softmax.ts";
import { contiguousStrides4, prepareAttention } from "../kernels/attention.ts";
import { GraphBuilder } from "../onnx/builder.ts";
import {
  checkOutput,
  gelu,
  randomData,
  type Reference,
  referenceAt,
  rowIndices,
  sampleIndices,
} from "./check.ts";
import type { BenchCase, BenchContext, OursRun, PreparedCase } from "./types.ts";

/** Kernel rows work on float32 host tensors (a HostTensor without a dtype). */
interface F32Host {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

const F32 = 4;
const SAMPLES = 256;
const SAMPLE_ROWS = 16;

/** GPU tensors and kernel-owned resources of our side of one row. */
class OursResources {
  readonly scope = new ResourceScope();
  readonly #tensors: GpuTensor[] = [];

  constructor(readonly gpu: Gpu) {}

  upload(t: F32Host, label: string): GpuTensor {
    const g = uploadTensor(this.gpu, t.data, t.shape, "float32", label);
    this.#tensors.push(g);
    return g;
  }

  alloc(shape: readonly number[], label: string): GpuTensor {
    const g = allocTensor(this.gpu, shape, "float32", label);
    this.#tensors.push(g);
    return g;
  }

  dispose(): void {
    for (const t of this.#tensors) releaseTensor(this.gpu, t);
    this.scope.dispose();
  }
}

/** A kernel variant as printed beside the row, and the candidates' times when measured. */
interface Choice {
  readonly label: string;
  readonly trials?: string;
}

function dispatchRun(
  res: OursResources,
  dispatches: readonly Dispatch[],
  out: GpuTensor,
  choice?: Choice,
): OursRun {
  return {
    dispatches,
    variant: choice?.label,
    extra: choice?.trials ? { variant_trials: choice.trials } : undefined,
    output: () => readTensor(res.gpu, out),
    dispose: () => res.dispose(),
  };
}

/** Candidates' times as the JSON report lists them: `name ms`, or why there is none. */
function formatTrials(trials: readonly TrialResult[]): string | undefined {
  if (trials.length === 0) return undefined;
  return trials.map((t) =>
    `${t.name} ${
      t.ms !== undefined ? `${t.ms.toPrecision(3)} ms` : t.pruned ? "pruned" : `failed: ${t.error}`
    }`
  ).join(", ");
}

function tunedLabel(chosen: string, cached: boolean, tried: number): string {
  return cached ? `${chosen} (cached)` : `${chosen} (best of ${tried})`;
}

function host(shape: readonly number[], seed: number, lo = -1, hi = 1): F32Host {
  return { shape, data: randomData(sizeOf(shape), seed, lo, hi) };
}

function prepared(
  ours: OursRun,
  ref: Reference,
  peers: PreparedCase["peers"],
): PreparedCase {
  return { ours, peers, check: (out) => checkOutput(ref, out) };
}

/** One-input-per-operand ONNX model around a single node (opset 17). */
function singleOpModel(
  op: string,
  inputs: readonly [string, F32Host][],
  outShape: readonly number[],
  attrs: Parameters<GraphBuilder["op"]>[2] = {},
  constants: readonly [string, F32Host][] = [],
): Uint8Array {
  const g = new GraphBuilder(`bench_${op.toLowerCase()}`, 17);
  const names: string[] = [];
  for (const [name, t] of inputs) names.push(g.input(name, "float32", t.shape));
  for (const [prefix, t] of constants) {
    names.push(g.constant(prefix, cpuTensor("float32", t.shape, t.data)));
  }
  g.op(op, names, attrs, "Y");
  g.output("Y", "float32", outShape);
  return g.encode();
}

// ---------------------------------------------------------------------------------------------
// Matmul

export interface MatmulCaseSpec {
  name: string;
  /** Leading batch axes shared by A and B. */
  batch?: readonly number[];
  m: number;
  k: number;
  n: number;
  /** "f16": our kernel may store the operands as halves (f32 accumulation). The inputs are then
   * float16 values (float32 data rounded to half), so the float64 reference stays exact and
   * every runner gets the same numbers; the peers compute in float32. */
  precision?: "f16";
}

/** Shader of each matmul family (matmul.ts's naming), to notice a fallback. */
const FAMILY_SHADERS: Readonly<Record<string, string>> = {
  scalar: "matmul",
  vec4: "matmul_vec4",
  shared: "matmul_tiled",
  texture: "matmul_texture",
};

/** Our matmul variant for a problem: measured on this adapter (tuneMatmul, cached per adapter)
 * when the run tunes, else the binding's default choice. */
export interface MatmulChoice extends Choice {
  readonly variant: MatmulVariant;
}

export async function chooseMatmul(
  ctx: BenchContext,
  aShape: readonly number[],
  bShape: readonly number[],
  transB = false,
  halvesAllowed = false,
): Promise<MatmulChoice> {
  const l = matmulLayout(aShape, bShape, undefined, false, transB);
  const problem = { m: l.m, n: l.n, k: l.k, batch: sizeOf(l.batchShape), halvesAllowed };
  if (!ctx.tune) {
    const variant = chooseMatmulVariant(ctx.gpu, problem);
    return { variant, label: variant.name };
  }
  const r = await tuneMatmul(ctx.gpu, problem);
  return {
    variant: r.variant,
    label: tunedLabel(r.chosen, r.cached, r.trials.length),
    trials: formatTrials(r.trials),
  };
}

/** The choice, marked with the shader that actually ran when prepareMatmul fell back to another
 * family (an operand the variant cannot take). */
function ranAs(choice: MatmulChoice, dispatches: readonly Dispatch[]): Choice {
  const ran = dispatches[dispatches.length - 1]?.label;
  const expected = FAMILY_SHADERS[choice.variant.family];
  return expected && ran && ran !== expected
    ? { ...choice, label: `${choice.label}->${ran}` }
    : choice;
}

/** C[b] = A[b] @ B[b] with A [...batch, M, K] and B [...batch, K, N] (no transposes: every
 * runner gets the same layouts). */
export function matmulCase(spec: MatmulCaseSpec): BenchCase {
  const batch = spec.batch ?? [];
  const { m, k, n } = spec;
  const b = sizeOf(batch);
  const aShape = [...batch, m, k], bShape = [...batch, k, n], cShape = [...batch, m, n];
  const f16 = spec.precision === "f16";
  const shape = `${b > 1 ? `${batch.join("x")} x ` : ""}${m}x${k} @ ${k}x${n}` +
    (f16 ? " f16 storage" : "");
  return {
    name: spec.name,
    shape,
    flops: 2 * b * m * n * k,
    bytes: F32 * b * (m * k + k * n + m * n),
    async prepare(ctx) {
      const { gpu } = ctx;
      const choice = await chooseMatmul(ctx, aShape, bShape, false, f16);
      const a = host(aShape, 11), bm = host(bShape, 12);
      if (f16) { for (const t of [a, bm]) t.data.set(t.data.map(roundToF16)); }
      const ref = referenceAt(b * m * n, sampleIndices(b * m * n, SAMPLES, 13), (flat) => {
        const z = Math.floor(flat / (m * n)), i = Math.floor(flat / n) % m, j = flat % n;
        let acc = 0;
        for (let p = 0; p < k; p++) {
          acc += a.data[(z * m + i) * k + p] * bm.data[(z * k + p) * n + j];
        }
        return acc;
      });
      const res = new OursResources(gpu);
      const ta = res.upload(a, "A"), tb = res.upload(bm, "B"), tc = res.alloc(cShape, "C");
      const dispatches = prepareMatmul(gpu, res.scope, ta, tb, tc, {
        label: spec.name,
        variant: choice.variant,
        precision: f16 ? "f16" : "f32",
      });
      const ours = dispatchRun(res, dispatches, tc, ranAs(choice, dispatches));
      return prepared(ours, ref, {
        onnx: {
          model: singleOpModel("MatMul", [["A", a], ["B", bm]], cShape),
          inputs: { A: a, B: bm },
          output: "Y",
        },
        tfjs: { inputs: [a, bm], run: (tf, [x, y]) => tf.matMul(x, y) },
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Conv

export interface ConvCaseSpec {
  name: string;
  n: number;
  c: number;
  h: number;
  w: number;
  m: number;
  kernel: number;
  stride: number;
  pad: number;
}

/** NCHW <- NHWC permutation of a tfjs output. */
function nhwcToNchw(data: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let ch = 0; ch < c; ch++) {
          out[((b * c + ch) * h + y) * w + x] = data[((b * h + y) * w + x) * c + ch];
        }
      }
    }
  }
  return out;
}

function nchwToNhwc(data: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          out[((b * h + y) * w + x) * c + ch] = data[((b * c + ch) * h + y) * w + x];
        }
      }
    }
  }
  return out;
}

/** [M, C, KH, KW] -> [KH, KW, C, M] (tfjs filter layout). */
function oihwToHwio(data: Float32Array, m: number, c: number, kh: number, kw: number) {
  const out = new Float32Array(data.length);
  for (let o = 0; o < m; o++) {
    for (let i = 0; i < c; i++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          out[((y * kw + x) * c + i) * m + o] = data[((o * c + i) * kh + y) * kw + x];
        }
      }
    }
  }
  return out;
}

/** Our conv register tile (output channels per invocation): measured on this adapter when the
 * run tunes, else the binding's default. */
async function chooseConvTile(
  ctx: BenchContext,
  xShape: readonly number[],
  wShape: readonly number[],
  attrs: ConvAttrs,
): Promise<Choice & { options: PrepareConvOptions }> {
  if (!ctx.tune) {
    const name = convCandidates(xShape, wShape, attrs)[0];
    return { label: name, options: convVariantOptions(name) };
  }
  const r = await tuneConv(ctx.gpu, xShape, wShape, attrs);
  return {
    options: convVariantOptions(r.chosen),
    label: tunedLabel(r.chosen, r.cached, r.trials.length),
    trials: formatTrials(r.trials),
  };
}

/** Y = conv2d(X, W) + bias, NCHW, square kernel, symmetric pads; W and bias are constants (as in
 * a model: every runner may prepack them once). */
export function convCase(spec: ConvCaseSpec): BenchCase {
  const { n, c, h, w, m, kernel: kk, stride, pad } = spec;
  const attrs = {
    strides: [stride, stride],
    pads: [pad, pad, pad, pad],
    dilations: [1, 1],
    group: 1,
  };
  const xShape = [n, c, h, w], wShape = [m, c, kk, kk];
  const yShape = convOutputShape(xShape, wShape, attrs);
  const [, , oh, ow] = yShape;
  return {
    name: spec.name,
    shape: `${n}x${c}x${h}x${w} * ${m}x${c}x${kk}x${kk}${stride > 1 ? ` s${stride}` : ""}`,
    flops: 2 * n * m * oh * ow * c * kk * kk,
    bytes: F32 * (sizeOf(xShape) + sizeOf(wShape) + m + sizeOf(yShape)),
    async prepare(ctx) {
      const { gpu } = ctx;
      const choice = await chooseConvTile(ctx, xShape, wShape, attrs);
      const x = host(xShape, 21), wt = host(wShape, 22, -0.2, 0.2), bias = host([m], 23);
      const total = sizeOf(yShape);
      const ref = referenceAt(total, sampleIndices(total, SAMPLES, 24), (flat) => {
        const ox = flat % ow, oy = Math.floor(flat / ow) % oh;
        const o = Math.floor(flat / (ow * oh)) % m, b = Math.floor(flat / (ow * oh * m));
        let acc = bias.data[o];
        for (let i = 0; i < c; i++) {
          for (let ky = 0; ky < kk; ky++) {
            const iy = oy * stride - pad + ky;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < kk; kx++) {
              const ix = ox * stride - pad + kx;
              if (ix < 0 || ix >= w) continue;
              acc += x.data[((b * c + i) * h + iy) * w + ix] *
                wt.data[((o * c + i) * kk + ky) * kk + kx];
            }
          }
        }
        return acc;
      });
      const res = new OursResources(gpu);
      const tx = res.upload(x, "X"), ty = res.alloc(yShape, "Y");
      const dispatches = prepareConv(
        gpu,
        res.scope,
        tx,
        cpuTensor("float32", wShape, wt.data),
        cpuTensor("float32", [m], bias.data),
        ty,
        attrs,
        choice.options,
      );
      const xNhwc: F32Host = { shape: [n, h, w, c], data: nchwToNhwc(x.data, n, c, h, w) };
      const filter: F32Host = { shape: [kk, kk, c, m], data: oihwToHwio(wt.data, m, c, kk, kk) };
      return prepared(dispatchRun(res, dispatches, ty, choice), ref, {
        onnx: {
          model: singleOpModel("Conv", [["X", x]], yShape, {
            kernel_shape: { ints: [kk, kk] },
            strides: { ints: [stride, stride] },
            pads: { ints: [pad, pad, pad, pad] },
          }, [["W", wt], ["B", bias]]),
          inputs: { X: x },
          output: "Y",
        },
        tfjs: {
          inputs: [xNhwc, filter, bias],
          run: (tf, [tx4, tf4, tb]) =>
            tf.fused.conv2d({
              x: tx4 as Parameters<typeof tf.fused.conv2d>[0]["x"],
              filter: tf4 as Parameters<typeof tf.fused.conv2d>[0]["filter"],
              strides: stride,
              pad,
              bias: tb,
            }),
          toReference: (data) => nhwcToNchw(data, n, oh, ow, m),
        },
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Row-wise kernels: LayerNorm, Softmax, GELU

/** LayerNormalization over the last axis of [rows, width], scale and bias constants. */
export function layerNormCase(name: string, rows: number, width: number): BenchCase {
  const count = rows * width;
  return {
    name,
    shape: `${rows}x${width}`,
    bytes: F32 * (2 * count + 2 * width),
    prepare({ gpu }) {
      const x = host([rows, width], 31, -2, 2);
      const scale = host([width], 32, 0.5, 1.5), bias = host([width], 33);
      const picked = sampleIndices(rows, SAMPLE_ROWS, 34);
      const expected = new Map<number, number>();
      for (const r of picked) {
        let mean = 0;
        for (let j = 0; j < width; j++) mean += x.data[r * width + j];
        mean /= width;
        let v = 0;
        for (let j = 0; j < width; j++) v += (x.data[r * width + j] - mean) ** 2;
        const inv = 1 / Math.sqrt(v / width + 1e-5);
        for (let j = 0; j < width; j++) {
          expected.set(
            r * width + j,
            (x.data[r * width + j] - mean) * inv * scale.data[j] + bias.data[j],
          );
        }
      }
      const ref = referenceAt(count, rowIndices(picked, width), (flat) => expected.get(flat)!);
      const res = new OursResources(gpu);
      const tx = res.upload(x, "X"), ts = res.upload(scale, "scale"), tb = res.upload(bias, "bias");
      const ty = res.alloc([rows, width], "Y");
      const dispatches = prepareLayerNorm(gpu, res.scope, tx, ts, tb, ty, {
        axis: -1,
        epsilon: 1e-5,
      });
      return Promise.resolve(prepared(dispatchRun(res, dispatches, ty), ref, {
        onnx: {
          model: singleOpModel("LayerNormalization", [["X", x]], [rows, width], {
            axis: { int: -1 },
            epsilon: { float: 1e-5 },
          }, [["scale", scale], ["bias", bias]]),
          inputs: { X: x },
          output: "Y",
        },
      }));
    },
  };
}

/** Softmax over the last axis of `shape`. */
export function softmaxCase(name: string, shape: readonly number[]): BenchCase {
  const width = shape[shape.length - 1];
  const count = sizeOf(shape), rows = count / width;
  return {
    name,
    shape: shape.join("x"),
    bytes: F32 * 2 * count,
    prepare({ gpu }) {
      const x = host(shape, 41, -4, 4);
      const picked = sampleIndices(rows, SAMPLE_ROWS, 42);
      const expected = new Map<number, number>();
      for (const r of picked) {
        let max = -Infinity;
        for (let j = 0; j < width; j++) max = Math.max(max, x.data[r * width + j]);
        let sum = 0;
        for (let j = 0; j < width; j++) sum += Math.exp(x.data[r * width + j] - max);
        for (let j = 0; j < width; j++) {
          expected.set(r * width + j, Math.exp(x.data[r * width + j] - max) / sum);
        }
      }
      const ref = referenceAt(count, rowIndices(picked, width), (flat) => expected.get(flat)!);
      const res = new OursResources(gpu);
      const tx = res.upload(x, "X"), ty = res.alloc(shape, "Y");
      const dispatches = prepareSoftmax(gpu, res.scope, tx, ty, -1);
      return Promise.resolve(prepared(dispatchRun(res, dispatches, ty), ref, {
        onnx: {
          model: singleOpModel("Softmax", [["X", x]], shape, { axis: { int: -1 } }),
          inputs: { X: x },
          output: "Y",
        },
      }));
    },
  };
}

/** GELU (erf form). The peers get the erf decomposition PyTorch exports below opset 20, which
 * onnxruntime fuses into its Gelu kernel. */
export function geluCase(name: string, shape: readonly number[]): BenchCase {
  const count = sizeOf(shape);
  return {
    name,
    shape: shape.join("x"),
    bytes: F32 * 2 * count,
    prepare({ gpu }) {
      const x = host(shape, 51, -4, 4);
      const ref = referenceAt(count, sampleIndices(count, 4096, 52), (i) => gelu(x.data[i]));
      const res = new OursResources(gpu);
      const tx = res.upload(x, "X"), ty = res.alloc(shape, "Y");
      const dispatches = prepareUnary(gpu, res.scope, "gelu", tx, ty);
      const g = new GraphBuilder("bench_gelu", 17);
      g.input("X", "float32", shape);
      const scalar = (v: number) => g.constant("c", cpuTensor("float32", [], [v]));
      const erf = g.op("Erf", [g.op("Div", ["X", scalar(Math.SQRT2)])]);
      const half = g.op("Mul", ["X", scalar(0.5)]);
      g.op("Mul", [half, g.op("Add", [erf, scalar(1)])], {}, "Y");
      g.output("Y", "float32", shape);
      return Promise.resolve(prepared(dispatchRun(res, dispatches, ty), ref, {
        onnx: { model: g.encode(), inputs: { X: x }, output: "Y" },
      }));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Causal self-attention (CLIP text encoder)

/** softmax(Q K^T / sqrt(d) + causal mask) V for `heads` independent heads of [tokens, dim].
 * Ours: the fused attention (what a model's decomposed pattern becomes), the causal mask applied
 * by skipping keys as the model's constant mask is. The peers run the decomposed graph. */
export function causalAttentionCase(
  name: string,
  heads: number,
  tokens: number,
  dim: number,
): BenchCase {
  const qShape = [heads, tokens, dim];
  const scale = 1 / Math.sqrt(dim);
  const count = heads * tokens * dim;
  return {
    name,
    shape: `${heads}x${tokens}x${dim}`,
    flops: 2 * 2 * heads * tokens * tokens * dim,
    bytes: F32 * (4 * count + tokens * tokens),
    prepare(ctx) {
      const { gpu } = ctx;
      const q = host(qShape, 61), k = host(qShape, 62), v = host(qShape, 63);
      const maskData = new Float32Array(tokens * tokens);
      for (let i = 0; i < tokens; i++) {
        for (let j = i + 1; j < tokens; j++) maskData[i * tokens + j] = -1e9;
      }
      const mask: F32Host = { shape: [tokens, tokens], data: maskData };
      const pickedRows = sampleIndices(heads * tokens, SAMPLE_ROWS, 64);
      const expected = new Map<number, number>();
      for (const row of pickedRows) {
        const hd = Math.floor(row / tokens), i = row % tokens;
        const p = new Float64Array(i + 1);
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let d = 0; d < dim; d++) {
            s += q.data[(hd * tokens + i) * dim + d] * k.data[(hd * tokens + j) * dim + d];
          }
          p[j] = s * scale;
          max = Math.max(max, p[j]);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += p[j] = Math.exp(p[j] - max);
        for (let d = 0; d < dim; d++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += p[j] * v.data[(hd * tokens + j) * dim + d];
          expected.set(row * dim + d, acc / sum);
        }
      }
      const ref = referenceAt(count, rowIndices(pickedRows, dim), (flat) => expected.get(flat)!);
      const res = new OursResources(gpu);
      const tq = res.upload(q, "Q"), tk = res.upload(k, "K"), tv = res.upload(v, "V");
      const to = res.alloc(qShape, "out");
      const st = contiguousStrides4([1, ...qShape]);
      const dispatches = prepareAttention(
        gpu,
        res.scope,
        { batch: 1, heads, sq: tokens, sk: tokens, dqk: dim, dv: dim },
        { tensor: tq, strides: st },
        { tensor: tk, strides: st },
        { tensor: tv, strides: st },
        { tensor: to, strides: st },
        { scale, causalOffset: 0, label: name },
      );
      const g = new GraphBuilder("bench_causal_attention", 17);
      for (const nm of ["Q", "K", "V"]) g.input(nm, "float32", qShape);
      const kt = g.op("Transpose", ["K"], { perm: { ints: [0, 2, 1] } });
      const scaled = g.op("Mul", [
        g.op("MatMul", ["Q", kt]),
        g.constant("scale", cpuTensor("float32", [], [scale])),
      ]);
      const masked = g.op("Add", [
        scaled,
        g.constant("mask", cpuTensor("float32", mask.shape, maskData)),
      ]);
      const probs = g.op("Softmax", [masked], { axis: { int: -1 } });
      g.op("MatMul", [probs, "V"], {}, "Y");
      g.output("Y", "float32", qShape);
      return Promise.resolve(
        prepared(dispatchRun(res, dispatches, to, { label: "fused attention" }), ref, {
          onnx: { model: g.encode(), inputs: { Q: q, K: k, V: v }, output: "Y" },
        }),
      );
    },
  };
}
