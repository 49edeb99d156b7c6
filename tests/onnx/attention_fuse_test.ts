/** The attention fusion (src/onnx/fuse.ts -> engine.Attention) on the shared fixture graphs: it
 * fires on every attention (ViT, text with its causal mask, ModifiedResNet's attention pool),
 * removes the Softmax and the head transposes, and leaves the outputs equal to the unfused
 * graph's and to the float64 references. Also: near misses stay unfused, and the ONNX Attention
 * conformance cases the kernel covers pass. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { getGpu } from "../../src/gpu/mod.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModel, loadModelBytes, Model } from "../../src/onnx/executor.ts";
import { OPS } from "../../src/onnx/ops/registry.ts";
import { selectTower } from "../../src/models/arch/mod.ts";
import { causalOffset } from "../../src/onnx/ops/attention.ts";
import { runCase } from "../../tasks/conformance.ts";
import { assertClose, randomFloats, sharedPath } from "../helpers.ts";
import { assertMatchesReference, encoderCases } from "../models/fixture.ts";
import {
  modifiedResNetShapes,
  randomStateDict,
  textShapes,
  vitShapes,
} from "../models/arch_synthetic.ts";

/** Fixture file -> attentions fused (one per transformer layer, one per attention pool). */
const EXPECTED: Record<string, number> = {
  "clip_vit_tiny.opset14.onnx": 2,
  "clip_vit_tiny.opset17.onnx": 2,
  "clip_vit_tiny.opset14.fp16w.onnx": 2,
  "clip_text_tiny.opset14.onnx": 2,
  "clip_text_fullvocab_tiny.opset14.onnx": 1,
  "clip_rn_tiny.opset14.onnx": 1,
};

for (
  const name of ["clip_vit_tiny", "clip_text_tiny", "clip_text_fullvocab_tiny", "clip_rn_tiny"]
) {
  const dir = sharedPath("fixtures", name);
  if (!dir) continue;
  for (const c of encoderCases(dir)) {
    Deno.test(`attention fusion: ${c.label}`, async () => {
      const file = c.path.split("/").pop()!;
      const gpu = await getGpu();
      const fused = await loadModel(c.path, gpu);
      const plain = await loadModel(c.path, gpu, { fuse: false });
      try {
        assert.equal(fused.fusion?.attentions, EXPECTED[file], `${file}: attentions fused`);
        const ops = fused.graph.nodes.map((n) => n.opType);
        const count = (op: string, list: string[]) => list.filter((o) => o === op).length;
        const plainOps = plain.graph.nodes.map((n) => n.opType);
        assert.equal(count("Attention", ops), EXPECTED[file]);
        assert.equal(count("Softmax", ops), 0);
        // Each attention absorbs four transposes (q, k, v split and the merge).
        assert.equal(
          count("Transpose", plainOps) - count("Transpose", ops),
          4 * EXPECTED[file],
        );
        const input = { [fused.inputs[0].name]: c.input };
        const a = Object.values(await fused.run(input))[0];
        const b = Object.values(await plain.run(input))[0];
        assertClose(a.data, b.data, { rtol: 1e-5, atol: 1e-6, label: `${c.label} fused vs not` });
        const s = assertMatchesReference(a.data, c.reference, c.label, 1e-5, 1e-6);
        console.log(`  ${c.label}: max|y - ref| ${s.maxErr.toExponential(2)}`);
      } finally {
        fused.dispose();
        plain.dispose();
      }
    });
  }
}

Deno.test("attention fusion: the text tower's mask is recognised as causal", () => {
  const mask = cpuTensor("float32", [5, 5]);
  for (let i = 0; i < 5; i++) for (let j = i + 1; j < 5; j++) mask.data[i * 5 + j] = -Infinity;
  assert.equal(causalOffset(mask, 5, 5), 0);
  const shifted = cpuTensor("float32", [1, 3, 5]);
  for (let i = 0; i < 3; i++) for (let j = i + 3; j < 5; j++) shifted.data[i * 5 + j] = -Infinity;
  assert.equal(causalOffset(shifted, 3, 5), 2);
  mask.data[3] = -1e9; // finite: not the same function
  assert.equal(causalOffset(mask, 5, 5), undefined);
});

/** A rank-3 attention with scale on the scores (Div), a runtime mask and no transposes around
 * v or the output, as some exporters write it; plus a second Softmax whose scores are read
 * twice (not fused). */
function graph(misses: boolean): Uint8Array {
  const g = new GraphBuilder("attn", 14);
  const q = g.input("q", "float32", [3, 7, 16]);
  const k = g.input("k", "float32", [3, 9, 16]);
  const v = g.input("v", "float32", [3, 9, 5]);
  const m = g.input("m", "float32", [3, 7, 9]);
  const kt = g.op("Transpose", [k], { perm: { ints: [0, 2, 1] } });
  const s = g.op("Div", [
    g.op("MatMul", [q, kt]),
    g.constant("d", cpuTensor("float32", [], [4])),
  ]);
  const p = g.op("Softmax", [g.op("Add", [s, m])], { axis: -1 });
  let y = g.op("MatMul", [p, v]);
  if (misses) {
    const s2 = g.op("MatMul", [q, g.op("Transpose", [k], { perm: { ints: [0, 2, 1] } })]);
    const p2 = g.op("Softmax", [s2], { axis: -1 });
    // s2 is also read by the ReduceMean: its pattern must stay as written.
    const mean = g.op("ReduceMean", [s2], { axes: { ints: [2] }, keepdims: { int: 1 } });
    y = g.op("Add", [g.op("Add", [y, g.op("MatMul", [p2, v])]), mean]);
  }
  g.output(y, "float32", [3, 7, 5]);
  return g.encode();
}

Deno.test("attention fusion: rank 3, Div scale, runtime mask; shared scores stay unfused", async () => {
  const inputs: Record<string, CpuTensor> = {
    q: cpuTensor("float32", [3, 7, 16], randomFloats(3 * 7 * 16, 1, -2, 2)),
    k: cpuTensor("float32", [3, 9, 16], randomFloats(3 * 9 * 16, 2, -2, 2)),
    v: cpuTensor("float32", [3, 9, 5], randomFloats(3 * 9 * 5, 3)),
    m: cpuTensor("float32", [3, 7, 9], randomFloats(3 * 7 * 9, 4, -2, 0)),
  };
  for (const misses of [false, true]) {
    const bytes = graph(misses);
    const fused = await loadModelBytes(bytes, { source: "attention" });
    const plain = await loadModelBytes(bytes, { source: "attention", fuse: false });
    try {
      assert.equal(fused.fusion?.attentions, 1);
      assert.equal(fused.graph.nodes.filter((n) => n.opType === "Softmax").length, misses ? 1 : 0);
      const a = await fused.run(inputs);
      const b = await plain.run(inputs);
      const name = Object.keys(b)[0];
      assertClose(a[name].data, b[name].data, {
        rtol: 1e-5,
        atol: 1e-6,
        label: `misses ${misses}`,
      });
    } finally {
      fused.dispose();
      plain.dispose();
    }
  }
});

/** ONNX Attention cases the kernel covers: 3-D and 4-D, float and bool masks, causal, scaled,
 * softcap, grouped-query heads, different q/k and v head sizes, fully masked rows. Not covered
 * (unsupported, see src/onnx/ops/attention.ts): past/present keys, nonpad_kv_seqlen, the
 * qk_matmul output. */
const CONFORMANCE = [
  "test_attention_23_boolmask_fullymasked_row_nan_robustness",
  "test_attention_3d",
  "test_attention_3d_attn_mask",
  "test_attention_3d_causal",
  "test_attention_3d_diff_heads_sizes",
  "test_attention_3d_diff_heads_sizes_attn_mask",
  "test_attention_3d_diff_heads_sizes_causal",
  "test_attention_3d_diff_heads_sizes_scaled",
  "test_attention_3d_diff_heads_sizes_softcap",
  "test_attention_3d_gqa",
  "test_attention_3d_gqa_attn_mask",
  "test_attention_3d_gqa_causal",
  "test_attention_3d_gqa_scaled",
  "test_attention_3d_gqa_softcap",
  "test_attention_3d_scaled",
  "test_attention_3d_softcap",
  "test_attention_3d_transpose_verification",
  "test_attention_4d",
  "test_attention_4d_attn_mask",
  "test_attention_4d_attn_mask_3d",
  "test_attention_4d_attn_mask_3d_causal",
  "test_attention_4d_attn_mask_4d",
  "test_attention_4d_attn_mask_4d_causal",
  "test_attention_4d_attn_mask_bool",
  "test_attention_4d_attn_mask_bool_4d",
  "test_attention_4d_causal",
  "test_attention_4d_diff_heads_sizes",
  "test_attention_4d_diff_heads_sizes_attn_mask",
  "test_attention_4d_diff_heads_sizes_causal",
  "test_attention_4d_diff_heads_sizes_scaled",
  "test_attention_4d_diff_heads_sizes_softcap",
  "test_attention_4d_fp16",
  "test_attention_4d_gqa",
  "test_attention_4d_gqa_attn_mask",
  "test_attention_4d_gqa_causal",
  "test_attention_4d_gqa_scaled",
  "test_attention_4d_gqa_softcap",
  "test_attention_4d_scaled",
  "test_attention_4d_softcap",
  "test_attention_4d_softcap_neginf_mask",
  "test_attention_4d_softcap_neginf_mask_poison",
  "test_attention_causal_boolmask_nan_robustness",
];

Deno.test("ONNX Attention: the conformance cases the fused kernel covers pass", async () => {
  const root = sharedPath("onnx-backend-tests", "node");
  if (!root) return;
  const gpu = await getGpu();
  const bad: string[] = [];
  for (const name of CONFORMANCE) {
    const r = await runCase(gpu, { name, dir: join(root, name) });
    if (r.status !== "pass") bad.push(`${name}: ${r.status} ${r.reason ?? ""}`);
  }
  assert.deepEqual(bad, []);
});

/** The graphs src/models/arch builds from checkpoints (Split q/k/v, the same head transposes):
 * ViT and text transformer layers and the ModifiedResNet attention pool all fuse. */
Deno.test("attention fusion: graphs built from checkpoints (src/models/arch)", async () => {
  const gpu = await getGpu();
  const towers = [
    {
      sd: randomStateDict(vitShapes({ width: 64, patch: 8, grid: 3, layers: 2, embed: 16 })),
      tower: "visual" as const,
      input: cpuTensor("float32", [2, 3, 24, 24], randomFloats(2 * 3 * 24 * 24, 5)),
      attentions: 2,
    },
    {
      sd: randomStateDict(textShapes({ width: 64, vocab: 50, context: 9, layers: 2, embed: 16 })),
      tower: "text" as const,
      input: cpuTensor("int64", [2, 9], [
        48,
        3,
        7,
        49,
        0,
        0,
        0,
        0,
        0,
        48,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        49,
      ]),
      attentions: 2,
    },
    {
      sd: randomStateDict(
        modifiedResNetShapes({ width: 16, stages: [1, 1, 1, 1], resolution: 64, embed: 16 }),
      ),
      tower: "visual" as const,
      input: cpuTensor("float32", [2, 3, 64, 64], randomFloats(2 * 3 * 64 * 64, 6)),
      attentions: 1,
    },
  ];
  for (const t of towers) {
    const parsed = selectTower(t.sd, t.tower).build().toParsedModel("synthetic.pt", OPS);
    const fused = new Model(gpu, parsed, OPS);
    const plain = new Model(gpu, parsed, OPS, { fuse: false });
    try {
      assert.equal(fused.fusion?.attentions, t.attentions);
      const name = fused.inputs[0].name;
      const a = Object.values(await fused.run({ [name]: t.input }))[0];
      const b = Object.values(await plain.run({ [name]: t.input }))[0];
      assertClose(a.data, b.data, { rtol: 1e-5, atol: 1e-6, label: `${t.tower} arch graph` });
    } finally {
      fused.dispose();
      plain.dispose();
    }
  }
});
