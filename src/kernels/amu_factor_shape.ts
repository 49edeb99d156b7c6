/** The uncertainty kinds of `shaders/amu_factor.wgsl` (its KIND override), shared by the binding,
 * the CPU reference and the AMU config (pure TS, no GPU). */

/** The eight kinds, in the order of the shader's KIND codes. */
export const UNCERTAINTY_KINDS = [
  "none",
  "entropy",
  "energy",
  "max",
  "max-min",
  "var",
  "top5",
  "moment",
] as const;

export type UncertaintyKind = typeof UNCERTAINTY_KINDS[number];

export function isUncertaintyKind(s: string): s is UncertaintyKind {
  return (UNCERTAINTY_KINDS as readonly string[]).includes(s);
}

/** The shader's KIND constant for a kind. */
export function uncertaintyCode(kind: UncertaintyKind): number {
  return UNCERTAINTY_KINDS.indexOf(kind);
}

/** Fewest classes a kind is defined for (top5 needs five probabilities; std needs two). */
export function minClassesFor(kind: UncertaintyKind): number {
  return kind === "top5" ? 5 : 2;
}
