/** The conv-family ONNX operators in their attribute forms (auto_pad, inferred kernel_shape,
 * opset-dependent attributes), run through the executor on the GPU and through constant folding
 * (CPU references). */
import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { batchNormLayout, batchNormRef } from "../../src/kernels/batchnorm_ref.ts";
import { convRef } from "../../src/kernels/conv_ref.ts";
import { avgPoolRef, maxPoolRef, type PoolAttrs } from "../../src/kernels/pool_ref.ts";
import { type BuilderAttr, GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes } from "../../src/onnx/executor.ts";
import { assertClose, randomFloats } from "../helpers.ts";

/** Runs one node whose inputs are all graph inputs (GPU path, W packed on the GPU), then with
 * every input but X as initializers (GPU path, W packed on the host), then with all inputs as
 * initializers (constant folding through the CPU reference). */
async function runNode(
  opset: number,
  opType: string,
  attrs: Record<string, BuilderAttr>,
  inputs: (CpuTensor | undefined)[],
  outputs = 1,
): Promise<Record<string, CpuTensor[]>> {
  const results: Record<string, CpuTensor[]> = {};
  for (const mode of ["inputs", "weights", "folded"] as const) {
    const b = new GraphBuilder("t", opset);
    const feeds: Record<string, CpuTensor> = {};
    const names = inputs.map((t, i) => {
      if (!t) return "";
      if (mode === "folded" || (mode === "weights" && i > 0)) return b.constant("c", t);
      feeds[`in${i}`] = t;
      return b.input(`in${i}`, t.dtype, t.shape);
    });
    const outs = Array.from({ length: outputs }, (_, k) => `y${k}`);
    b.opMulti(opType, names, outs, attrs);
    for (const o of outs) b.output(o, "float32", []);
    const model = await loadModelBytes(b.encode(), { source: `${opType}@${opset}` });
    const got = await model.run(feeds);
    results[mode] = outs.map((o) => got[o]);
    model.dispose();
  }
  return results;
}

function check(got: Record<string, CpuTensor[]>, want: CpuTensor[], label: string): void {
  for (const [path, tensors] of Object.entries(got)) {
    want.forEach((w, k) => {
      assertEquals(tensors[k].shape, w.shape, `${label} ${path} shape`);
      assertEquals(tensors[k].dtype, w.dtype, `${label} ${path} dtype`);
      assertClose(tensors[k].data, w.data, { rtol: 1e-4, atol: 1e-5, label: `${label} ${path}` });
    });
  }
}

const f32 = (shape: number[], seed: number, lo = -1, hi = 1) =>
  cpuTensor("float32", shape, randomFloats(shape.reduce((a, b) => a * b, 1), seed, lo, hi));

Deno.test("onnx Conv: explicit pads, auto_pad SAME_UPPER / SAME_LOWER / VALID, no kernel_shape", async () => {
  const x = f32([2, 3, 9, 7], 1);
  const w = f32([4, 3, 4, 2], 2);
  const b = f32([4], 3);
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
    check(
      await runNode(11, "Conv", attrs, [x, w, b]),
      [cpuTensor("float32", y.shape, y.data)],
      JSON.stringify(attrs),
    );
  }
});

Deno.test("onnx Conv: groups, 1-D, no bias; kernel_shape must match W", async () => {
  const x = f32([1, 4, 11], 4);
  const w = f32([6, 2, 3], 5);
  const y = convRef(x.data, x.shape, w.data, w.shape, undefined, {
    strides: [2],
    pads: [1, 1],
    dilations: [1],
    group: 2,
  });
  check(
    await runNode(11, "Conv", { group: 2, strides: [2], pads: [1, 1] }, [x, w]),
    [cpuTensor("float32", y.shape, y.data)],
    "grouped 1-D",
  );
  await rejects(runNode(11, "Conv", { kernel_shape: [5] }, [x, f32([2, 4, 3], 6)]), /kernel_shape/);
});

Deno.test("onnx MaxPool / AveragePool: auto_pad, ceil mode, count_include_pad, indices", async () => {
  const x = f32([1, 2, 7, 6], 7, -3, 3);
  const base: PoolAttrs = {
    kernel: [3, 3],
    strides: [2, 2],
    pads: [0, 0, 0, 0],
    dilations: [1, 1],
  };
  // SAME_UPPER: out [4, 3], total pads [2, 1] -> [1, 0] begin, [1, 1] end.
  const same = { ...base, pads: [1, 0, 1, 1] };
  const y = maxPoolRef(x.data, x.shape, same);
  check(
    await runNode(
      12,
      "MaxPool",
      { kernel_shape: [3, 3], strides: [2, 2], auto_pad: "SAME_UPPER" },
      [x],
      2,
    ),
    [cpuTensor("float32", y.shape, y.data), cpuTensor("int64", y.shape, y.indices)],
    "max same_upper + indices",
  );
  const ceil = { ...base, pads: [1, 1, 1, 1], ceilMode: true, countIncludePad: true };
  const a = avgPoolRef(x.data, x.shape, ceil);
  check(
    await runNode(
      11,
      "AveragePool",
      {
        kernel_shape: [3, 3],
        strides: [2, 2],
        pads: [1, 1, 1, 1],
        ceil_mode: 1,
        count_include_pad: 1,
      },
      [x],
    ),
    [cpuTensor("float32", a.shape, a.data)],
    "avg ceil include-pad",
  );
  const g = avgPoolRef(x.data, x.shape, { ...base, kernel: [7, 6], strides: [1, 1] });
  check(
    await runNode(11, "GlobalAveragePool", {}, [x]),
    [cpuTensor("float32", g.shape, g.data)],
    "gap",
  );
});

Deno.test("onnx BatchNormalization: opset 7 spatial = 0, opset 15; training mode is unsupported", async () => {
  const x = f32([2, 3, 4], 8);
  const params = (n: number, seed: number) => [
    f32([n], seed, 0.5, 1.5),
    f32([n], seed + 1),
    f32([n], seed + 2),
    f32([n], seed + 3, 0.2, 2),
  ];
  const p = params(3, 10);
  const layout = batchNormLayout(x.shape);
  const y = batchNormRef(x.data, layout, p[0].data, p[1].data, p[2].data, p[3].data, 1e-3);
  check(
    await runNode(15, "BatchNormalization", { epsilon: 1e-3 }, [x, ...p]),
    [cpuTensor("float32", x.shape, y)],
    "opset 15",
  );
  const q = params(12, 20).map((t) => cpuTensor("float32", [3, 4], t.data));
  const perPos = batchNormLayout(x.shape, true);
  const z = batchNormRef(x.data, perPos, q[0].data, q[1].data, q[2].data, q[3].data, 1e-5);
  check(
    await runNode(7, "BatchNormalization", { spatial: 0 }, [x, ...q]),
    [cpuTensor("float32", x.shape, z)],
    "opset 7 spatial=0",
  );
  await rejects(
    runNode(15, "BatchNormalization", { training_mode: 1 }, [x, ...p]),
    /training_mode/,
  );
});
