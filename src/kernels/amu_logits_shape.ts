/** How `shaders/amu_logits.wgsl` reads its class matrix (pure TS, no GPU). */

/** How the class matrix B is stored: "classes-major" [C, K] (the head W, read transposed) or
 * "depth-major" [K, C] (CLIP's zero-shot weights). */
export type ClassMatrixLayout = "classes-major" | "depth-major";
