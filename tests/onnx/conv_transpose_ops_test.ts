/** ConvTranspose, InstanceNormalization and GroupNormalization as ONNX operators: attribute
 * forms (explicit pads, auto_pad, output_shape, output_padding, groups; opset 18 and 21 norm
 * parameters, epsilon, stash_type), run through the executor on the GPU and through constant
 * folding (CPU references), shape inference, and attribute errors that name the node. */
import { deepStrictEqual as assertEquals, rejects, throws } from "node:assert/strict";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { convTransposeRef } from "../../src/kernels/conv_transpose_ref.ts";
import type { ConvTransposeAttrs } from "../../src/kernels/conv_shape.ts";
import { groupNormRef } from "../../src/kernels/groupnorm_ref.ts";
import { groupNormLayout } from "../../src/kernels/groupnorm_shape.ts";
import { type BuilderAttr, GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/executor.ts";
import { UnsupportedFeatureError } from "../../src/onnx/graph.ts";
import { convTransposeOps } from "../../src/onnx/ops/conv_transpose.ts";
import { normalizationOps } from "../../src/onnx/ops/normalization.ts";
import { type AttrValue, NodeError, type OpImpl, type TensorInfo } from "../../src/onnx/types.ts";
import { type NodeOptions, opNode, randomF32, runNode, throwsOnInfer } from "./harness.ts";

/** Every input a graph input (W packed on the GPU), every input but X an initializer (W packed
 * on the host), and constant folding (the CPU reference). */
const PATHS = {
  gpuRuns: { inputs: [], weights: "weights" },
  tol: { rtol: 1e-4, atol: 1e-5 },
} satisfies NodeOptions;

/** The expected output through the kernel reference with pads worked out by hand. */
function expectTranspose(
  x: CpuTensor,
  w: CpuTensor,
  b: CpuTensor | undefined,
  attrs: Partial<ConvTransposeAttrs> & { pads: number[] },
): CpuTensor {
  const rank = x.shape.length - 2;
  const y = convTransposeRef(x.data, x.shape, w.data, w.shape, b?.data, {
    strides: Array(rank).fill(1),
    dilations: Array(rank).fill(1),
    group: 1,
    ...attrs,
  });
  return cpuTensor(x.dtype, y.shape, y.data);
}

const info = (...shape: number[]): TensorInfo => ({ dtype: "float32", shape });

/** The shape `op` infers for a node with `attrs` and the input shapes. */
function inferShape(
  op: OpImpl,
  opType: string,
  attrs: Record<string, AttrValue>,
  inputs: TensorInfo[],
  opset = 22,
): number[] {
  return [...op.infer({ node: opNode(opType, attrs, inputs.length), opset }, inputs)[0].shape];
}

const CT = convTransposeOps.ConvTranspose;

Deno.test("onnx ConvTranspose: explicit pads, auto_pad SAME_UPPER / SAME_LOWER / VALID, output padding", async () => {
  const x = randomF32([2, 3, 5, 4], 1);
  const w = randomF32([3, 2, 3, 2], 2);
  const b = randomF32([2], 3);
  // Full output: H 2 * 4 + 3 = 11, W 3 * 3 + 2 = 11. SAME_*: 10 (total 1) and 12 (total -1,
  // split by floor division as the ONNX reference does).
  const cases: [Record<string, BuilderAttr>, Partial<ConvTransposeAttrs> & { pads: number[] }][] = [
    [{ strides: [2, 3], pads: [1, 0, 2, 1] }, { strides: [2, 3], pads: [1, 0, 2, 1] }],
    [{ strides: [2, 3], auto_pad: "SAME_UPPER" }, { strides: [2, 3], pads: [0, -1, 1, 0] }],
    [{ strides: [2, 3], auto_pad: "SAME_LOWER" }, { strides: [2, 3], pads: [1, 0, 0, -1] }],
    [{ strides: [2, 3], auto_pad: "VALID", pads: [1, 1, 1, 1] }, {
      strides: [2, 3],
      pads: [0, 0, 0, 0],
    }],
    [
      { strides: [2, 3], output_padding: [1, 2], dilations: [2, 1], kernel_shape: [3, 2] },
      { strides: [2, 3], outputPadding: [1, 2], dilations: [2, 1], pads: [0, 0, 0, 0] },
    ],
  ];
  for (const [attrs, resolved] of cases) {
    await runNode("ConvTranspose", [x, w, b], {
      ...PATHS,
      opset: 11,
      attrs,
      expect: [expectTranspose(x, w, b, resolved)],
      label: JSON.stringify(attrs),
    });
  }
});

Deno.test("onnx ConvTranspose: output_shape (spatial or whole), the ONNX example", async () => {
  // test_convtranspose_output_shape: X = 0..8, W = ones, strides [3, 2], output_shape [10, 8]
  // (the full output is 9 x 7: one more row and column of zeros at the end).
  const x = cpuTensor("float32", [1, 1, 3, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  const w = cpuTensor("float32", [1, 2, 3, 3], new Array(18).fill(1));
  const row0 = [0, 0, 1, 1, 3, 2, 2, 0];
  for (const outputShape of [[10, 8], [1, 2, 10, 8]]) {
    const got = await runNode("ConvTranspose", [x, w], {
      ...PATHS,
      opset: 11,
      attrs: { strides: [3, 2], output_shape: outputShape },
    });
    for (const [t] of Object.values(got)) {
      assertEquals([...t.shape], [1, 2, 10, 8]);
      assertEquals(Array.from(t.data.slice(0, 8)), row0);
      assertEquals(Array.from(t.data.slice(72, 80)), new Array(8).fill(0)); // last row
    }
  }
  // A shorter output_shape crops: total padding 2 per axis, split 1 + 1.
  const xr = randomF32([1, 2, 4, 3], 4);
  const wr = randomF32([2, 3, 3, 3], 5);
  await runNode("ConvTranspose", [xr, wr], {
    ...PATHS,
    opset: 11,
    attrs: { strides: [2, 2], output_shape: [7, 5] },
    expect: [expectTranspose(xr, wr, undefined, { strides: [2, 2], pads: [1, 1, 1, 1] })],
    label: "output_shape crops",
  });
});

Deno.test("onnx ConvTranspose: groups, 1-D, 3-D, float16", async () => {
  const x1 = randomF32([2, 4, 7], 6);
  const w1 = randomF32([4, 3, 3], 7);
  const b1 = randomF32([6], 8);
  await runNode("ConvTranspose", [x1, w1, b1], {
    ...PATHS,
    opset: 11,
    attrs: { group: 2, strides: [2], pads: [1, 0] },
    expect: [expectTranspose(x1, w1, b1, { group: 2, strides: [2], pads: [1, 0] })],
    label: "grouped 1-D",
  });
  const x3 = randomF32([1, 2, 2, 3, 3], 9);
  const w3 = randomF32([2, 3, 2, 2, 3], 10);
  await runNode("ConvTranspose", [x3, w3], {
    ...PATHS,
    opset: 22,
    attrs: { strides: [1, 2, 2], output_padding: [0, 1, 1] },
    expect: [
      expectTranspose(x3, w3, undefined, {
        strides: [1, 2, 2],
        outputPadding: [0, 1, 1],
        pads: [0, 0, 0, 0, 0, 0],
      }),
    ],
    label: "3-D",
  });
  const half = (t: CpuTensor) => cpuTensor("float16", t.shape, t.data);
  const xh = half(randomF32([1, 3, 4, 5], 11)),
    wh = half(randomF32([3, 5, 2, 2], 12)),
    bh = half(randomF32([5], 13));
  // Every path's outputs must also hold half values (runNode checks float16 outputs).
  await runNode("ConvTranspose", [xh, wh, bh], {
    ...PATHS,
    opset: 11,
    attrs: { strides: [2, 2] },
    expect: [expectTranspose(xh, wh, bh, { strides: [2, 2], pads: [0, 0, 0, 0] })],
    tol: { rtol: 2e-3, atol: 1e-3 },
    label: "float16",
  });
});

Deno.test("ConvTranspose shape inference", () => {
  const x = info(1, 4, 5, 6), w = info(4, 3, 3, 3);
  assertEquals(inferShape(CT, "ConvTranspose", {}, [x, w]), [1, 3, 7, 8]);
  assertEquals(inferShape(CT, "ConvTranspose", { strides: [2, 3] }, [x, w]), [1, 3, 11, 18]);
  assertEquals(inferShape(CT, "ConvTranspose", { group: 2 }, [x, info(4, 3, 3, 3)]), [1, 6, 7, 8]);
  assertEquals(
    inferShape(CT, "ConvTranspose", { strides: [2, 2], auto_pad: "SAME_LOWER" }, [x, w]),
    [1, 3, 10, 12],
  );
  assertEquals(
    inferShape(CT, "ConvTranspose", { strides: [2, 2], output_shape: [12, 13] }, [x, w]),
    [1, 3, 12, 13],
  );
  assertEquals(
    inferShape(
      CT,
      "ConvTranspose",
      { pads: [1, 2, 0, 1], output_padding: [1, 0], strides: [2, 2] },
      [x, w],
    ),
    [1, 3, 11, 10],
  );
  assertEquals(
    inferShape(CT, "ConvTranspose", { dilations: [2] }, [info(2, 1, 9), info(1, 1, 4)]),
    [2, 1, 15],
  );
  assertEquals(
    inferShape(CT, "ConvTranspose", {}, [x, w, info(3)]),
    [1, 3, 7, 8],
  );
});

Deno.test("ConvTranspose attribute errors name the node", () => {
  const x = info(1, 4, 5, 6), w = info(4, 3, 3, 3);
  const bad: [Record<string, AttrValue>, TensorInfo[], RegExp][] = [
    [{ strides: [2] }, [x, w], /strides has 1 values, expected 2/],
    [{ dilations: [1, 0] }, [x, w], /dilations .* must be integers >= 1/],
    [{ output_padding: [1, -1] }, [x, w], /output_padding/],
    [{ pads: [1, 1] }, [x, w], /pads has 2 values for 2 spatial axes/],
    [{ auto_pad: "SAME" }, [x, w], /unknown auto_pad 'SAME'/],
    [{ output_shape: [7] }, [x, w], /output_shape has 1 values for 2 spatial axes/],
    [{ kernel_shape: [3, 2] }, [x, w], /kernel_shape \[3,2\] does not match/],
    [{ group: 3 }, [x, w], /group 3 does not divide the 4 input channels/],
    [{ group: 0 }, [x, w], /group must be a positive integer/],
    [{}, [x, info(2, 3, 3, 3)], /W has 2 input channels/],
    [{}, [x, info(4, 3, 3)], /W has rank 3, X has rank 4/],
    [{}, [x, w, info(4)], /B has shape \[4\], expected \[3\]/],
    [{}, [info(4, 5), info(4, 5)], /needs N, C and spatial axes/],
    [{ pads: [4, 0, 5, 0] }, [x, w], /remove the whole output/],
  ];
  for (const [attrs, inputs, message] of bad) {
    throwsOnInfer("ConvTranspose", attrs, inputs, message, 22);
  }
  throws(
    () =>
      CT.infer({ node: opNode("ConvTranspose", {}, 2), opset: 22 }, [
        info(1, 1, 2, 2, 2, 2),
        info(1, 1, 1, 1, 1, 1),
      ]),
    UnsupportedFeatureError,
  );
  throws(
    () =>
      CT.infer({ node: opNode("ConvTranspose", {}, 2), opset: 22 }, [{
        dtype: "int32",
        shape: [1, 1, 3],
      }, info(1, 1, 1)]),
    UnsupportedFeatureError,
  );
});

Deno.test("ConvTranspose with a missing W names the node", async () => {
  const b = new GraphBuilder("t", 11);
  b.input("x", "float32", [1, 1, 3]);
  b.op("ConvTranspose", ["x"], {}, "y");
  b.output("y", "float32", []);
  const model = await loadModelBytes(b.encode());
  try {
    await rejects(
      model.run({ x: randomF32([1, 1, 3], 40) }),
      (e: Error) =>
        e instanceof NodeError && /'ConvTranspose_0'.*input 1 \(W\) is missing/.test(e.message),
    );
  } finally {
    model.dispose();
  }
});

// ---- InstanceNormalization / GroupNormalization ----

const IN = normalizationOps.InstanceNormalization;
const GN = normalizationOps.GroupNormalization;

function expectNorm(
  x: CpuTensor,
  groups: number,
  perChannel: boolean,
  scale: CpuTensor,
  bias: CpuTensor,
  epsilon: number,
): CpuTensor {
  const layout = groupNormLayout(x.shape, groups, perChannel);
  return cpuTensor(x.dtype, x.shape, groupNormRef(x.data, layout, scale.data, bias.data, epsilon));
}

Deno.test("onnx InstanceNormalization: opsets 6 and 22, epsilon, 1-D to 3-D", async () => {
  for (
    const [shape, opset, epsilon] of [[[2, 3, 4, 5], 6, 1e-5], [[1, 5, 7], 22, 0.01], [
      [2, 2, 3, 2, 3],
      22,
      1e-3,
    ]] as const
  ) {
    const x = randomF32([...shape], 20, -2, 3);
    const c = shape[1];
    const s = randomF32([c], 21, 0.5, 1.5), bias = randomF32([c], 22);
    await runNode("InstanceNormalization", [x, s, bias], {
      ...PATHS,
      opset,
      attrs: { epsilon },
      expect: [expectNorm(x, c, true, s, bias, epsilon)],
      label: `instance norm ${shape} @${opset}`,
    });
  }
});

Deno.test("onnx GroupNormalization: opset 18 (per-group parameters), 21 (per channel), stash_type", async () => {
  const x = randomF32([3, 6, 5, 3], 30, -1, 4);
  const sg = randomF32([2], 31, 0.5, 1.5), bg = randomF32([2], 32);
  await runNode("GroupNormalization", [x, sg, bg], {
    ...PATHS,
    opset: 18,
    attrs: { num_groups: 2, epsilon: 1e-3 },
    expect: [expectNorm(x, 2, false, sg, bg, 1e-3)],
    label: "opset 18",
  });
  const sc = randomF32([6], 33, 0.5, 1.5), bc = randomF32([6], 34);
  for (const stash of [undefined, 1]) {
    const attrs: Record<string, BuilderAttr> = { num_groups: 3 };
    if (stash !== undefined) attrs.stash_type = stash;
    await runNode("GroupNormalization", [x, sc, bc], {
      ...PATHS,
      opset: 21,
      attrs,
      expect: [expectNorm(x, 3, true, sc, bc, 1e-5)],
      label: `opset 21 stash ${stash}`,
    });
  }
  // float16 tensors: half-precision outputs.
  const half = (t: CpuTensor) => cpuTensor("float16", t.shape, t.data);
  // Every path's outputs must also hold half values (runNode checks float16 outputs).
  const want = expectNorm(half(x), 2, true, half(sc), half(bc), 1e-5);
  await runNode("GroupNormalization", [half(x), half(sc), half(bc)], {
    ...PATHS,
    opset: 21,
    attrs: { num_groups: 2 },
    expect: [cpuTensor("float16", want.shape, want.data)],
    tol: { rtol: 2e-3, atol: 2e-3 },
    label: "float16",
  });
});

Deno.test("Instance/GroupNormalization shape inference and errors name the node", () => {
  const x = info(2, 6, 4, 4);
  assertEquals(inferShape(IN, "InstanceNormalization", {}, [x, info(6), info(6)]), [2, 6, 4, 4]);
  assertEquals(inferShape(GN, "GroupNormalization", { num_groups: 3 }, [x, info(6), info(6)], 21), [
    2,
    6,
    4,
    4,
  ]);
  assertEquals(inferShape(GN, "GroupNormalization", { num_groups: 3 }, [x, info(3), info(3)], 18), [
    2,
    6,
    4,
    4,
  ]);
  throwsOnInfer(
    "InstanceNormalization",
    {},
    [x, info(3), info(6)],
    /scale has shape \[3\], expected \[6\]/,
    22,
  );
  throwsOnInfer("InstanceNormalization", {}, [x, info(6)], /input 2 \(B\) is missing/, 22);
  throwsOnInfer("InstanceNormalization", {}, [info(6), info(6), info(6)], /needs N, C/, 22);
  throwsOnInfer(
    "GroupNormalization",
    {},
    [x, info(6), info(6)],
    /missing attribute 'num_groups'/,
    21,
  );
  throwsOnInfer(
    "GroupNormalization",
    { num_groups: 4 },
    [x, info(6), info(6)],
    /num_groups 4 must divide the 6 channels/,
    21,
  );
  // Opset 18 wants one value per group, opset 21 one per channel.
  throwsOnInfer(
    "GroupNormalization",
    { num_groups: 3 },
    [x, info(6), info(6)],
    /expected \[3\] \(one per group in opset 18\)/,
    18,
  );
  throwsOnInfer(
    "GroupNormalization",
    { num_groups: 3 },
    [x, info(3), info(3)],
    /expected \[6\] \(one per channel in opset 21\)/,
    21,
  );
  throwsOnInfer(
    "GroupNormalization",
    { num_groups: 3, stash_type: 6 },
    [x, info(6), info(6)],
    /stash_type 6/,
    21,
  );
  throwsOnInfer(
    "GroupNormalization",
    { num_groups: 3, epsilon: -1 },
    [x, info(6), info(6)],
    /epsilon -1/,
    21,
  );
});
