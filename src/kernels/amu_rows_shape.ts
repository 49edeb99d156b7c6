/** What `shaders/amu_rows.wgsl` writes besides gradients: an evaluation row's hit bits and the
 * evaluation totals (pure TS, no GPU). */

/** Bits of an evaluation row's hits (the shader's HIT_FUSED, HIT_AUX, HIT_CLIP). */
export const HIT_FUSED = 1;
export const HIT_AUX = 2;
export const HIT_CLIP = 4;

/** Totals of one evaluation (sums over the test rows). */
export interface EvalTotals {
  lossMerge: number;
  lossAux: number;
  fusedHits: number;
  auxHits: number;
  clipHits: number;
}

/** Floats `totals_main` writes from its `outOffset`, in this order: (sum loss_merge,
 * sum loss_aux, fused hits, aux hits, clip hits). */
export const EVAL_TOTALS_WORDS = 5;

/** The totals `totals_main` wrote at the start of `words`. */
export function unpackEvalTotals(words: Float32Array): EvalTotals {
  return {
    lossMerge: words[0],
    lossAux: words[1],
    fusedHits: words[2],
    auxHits: words[3],
    clipHits: words[4],
  };
}
