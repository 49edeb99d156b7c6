/** The shared-memory conv tiles (`tiled64`, `tiled32`: src/kernels/conv_tiled.ts) against the
 * float64 reference at odd sizes where M (channels per group), N (pixels) and K (input channels
 * per group x taps) are not multiples of the tiles; that prepareConv runs them when asked for or
 * cached, also inside a model; and that the tuner offers them on hardware adapters only. */
import assert from "node:assert/strict";
import { getGpu, type Gpu, type GpuTensor } from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { CONV_KERNEL, convProblemKey, prepareConv } from "../../src/kernels/conv.ts";
import { convCandidates, tuneConv } from "../../src/kernels/conv_tune.ts";
import { type ConvTiledName, packConvTiledWeights } from "../../src/kernels/conv_tiled.ts";
import { convRef } from "../../src/kernels/conv_ref.ts";
import { type ConvAttrs, convOutputShape } from "../../src/kernels/conv_shape.ts";
import { VariantCache } from "../../src/kernels/variants.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { loadModelBytes, OPS } from "../../src/onnx/mod.ts";
import { ENGINE_DOMAIN, type OpImpl } from "../../src/onnx/types.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

interface Case {
  x: number[];
  w: number[];
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  group?: number;
  bias?: boolean;
  relu?: boolean;
  /** Upload W (and B) as GPU tensors: the pack dispatch lays them out on every run. */
  gpuWeights?: boolean;
  /** float16 tensors: outputs must be rounded to half precision. */
  f16?: boolean;
  /** Half-precision weights (`precision: "f16"`): compared with the reference on rounded
   * weights. */
  halfWeights?: boolean;
}

const TILES: readonly ConvTiledName[] = ["tiled64", "tiled32"];
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function attrsOf(cs: Case): ConvAttrs {
  const rank = cs.x.length - 2;
  return {
    strides: cs.strides ?? Array(rank).fill(1),
    pads: cs.pads ?? Array(2 * rank).fill(0),
    dilations: cs.dilations ?? Array(rank).fill(1),
    group: cs.group ?? 1,
    relu: cs.relu,
  };
}

let seed = 100;

/** Runs the case with `tiled` and compares with convRef; returns the shaders it ran. */
async function check(cs: Case, tiled: ConvTiledName): Promise<string[]> {
  const gpu = await getGpu();
  const attrs = attrsOf(cs);
  const round = (v: Float32Array) => cs.f16 ? v.map(roundToF16) : v;
  const xData = round(randomFloats(size(cs.x), seed++));
  const wData = round(randomFloats(size(cs.w), seed++));
  const bData = cs.bias ? randomFloats(cs.w[0], seed++) : undefined;
  // GPU-computed weights stay float32 whatever the precision.
  const refW = cs.halfWeights && !cs.gpuWeights ? wData.map(roundToF16) : wData;
  const ref = convRef(xData, cs.x, refW, cs.w, bData, attrs);
  const x = cpuTensor(cs.f16 ? "float16" : "float32", cs.x, xData);
  const w = cpuTensor("float32", cs.w, wData);
  const b = bData ? cpuTensor("float32", [cs.w[0]], bData) : undefined;
  const inputs = cs.gpuWeights ? [x, w, ...(b ? [b] : [])] : [x];
  const options = { tiled, precision: cs.halfWeights ? "f16" as const : "f32" as const };
  let shaders: string[] = [];
  const [got] = await runKernel(
    gpu,
    inputs,
    [convOutputShape(cs.x, cs.w, attrs)],
    (scope, ins, [y]) => {
      const wArg: GpuTensor | CpuTensor = cs.gpuWeights ? ins[1] : w;
      const bArg: GpuTensor | CpuTensor | undefined = cs.gpuWeights && b ? ins[2] : b;
      const dispatches = prepareConv(gpu, scope, ins[0], wArg, bArg, y, attrs, options);
      shaders = dispatches.map((d) => d.label);
      return dispatches;
    },
  );
  const label = `${tiled} ${JSON.stringify(cs)}`;
  if (cs.f16) {
    assertHalfValues(got, label);
    assertClose(got.data, round(ref.data), { rtol: 2e-3, atol: 1e-3, label });
  } else {
    assertClose(got.data, ref.data, { rtol: 1e-4, atol: 1e-4, label });
  }
  assert.ok(shaders.every((s) => s === "conv_tiled"), `${label} ran ${shaders}`);
  return shaders;
}

async function checkBoth(cases: readonly Case[]): Promise<void> {
  for (const cs of cases) for (const tiled of TILES) await check(cs, tiled);
}

Deno.test("conv tiled: 2-D, channels and pixels off the tile, strides, pads, dilations", async () => {
  await checkBoth([
    // ResNet-like stem: 7x7/2, 3 input channels, 65 outputs (a second, nearly empty M tile).
    {
      x: [1, 3, 11, 9],
      w: [65, 3, 7, 7],
      strides: [2, 2],
      pads: [3, 3, 3, 3],
      bias: true,
      relu: true,
    },
    // Batch 3: N = 3 * 42 = 126 pixels (two N tiles, images split across a pixel quad).
    { x: [3, 17, 6, 7], w: [33, 17, 3, 3], pads: [1, 1, 1, 1], bias: true, relu: true },
    // K = 630 (39 slices and a part), one output channel row in use of 7, asymmetric pads.
    { x: [1, 70, 5, 5], w: [7, 70, 3, 3], strides: [2, 1], pads: [1, 0, 1, 2] },
    { x: [2, 5, 9, 8], w: [1, 5, 3, 3], dilations: [2, 2], pads: [2, 1, 0, 2], bias: true },
    { x: [1, 5, 12, 11], w: [7, 5, 3, 2], strides: [3, 3], dilations: [2, 3], pads: [2, 1, 0, 3] },
    { x: [1, 3, 5, 5], w: [2, 3, 3, 3], strides: [2, 2], pads: [1, 0, 1, 0] },
    // 1x1: pointwise (K = 17), strided by 3, padded.
    { x: [1, 17, 7, 6], w: [65, 17, 1, 1], bias: true },
    { x: [3, 4, 9, 9], w: [8, 4, 1, 1], strides: [3, 3], relu: true },
    { x: [1, 5, 4, 5], w: [6, 5, 1, 1], pads: [1, 2, 0, 1] },
    // One output pixel; K = 16, exactly one slice.
    { x: [1, 16, 1, 1], w: [5, 16, 1, 1], bias: true },
  ]);
});

Deno.test("conv tiled: groups and depthwise", async () => {
  await checkBoth([
    { x: [2, 6, 7, 7], w: [9, 2, 3, 3], group: 3, pads: [1, 1, 1, 1], bias: true },
    { x: [1, 8, 9, 9], w: [8, 1, 3, 3], group: 8, pads: [1, 1, 1, 1], bias: true, relu: true },
    { x: [1, 5, 8, 7], w: [10, 1, 3, 3], group: 5, strides: [2, 2] }, // depthwise x2
    { x: [3, 10, 6, 5], w: [70, 2, 3, 3], group: 5, pads: [0, 1, 1, 0], bias: true }, // Mg 14
    { x: [1, 70, 4, 4], w: [130, 35, 1, 3], group: 2, pads: [0, 1, 0, 1] }, // Mg 65
  ]);
});

Deno.test("conv tiled: 1-D and 3-D", async () => {
  await checkBoth([
    { x: [2, 5, 19], w: [7, 5, 3], pads: [1, 2], bias: true },
    { x: [1, 3, 23], w: [33, 3, 5], strides: [3], dilations: [2], pads: [2, 1], relu: true },
    { x: [1, 4, 10], w: [4, 2, 3], group: 2 },
    { x: [1, 3, 4, 5, 6], w: [7, 3, 3, 3, 3], pads: [1, 0, 1, 1, 2, 0], bias: true },
    {
      x: [2, 4, 5, 6, 6],
      w: [8, 2, 2, 3, 2],
      group: 2,
      strides: [2, 1, 2],
      dilations: [1, 2, 1],
      relu: true,
    },
  ]);
});

Deno.test("conv tiled: GPU weights, float16 outputs, half-precision weights", async () => {
  await checkBoth([
    { x: [1, 3, 9, 9], w: [10, 3, 3, 3], pads: [1, 1, 1, 1], bias: true, gpuWeights: true },
    { x: [2, 4, 6, 5], w: [66, 2, 2, 3], group: 2, gpuWeights: true, relu: true },
    { x: [1, 3, 9, 7], w: [8, 3, 3, 3], pads: [1, 1, 1, 1], bias: true, f16: true, relu: true },
    { x: [2, 5, 7, 6], w: [33, 5, 3, 3], pads: [1, 1, 1, 1], bias: true, halfWeights: true },
    { x: [1, 3, 11], w: [6, 3, 3], halfWeights: true, gpuWeights: true }, // stays float32
  ]);
  // Half-precision layout: pairs of float16 bit patterns, low half first; zero past Mg.
  const words = packConvTiledWeights([1, -2, 0.5], [3, 1, 1], 1, true);
  assert.deepEqual([...words], [0xc0003c00, 0x00003800]);
  const full = packConvTiledWeights([1, 2, 3, 4, 5, 6], [3, 2, 1], 1, false);
  assert.deepEqual([...new Float32Array(full.buffer)], [1, 3, 5, 0, 2, 4, 6, 0]);
});

Deno.test("conv tiled: bad options are errors naming the tile", async () => {
  const gpu = await getGpu();
  const cs: Case = { x: [1, 3, 5, 5], w: [4, 3, 3, 3] };
  const attrs = attrsOf(cs);
  const w = cpuTensor("float32", cs.w, randomFloats(size(cs.w), 1));
  const run = (options: Record<string, unknown>) =>
    runKernel(
      gpu,
      [cpuTensor("float32", cs.x, randomFloats(75, 2))],
      [[1, 4, 3, 3]],
      (s, [x], [y]) => prepareConv(gpu, s, x, w, undefined, y, attrs, options),
    );
  await assert.rejects(() => run({ tiled: "tiled128" }), /no shared-memory tile 'tiled128'/);
  await assert.rejects(() => run({ tiled: "tiled64", wide: true }), /tiled64 tile cannot be/);
});

Deno.test("conv tiled: a cached choice runs it, in prepareConv and in a model", async () => {
  const gpu = await getGpu();
  const cs: Case = { x: [2, 5, 9, 9], w: [12, 5, 3, 3], pads: [1, 1, 1, 1], relu: true };
  const attrs = attrsOf(cs);
  const cache = new VariantCache();
  cache.set(gpu, CONV_KERNEL, convProblemKey(cs.x, cs.w, attrs), "tiled32");
  const xData = randomFloats(size(cs.x), 3), wData = randomFloats(size(cs.w), 4);
  const bData = randomFloats(cs.w[0], 5);
  const ref = convRef(xData, cs.x, wData, cs.w, bData, attrs);
  const w = cpuTensor("float32", cs.w, wData), b = cpuTensor("float32", [cs.w[0]], bData);
  const x = cpuTensor("float32", cs.x, xData);
  let shaders: string[] = [];
  const [got] = await runKernel(gpu, [x], [ref.shape], (s, [gx], [y]) => {
    const d = prepareConv(gpu, s, gx, w, b, y, attrs, { variantCache: cache });
    shaders = d.map((v) => v.label);
    return d;
  });
  assert.deepEqual(shaders, ["conv_tiled"]);
  assertClose(got.data, ref.data, { rtol: 1e-4, atol: 1e-4, label: "cached tiled32" });

  // A model: the Conv and its Relu fuse into engine.FusedConv, whose op passes the cache on.
  const g = new GraphBuilder("tiled", 17);
  const input = g.input("x", "float32", cs.x);
  const conv = g.op("Conv", [input, g.constant("w", w), g.constant("b", b)], {
    pads: cs.pads!,
    kernel_shape: [3, 3],
  });
  g.op("Relu", [conv], {}, "y");
  g.output("y", "float32", ref.shape);
  const ran: string[] = [];
  const ops = new Map(OPS);
  for (const name of ["Conv", `${ENGINE_DOMAIN}.FusedConv`]) {
    const impl = OPS.get(name)!;
    const recorded: OpImpl = {
      ...impl,
      gpu: (ctx, inputs, outputs) => {
        const d = impl.gpu!(ctx, inputs, outputs);
        ran.push(...d.map((v) => v.label));
        return d;
      },
    };
    ops.set(name, recorded);
  }
  const model = await loadModelBytes(g.encode(), {
    source: "tiled",
    gpu,
    variantCache: cache,
    ops,
  });
  try {
    const y = (await model.run({ x })).y;
    assert.deepEqual(ran, ["conv_tiled"]);
    assertClose(y.data as Float32Array, ref.data, { rtol: 1e-4, atol: 1e-4, label: "model" });
  } finally {
    model.dispose();
  }
});

/** Just the field convCandidates reads. */
function fakeAdapter(isLlvmpipe: boolean): Gpu {
  return { summary: { isLlvmpipe } } as unknown as Gpu;
}

Deno.test("convCandidates: shared-memory tiles on hardware adapters only", () => {
  const attrs = attrsOf({ x: [1, 64, 14, 14], w: [64, 64, 3, 3], pads: [1, 1, 1, 1] });
  const x = [1, 64, 14, 14], w = [64, 64, 3, 3];
  const llvmpipe = convCandidates(x, w, attrs, fakeAdapter(true));
  const hardware = convCandidates(x, w, attrs, fakeAdapter(false));
  assert.deepEqual(llvmpipe, convCandidates(x, w, attrs), "no adapter: as llvmpipe");
  assert.ok(!llvmpipe.some((n) => n.startsWith("tiled")), `${llvmpipe}`);
  assert.ok(hardware.includes("tiled64") && hardware.includes("tiled32"), `${hardware}`);
  assert.equal(hardware[0], llvmpipe[0], "the default stays first");
  assert.deepEqual(hardware.filter((n) => !n.startsWith("tiled")), llvmpipe);
  // 16 channels per group: only the 32-channel tile; depthwise (1 per group): neither.
  const few = convCandidates([1, 16, 8, 8], [16, 16, 3, 3], attrs, fakeAdapter(false));
  assert.ok(few.includes("tiled32") && !few.includes("tiled64"), `${few}`);
  const depthwise = convCandidates(
    [1, 32, 8, 8],
    [32, 1, 3, 3],
    { ...attrs, group: 32 },
    fakeAdapter(false),
  );
  assert.ok(!depthwise.some((n) => n.startsWith("tiled")), `${depthwise}`);
});

Deno.test("tuneConv times a tiled candidate and prepareConv follows the cached choice", async () => {
  const gpu = await getGpu();
  const x = [1, 6, 8, 8], w = [20, 6, 3, 3];
  const attrs = attrsOf({ x, w, pads: [1, 1, 1, 1] });
  const cache = new VariantCache();
  const r = await tuneConv(gpu, x, w, attrs, {
    cache,
    candidates: ["tiled64"],
    targetMs: 2,
    batches: 1,
  });
  assert.equal(r.chosen, "tiled64");
  assert.equal(r.channelBlocks, undefined);
  assert.equal(cache.get(gpu, CONV_KERNEL, convProblemKey(x, w, attrs)), "tiled64");
});
