/** Measured matmul variant choice (see variants.ts): `tuneMatmul` times the candidate variants
 * of `MATMUL_VARIANTS` on the problem's shape, on this adapter, and caches the fastest under
 * ("matmul", `matmulProblemKey`). `chooseMatmulVariant` can consult the cache with
 * `tunedMatmulVariant`; callers that prepare ahead (model load, benchmark) tune first. */
import { allocTensor, type Gpu, releaseTensor, uploadTensor } from "../gpu/mod.ts";
import {
  chooseMatmulVariant,
  MATMUL_VARIANTS,
  type MatmulProblem,
  type MatmulVariant,
  prepareMatmul,
} from "./matmul.ts";
import {
  problemKey,
  type TuneOptions,
  type TuneResult,
  tuneVariants,
  type VariantCache,
  variantCache,
} from "./variants.ts";

export const MATMUL_KERNEL = "matmul";

/** Cache key of a problem: batch x M x K x N, and `f16` when operands may be stored as halves
 * (a different set of candidates). */
export function matmulProblemKey(p: MatmulProblem): string {
  return problemKey(p.batch, p.m, p.k, p.n, ...(p.halvesAllowed ? ["f16"] : []));
}

/** Variants worth measuring here, the heuristic default first (the baseline that slower
 * candidates are pruned against). Half-precision storage only where the problem allows it
 * (it rounds the operands). On llvmpipe, shared-memory tiles cannot win (same per-lane load
 * path as storage buffers plus barriers: ../shared/notes/llvmpipe-performance.md) and the
 * scalar kernel is a fallback for unaligned buffers, so both are left out there. */
export function matmulCandidates(gpu: Gpu, problem: MatmulProblem): MatmulVariant[] {
  const fallbackOnly = gpu.summary.isLlvmpipe ? ["shared", "scalar"] : ["scalar"];
  const first = chooseMatmulVariant(gpu, problem);
  const rest = Object.values(MATMUL_VARIANTS).filter((v) =>
    v.name !== first.name && !fallbackOnly.includes(v.family) &&
    (!v.halves || problem.halvesAllowed === true)
  );
  return [first, ...rest];
}

/** The cached measured choice for this problem, if any. */
export function tunedMatmulVariant(
  gpu: Gpu,
  problem: MatmulProblem,
  cache: VariantCache = variantCache,
): MatmulVariant | undefined {
  const name = cache.get(gpu, MATMUL_KERNEL, matmulProblemKey(problem));
  return name === undefined ? undefined : MATMUL_VARIANTS[name];
}

export interface MatmulTuneResult extends TuneResult {
  readonly variant: MatmulVariant;
}

/** Measures the candidates on scratch operands A [batch, M, K], B [batch, K, N] (precision
 * "f16" when `halvesAllowed`) and caches the fastest. */
export async function tuneMatmul(
  gpu: Gpu,
  problem: MatmulProblem,
  options: TuneOptions & { candidates?: readonly MatmulVariant[] } = {},
): Promise<MatmulTuneResult> {
  const { batch, m, k, n } = problem;
  const candidates = options.candidates ?? matmulCandidates(gpu, problem);
  const cache = options.cache ?? variantCache;
  const key = matmulProblemKey(problem);
  const cached = cache.get(gpu, MATMUL_KERNEL, key);
  if (cached !== undefined && MATMUL_VARIANTS[cached]) {
    return { chosen: cached, trials: [], cached: true, variant: MATMUL_VARIANTS[cached] };
  }
  const lead = batch > 1 ? [batch] : [];
  // Constant operands: timing does not depend on values, and fresh data keeps denormals (slow
  // on CPUs) out of reused pool buffers.
  const a = uploadTensor(
    gpu,
    new Float32Array(batch * m * k).fill(0.5),
    [...lead, m, k],
    "float32",
  );
  const b = uploadTensor(
    gpu,
    new Float32Array(batch * k * n).fill(0.5),
    [...lead, k, n],
    "float32",
  );
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
          }),
      })),
      { ...options, cache },
    );
    return { ...result, variant: MATMUL_VARIANTS[result.chosen] };
  } finally {
    for (const t of [a, b, out]) releaseTensor(gpu, t);
  }
}
