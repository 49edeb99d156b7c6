/** The conv-family ONNX operators in their attribute forms (auto_pad, inferred kernel_shape,
 * opset-dependent attributes), run through the executor on the GPU and through constant folding
 * (CPU references). */
import { rejects } from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { batchNormRef } from "../../src/kernels/batchnorm_ref.ts";
import { batchNormLayout } from "../../src/kernels/batchnorm_shape.ts";
import { convRef } from "../../src/kernels/conv_ref.ts";
import { avgPoolRef, maxPoolRef } from "../../src/kernels/pool_ref.ts";
import type { PoolAttrs } from "../../src/kernels/pool_shape.ts";
import type { BuilderAttr } from "../../src/onnx/builder.ts";
import { type NodeOptions, randomF32, runNode } from "./harness.ts";

/** Every input a graph input (W packed on the GPU), every input but X an initializer (W packed
 * on the host), and constant folding (the CPU reference): each must match the kernel reference. */
const PATHS = {
  gpuRuns: { inputs: [], weights: "weights" },
  tol: { rtol: 1e-4, atol: 1e-5 },
} satisfies NodeOptions;

Deno.test("onnx Conv: explicit pads, auto_pad SAME_UPPER / SAME_LOWER / VALID, no kernel_shape", async () => {
  const x = randomF32([2, 3, 9, 7], 1);
  const w = randomF32([4, 3, 4, 2], 2);
  const b = randomF32([4], 3);
  const cases: [Record<string, BuilderAttr>, number[]][] = [
    [{ pads: [1, 0, 2, 1], strides: [2, 1] }, [1, 0, 2, 1]],
    // out = ceil(in / stride) = [5, 4]; total pads 3 (H) and 1 (W): the odd one goes last
    // for SAME_UPPER, first for SAME_LOWER.
    [{ auto_pad: "SAME_UPPER", strides: [2, 2], kernel_shape: [4, 2] }, [1, 0, 2, 1]],
    [{ auto_pad: "SAME_LOWER", strides: [2, 2] }, [2, 1, 1, 0]],
    [{ auto_pad: "VALID", dilations: [2, 2] }, [0, 0, 0, 0]],
  ];
  for (const [attrs, pads] of cases) {
    const strides = (attrs.strides as number[] | undefined) ?? [1, 1];
    const dilations = (attrs.dilations as number[] | undefined) ?? [1, 1];
    const y = convRef(x.data, x.shape, w.data, w.shape, b.data, {
      strides,
      pads,
      dilations,
      group: 1,
    });
    await runNode("Conv", [x, w, b], {
      ...PATHS,
      opset: 11,
      attrs,
      expect: [cpuTensor("float32", y.shape, y.data)],
      label: JSON.stringify(attrs),
    });
  }
});

Deno.test("onnx Conv: groups, 1-D, no bias; kernel_shape must match W", async () => {
  const x = randomF32([1, 4, 11], 4);
  const w = randomF32([6, 2, 3], 5);
  const y = convRef(x.data, x.shape, w.data, w.shape, undefined, {
    strides: [2],
    pads: [1, 1],
    dilations: [1],
    group: 2,
  });
  await runNode("Conv", [x, w], {
    ...PATHS,
    opset: 11,
    attrs: { group: 2, strides: [2], pads: [1, 1] },
    expect: [cpuTensor("float32", y.shape, y.data)],
    label: "grouped 1-D",
  });
  await rejects(
    runNode("Conv", [x, randomF32([2, 4, 3], 6)], {
      ...PATHS,
      opset: 11,
      attrs: { kernel_shape: [5] },
    }),
    /kernel_shape/,
  );
});

Deno.test("onnx MaxPool / AveragePool: auto_pad, ceil mode, count_include_pad, indices", async () => {
  const x = randomF32([1, 2, 7, 6], 7, -3, 3);
  const base: PoolAttrs = {
    kernel: [3, 3],
    strides: [2, 2],
    pads: [0, 0, 0, 0],
    dilations: [1, 1],
  };
  // SAME_UPPER: out [4, 3], total pads [2, 1] -> [1, 0] begin, [1, 1] end.
  const same = { ...base, pads: [1, 0, 1, 1] };
  const y = maxPoolRef(x.data, x.shape, same);
  await runNode("MaxPool", [x], {
    ...PATHS,
    opset: 12,
    attrs: { kernel_shape: [3, 3], strides: [2, 2], auto_pad: "SAME_UPPER" },
    expect: [cpuTensor("float32", y.shape, y.data), cpuTensor("int64", y.shape, y.indices)],
    label: "max same_upper + indices",
  });
  const ceil = { ...base, pads: [1, 1, 1, 1], ceilMode: true, countIncludePad: true };
  const a = avgPoolRef(x.data, x.shape, ceil);
  await runNode("AveragePool", [x], {
    ...PATHS,
    opset: 11,
    attrs: {
      kernel_shape: [3, 3],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
      ceil_mode: 1,
      count_include_pad: 1,
    },
    expect: [cpuTensor("float32", a.shape, a.data)],
    label: "avg ceil include-pad",
  });
  const g = avgPoolRef(x.data, x.shape, { ...base, kernel: [7, 6], strides: [1, 1] });
  await runNode("GlobalAveragePool", [x], {
    ...PATHS,
    opset: 11,
    expect: [cpuTensor("float32", g.shape, g.data)],
    label: "gap",
  });
});

Deno.test("onnx BatchNormalization: opset 7 spatial = 0, opset 15; training mode is unsupported", async () => {
  const x = randomF32([2, 3, 4], 8);
  const params = (n: number, seed: number) => [
    randomF32([n], seed, 0.5, 1.5),
    randomF32([n], seed + 1),
    randomF32([n], seed + 2),
    randomF32([n], seed + 3, 0.2, 2),
  ];
  const p = params(3, 10);
  const layout = batchNormLayout(x.shape);
  const y = batchNormRef(x.data, layout, p[0].data, p[1].data, p[2].data, p[3].data, 1e-3);
  await runNode("BatchNormalization", [x, ...p], {
    ...PATHS,
    opset: 15,
    attrs: { epsilon: 1e-3 },
    expect: [cpuTensor("float32", x.shape, y)],
    label: "opset 15",
  });
  const q = params(12, 20).map((t) => cpuTensor("float32", [3, 4], t.data));
  const perPos = batchNormLayout(x.shape, true);
  const z = batchNormRef(x.data, perPos, q[0].data, q[1].data, q[2].data, q[3].data, 1e-5);
  await runNode("BatchNormalization", [x, ...q], {
    ...PATHS,
    opset: 7,
    attrs: { spatial: 0 },
    expect: [cpuTensor("float32", x.shape, z)],
    label: "opset 7 spatial=0",
  });
  await rejects(
    runNode("BatchNormalization", [x, ...p], { ...PATHS, opset: 15, attrs: { training_mode: 1 } }),
    /training_mode/,
  );
});
