/** Kernel suites: square matmuls and the hot kernels of the models at the models' shapes.
 *
 * Default rows keep `deno task bench` to a few minutes on a 2-core llvmpipe machine; `--large`
 * adds matmul-2048, ViT-B/16's batch-8 projections and RN50 at batch 8 (each of those takes
 * seconds per invocation on the peers). */
import {
  causalAttentionCase,
  convCase,
  geluCase,
  layerNormCase,
  matmulCase,
  softmaxCase,
} from "../cases.ts";
import type { BenchCase, Suite } from "../types.ts";

export const matmulSuite: Suite = {
  name: "matmul",
  description: "square float32 matmuls 256-1024 (2048 with --large), and 1024 (2048) with " +
    "float16 operand storage",
  cases({ large }) {
    const sizes = large ? [256, 512, 1024, 2048] : [256, 512, 1024];
    const halves = large ? [1024, 2048] : [1024];
    return [
      ...sizes.map((s) => matmulCase({ name: `matmul-${s}`, m: s, k: s, n: s })),
      ...halves.map((s) =>
        matmulCase({ name: `matmul-${s}-f16`, m: s, k: s, n: s, precision: "f16" })
      ),
    ];
  },
};

/** ViT-B/16 at 224x224: 197 tokens, width 768, 12 heads of 64, MLP 3072. */
const VIT = { tokens: 197, width: 768, heads: 12, headDim: 64, mlp: 3072 };

function vitCases(batch: number, withProjections: boolean): BenchCase[] {
  const p = `vit-b16-b${batch}`;
  const rows = batch * VIT.tokens, bh = batch * VIT.heads;
  const { tokens: t, width: d, headDim: hd, mlp } = VIT;
  const cases: BenchCase[] = [];
  if (withProjections) {
    cases.push(
      matmulCase({ name: `${p}-qkv`, m: rows, k: d, n: 3 * d }),
      matmulCase({ name: `${p}-attn-out`, m: rows, k: d, n: d }),
      matmulCase({ name: `${p}-mlp-up`, m: rows, k: d, n: mlp }),
      matmulCase({ name: `${p}-mlp-down`, m: rows, k: mlp, n: d }),
    );
  }
  cases.push(
    matmulCase({ name: `${p}-attn-scores`, batch: [bh], m: t, k: hd, n: t }),
    softmaxCase(`${p}-softmax`, [bh, t, t]),
    matmulCase({ name: `${p}-attn-values`, batch: [bh], m: t, k: t, n: hd }),
    layerNormCase(`${p}-layernorm`, rows, d),
    geluCase(`${p}-gelu`, [rows, mlp]),
  );
  return cases;
}

export const vitSuite: Suite = {
  name: "vit",
  description: "ViT-B/16 kernels at batch 1 and 8 (batch-8 projections with --large)",
  cases: ({ large }) => [...vitCases(1, true), ...vitCases(8, large)],
};

/** ResNet-50 at 224x224: the 7x7 stem, and per stage its 3x3 conv and its 1x1 expansion. */
function rn50Cases(batch: number): BenchCase[] {
  const p = `rn50-b${batch}`;
  const cases = [
    convCase({
      name: `${p}-stem-7x7`,
      n: batch,
      c: 3,
      h: 224,
      w: 224,
      m: 64,
      kernel: 7,
      stride: 2,
      pad: 3,
    }),
  ];
  const stages = [[1, 56, 64], [2, 28, 128], [3, 14, 256], [4, 7, 512]] as const;
  for (const [stage, size, width] of stages) {
    const common = { n: batch, h: size, w: size, stride: 1 };
    cases.push(
      convCase({ ...common, name: `${p}-s${stage}-3x3`, c: width, m: width, kernel: 3, pad: 1 }),
      convCase({
        ...common,
        name: `${p}-s${stage}-1x1`,
        c: width,
        m: 4 * width,
        kernel: 1,
        pad: 0,
      }),
    );
  }
  return cases;
}

export const rn50Suite: Suite = {
  name: "rn50",
  description: "ResNet-50 convolutions at batch 1 (batch 8 with --large)",
  cases: ({ large }) => large ? [...rn50Cases(1), ...rn50Cases(8)] : rn50Cases(1),
};

/** CLIP text encoder: 77 tokens, 8 heads of 64; batch = prompts encoded together. */
export const textSuite: Suite = {
  name: "text",
  description: "CLIP text causal self-attention (77 tokens, 8 heads of 64) at batch 1 and 8",
  cases: () => [
    causalAttentionCase("text-b1-causal-attn", 8, 77, 64),
    causalAttentionCase("text-b8-causal-attn", 64, 77, 64),
  ],
};

export const KERNEL_SUITES: readonly Suite[] = [matmulSuite, vitSuite, rn50Suite, textSuite];
