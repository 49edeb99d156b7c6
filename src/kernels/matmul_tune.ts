/** Measured matmul variant choice (see variants.ts): `tuneMatmul` times the candidate variants
 * of `MATMUL_VARIANTS` on the problem's shape, on this adapter, and caches the fastest under
 * (MATMUL_KERNEL, `matmulProblemKey`). `prepareMatmul` consults that cache before its heuristic;
 * callers that prepare ahead (model planning with `tuneKernels`, the benchmark) tune first. */
import { allocTensor, type Gpu, releaseTensor, uploadCpuTensor } from "../gpu/mod.ts";
import { cpuTensor, sizeOf } from "../util/tensor.ts";
import {
  cachedMatmulVariant,
  chooseMatmulVariant,
  MATMUL_KERNEL,
  MATMUL_VARIANTS,
  type MatmulProblem,
  matmulProblemKey,
  type MatmulVariant,
  matmulVariantRefusal,
  prepareMatmul,
} from "./matmul.ts";
import {
  type TuneOptions,
  type TuneResult,
  tuneVariants,
  type VariantCache,
  variantCache,
} from "./variants.ts";

export { MATMUL_KERNEL, matmulProblemKey };

/** Variants worth measuring here, the heuristic default first (the baseline that slower
 * candidates are pruned against). Half-precision storage only where the problem allows it
 * (it rounds the operands), and only variants this device can run (shader-f16, workgroup
 * memory: `matmulVariantRefusal`). On llvmpipe, shared-memory tiles cannot win (same per-lane
 * load path as storage buffers plus barriers: ../shared/notes/llvmpipe-performance.md) and the
 * scalar kernel is a fallback for unaligned buffers, so both are left out there. Reads only
 * `summary.isLlvmpipe`, `hasF16` and `limits` of `gpu`. */
export function matmulCandidates(gpu: Gpu, problem: MatmulProblem): MatmulVariant[] {
  const fallbackOnly = gpu.summary.isLlvmpipe ? ["shared", "scalar"] : ["scalar"];
  const first = chooseMatmulVariant(gpu, problem);
  const rest = Object.values(MATMUL_VARIANTS).filter((v) =>
    v.name !== first.name && !fallbackOnly.includes(v.family) &&
    (!v.halves || problem.halvesAllowed === true) && matmulVariantRefusal(gpu, v) === undefined
  );
  return [first, ...rest];
}

/** The cached measured choice for this problem, if any. */
export function tunedMatmulVariant(
  gpu: Gpu,
  problem: MatmulProblem,
  cache: VariantCache = variantCache,
): MatmulVariant | undefined {
  return cachedMatmulVariant(gpu, problem, cache);
}

export interface MatmulTuneResult extends TuneResult {
  readonly variant: MatmulVariant;
}

/** Measures the candidates on scratch operands A [batch, M, K], B [batch, K, N] (precision
 * "f16" when `halvesAllowed`; a constant operand as one [M, K] / [K, N] weight given as a host
 * constant) and caches the fastest. */
export async function tuneMatmul(
  gpu: Gpu,
  problem: MatmulProblem,
  options: TuneOptions & { candidates?: readonly MatmulVariant[] } = {},
): Promise<MatmulTuneResult> {
  const { batch, m, k, n } = problem;
  const candidates = options.candidates ?? matmulCandidates(gpu, problem);
  const cache = options.cache ?? variantCache;
  const key = matmulProblemKey(problem);
  const cached = cachedMatmulVariant(gpu, problem, cache);
  if (cached && candidates.some((v) => v.name === cached.name)) {
    return { chosen: cached.name, trials: [], cached: true, variant: cached };
  }
  const lead = batch > 1 ? [batch] : [];
  // A constant operand is timed as models hold one: a weight shared by the batch, packed once.
  const aShape = problem.constantA ? [m, k] : [...lead, m, k];
  const bShape = problem.constantB ? [k, n] : [...lead, k, n];
  // Constant operands: timing does not depend on values, and fresh data keeps denormals (slow
  // on CPUs) out of reused pool buffers.
  const aHost = cpuTensor("float32", aShape, new Float32Array(sizeOf(aShape)).fill(0.5));
  const bHost = cpuTensor("float32", bShape, new Float32Array(sizeOf(bShape)).fill(0.5));
  const a = uploadCpuTensor(gpu, aHost, "tuning A");
  const b = uploadCpuTensor(gpu, bHost, "tuning B");
  const constants = {
    a: problem.constantA ? aHost : undefined,
    b: problem.constantB ? bHost : undefined,
  };
  const out = allocTensor(gpu, [...lead, m, n], "float32", "tuning output");
  try {
    const result = await tuneVariants(
      gpu,
      MATMUL_KERNEL,
      key,
      candidates.map((v) => ({
        name: v.name,
        prepare: (owner) =>
          prepareMatmul(gpu, owner, a, b, out, {
            variant: v,
            label: v.name,
            precision: problem.halvesAllowed ? "f16" : "f32",
            constants,
          }),
      })),
      { ...options, cache },
    );
    return { ...result, variant: MATMUL_VARIANTS[result.chosen] };
  } finally {
    for (const t of [a, b, out]) releaseTensor(gpu, t);
  }
}
