/** Vision operators (GridSample, AffineGrid, RoiAlign, LRN, LpPool, MaxUnpool, CenterCropPad,
 * Col2Im, DeformConv): attribute handling per opset, shape inference, errors naming the node,
 * and the GPU path against the CPU path through the OpImpl contract. */
import "../gpu_teardown.ts";
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  allocTensor,
  downloadTensor,
  getGpu,
  releaseTensor,
  ResourceScope,
  submitDispatches,
  uploadCpuTensor,
} from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { loadModelBytes } from "../../src/onnx/executor.ts";
import { UnsupportedFeatureError } from "../../src/onnx/graph.ts";
import { visionOps } from "../../src/onnx/ops/vision.ts";
import {
  type AttrValue,
  type GpuOpContext,
  NodeError,
  type OnnxNode,
  type TensorInfo,
} from "../../src/onnx/types.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { encodeModel, int, ints, node as protoNode, vi } from "./_proto.ts";

function mk(opType: string, attrs: Record<string, AttrValue>, nIn: number): OnnxNode {
  return {
    name: `${opType.toLowerCase()}_node`,
    opType,
    domain: "",
    inputs: Array.from({ length: nIn }, (_, i) => `in${i}`),
    outputs: ["out0"],
    attrs: new Map(Object.entries(attrs)),
  };
}

/** TensorInfos as the executor makes them: constant inputs carry their values. */
function infosOf(opType: string, inputs: readonly (CpuTensor | undefined)[]) {
  const constInputs = visionOps[opType].constInputs ?? [];
  return inputs.map((t, i): TensorInfo | undefined =>
    t
      ? { dtype: t.dtype, shape: t.shape, value: constInputs.includes(i) ? t : undefined }
      : undefined
  );
}

/** Runs infer and cpu (checking they agree) and the GPU path (checking it matches cpu). */
async function run(
  opType: string,
  inputs: (CpuTensor | undefined)[],
  attrs: Record<string, AttrValue> = {},
  opset = 20,
): Promise<CpuTensor> {
  const op = visionOps[opType];
  const node = mk(opType, attrs, inputs.length);
  const constInputs = op.constInputs ?? [];
  const infos = infosOf(opType, inputs);
  const [inferred] = op.infer({ node, opset }, infos);
  const [out] = op.cpu({ node, opset }, inputs);
  assertEquals([out.dtype, [...out.shape]], [inferred.dtype, [...inferred.shape]]);
  const gpu = await getGpu();
  const scope = new ResourceScope();
  const ins = inputs.map((t, i) =>
    t && !constInputs.includes(i) ? uploadCpuTensor(gpu, t) : undefined
  );
  const y = allocTensor(gpu, inferred.shape, inferred.dtype);
  const ctx: GpuOpContext = {
    node,
    opset,
    gpu,
    inputInfos: infos,
    outputInfos: [inferred],
    own: (r) => scope.own(r),
  };
  submitDispatches(gpu, op.gpu!(ctx, ins, [y]));
  const got = await downloadTensor(gpu, y);
  assertEquals([...got.shape], [...out.shape]);
  assertClose(got.data, out.data, { rtol: 1e-4, atol: 1e-5, label: `${opType} GPU vs CPU` });
  for (const t of [...ins, y]) if (t) releaseTensor(gpu, t);
  scope.dispose();
  return out;
}

/** Asserts that infer throws a NodeError naming the node (or `kind`) with `pattern`. */
function rejects(
  opType: string,
  attrs: Record<string, AttrValue>,
  inputs: (TensorInfo | undefined)[],
  pattern: RegExp,
  opset = 20,
  kind: new (...args: never[]) => Error = NodeError,
): void {
  throws(
    () => visionOps[opType].infer({ node: mk(opType, attrs, inputs.length), opset }, inputs),
    (e: Error) =>
      e instanceof kind && e.message.includes(`${opType.toLowerCase()}_node`) &&
      pattern.test(e.message),
  );
}

let seed = 4200;
const f32 = (shape: number[], lo = -1, hi = 1) =>
  cpuTensor("float32", shape, randomFloats(shape.reduce((a, b) => a * b, 1), seed++, lo, hi));
const i64 = (...v: number[]) => cpuTensor("int64", [v.length], v);
const fi = (shape: number[], dtype: TensorInfo["dtype"] = "float32"): TensorInfo => ({
  dtype,
  shape,
});
const known = (t: CpuTensor): TensorInfo => ({ dtype: t.dtype, shape: t.shape, value: t });

Deno.test("GridSample: opset 16 and 20 mode names, shapes, N-d; bad attributes name the node", async () => {
  const x = f32([2, 3, 5, 7]);
  const grid = f32([2, 4, 6, 2], -1.2, 1.2);
  for (const mode of ["bilinear", "nearest", "bicubic"]) {
    for (const padding_mode of ["zeros", "border", "reflection"]) {
      const y = await run("GridSample", [x, grid], { mode, padding_mode, align_corners: 1 }, 16);
      assertEquals([...y.shape], [2, 3, 4, 6]);
    }
  }
  for (const mode of ["linear", "nearest", "cubic"]) await run("GridSample", [x, grid], { mode });
  const y5 = await run("GridSample", [f32([1, 2, 3, 4, 5]), f32([1, 2, 3, 4, 3])], {
    mode: "nearest",
  });
  assertEquals([...y5.shape], [1, 2, 2, 3, 4]);
  const gi = [fi([2, 3, 5, 7]), fi([2, 4, 6, 2])];
  rejects("GridSample", { mode: "linear" }, gi, /unknown mode 'linear'/, 16);
  rejects("GridSample", { mode: "bilinear" }, gi, /unknown mode 'bilinear'/, 20);
  rejects("GridSample", { padding_mode: "wrap" }, gi, /padding_mode 'wrap'/);
  rejects("GridSample", { align_corners: 2 }, gi, /align_corners/);
  rejects("GridSample", {}, [fi([1, 2, 3, 4, 5]), fi([1, 2, 3, 4, 3])], /4-D/, 16);
  rejects("GridSample", { mode: "cubic" }, [fi([1, 2, 3, 4, 5]), fi([1, 2, 3, 4, 3])], /cubic/);
  rejects("GridSample", {}, [fi([2, 3, 5, 7]), fi([2, 4, 6, 3])], /last axis is 3/);
  rejects("GridSample", {}, [fi([2, 3, 5, 7]), fi([1, 4, 6, 2])], /batch/);
  rejects(
    "GridSample",
    {},
    [fi([2, 3, 5, 7], "int32"), fi([2, 4, 6, 2])],
    /int32/,
    20,
    UnsupportedFeatureError,
  );
});

Deno.test("AffineGrid: 2-D and 3-D shapes; size must be constant and fit theta", async () => {
  const y = await run("AffineGrid", [f32([2, 2, 3]), i64(2, 3, 5, 7)], { align_corners: 1 });
  assertEquals([...y.shape], [2, 5, 7, 2]);
  const z = await run("AffineGrid", [f32([1, 3, 4]), i64(1, 1, 3, 4, 5)]);
  assertEquals([...z.shape], [1, 3, 4, 5, 3]);
  rejects("AffineGrid", {}, [fi([2, 2, 3]), fi([4], "int64")], /must be known/);
  rejects("AffineGrid", {}, [fi([2, 3, 4]), known(i64(2, 3, 5, 7))], /expected \[2,2,3\]/);
  rejects("AffineGrid", {}, [fi([2, 2, 3]), known(i64(2, 3, 5))], /size has 3 values/);
});

Deno.test("RoiAlign: modes and coordinate modes per opset; bad inputs name the node", async () => {
  const x = f32([2, 3, 7, 9], -2, 2);
  const rois = cpuTensor("float32", [3, 4], [0, 0, 8, 6, 1.5, 2.5, 4, 5, -2, 3, 12, 4]);
  const batch = cpuTensor("int64", [3], [1, 0, 1]);
  for (const mode of ["avg", "max"]) {
    for (const coordinate_transformation_mode of ["half_pixel", "output_half_pixel"]) {
      const y = await run("RoiAlign", [x, rois, batch], {
        mode,
        coordinate_transformation_mode,
        output_height: 3,
        output_width: 2,
        sampling_ratio: 0,
        spatial_scale: 0.75,
      }, 16);
      assertEquals([...y.shape], [3, 3, 3, 2]);
    }
  }
  // Opset 10 has no coordinate_transformation_mode: it is output_half_pixel.
  const attrs = { output_height: 2, output_width: 2, sampling_ratio: 2 };
  const v10 = await run("RoiAlign", [x, rois, batch], attrs, 10);
  const v16 = await run("RoiAlign", [x, rois, batch], {
    ...attrs,
    coordinate_transformation_mode: "output_half_pixel",
  }, 16);
  assertEquals(Array.from(v10.data), Array.from(v16.data));
  const ins = [fi([2, 3, 7, 9]), fi([3, 4]), fi([3], "int64")];
  rejects("RoiAlign", { mode: "sum" }, ins, /unknown mode 'sum'/, 16);
  rejects("RoiAlign", { coordinate_transformation_mode: "asymmetric" }, ins, /asymmetric/, 16);
  rejects("RoiAlign", { output_height: 0 }, ins, /output_height/, 16);
  rejects("RoiAlign", { sampling_ratio: -1 }, ins, /sampling_ratio/, 16);
  rejects("RoiAlign", {}, [fi([2, 3, 7, 9]), fi([3, 5]), fi([3], "int64")], /\[num_rois, 4\]/, 16);
  rejects("RoiAlign", {}, [fi([2, 3, 7, 9]), fi([3, 4]), fi([2], "int64")], /batch_indices/, 16);
  rejects(
    "RoiAlign",
    {},
    [fi([2, 3, 7, 9]), fi([3, 4]), known(cpuTensor("int64", [3], [0, 2, 1]))],
    /batch index 2/,
    16,
  );
});

Deno.test("LRN: shapes kept, size required", async () => {
  const y = await run("LRN", [f32([2, 7, 3, 5], -3, 3)], { size: 3, alpha: 0.01, bias: 2 }, 13);
  assertEquals([...y.shape], [2, 7, 3, 5]);
  rejects("LRN", {}, [fi([1, 3, 4, 4])], /missing attribute 'size'/, 13);
  rejects("LRN", { size: 0 }, [fi([1, 3, 4, 4])], /size must be/, 13);
  rejects("LRN", { size: 3 }, [fi([1, 3])], /rank 2/, 13);
});

Deno.test("LpPool: auto_pad, dilations and ceil_mode (opset 18); bad attributes", async () => {
  const x = f32([1, 2, 9, 8], -2, 2);
  const same = await run("LpPool", [x], {
    kernel_shape: [3, 2],
    strides: [2, 2],
    auto_pad: "SAME_UPPER",
  }, 11);
  assertEquals([...same.shape], [1, 2, 5, 4]);
  const dil = await run("LpPool", [x], {
    kernel_shape: [2, 2],
    dilations: [2, 1],
    ceil_mode: 1,
    strides: [2, 3],
    p: 3,
  }, 18);
  assertEquals([...dil.shape], [1, 2, 4, 3]);
  const one = await run("LpPool", [f32([2, 3, 11])], { kernel_shape: [4], pads: [1, 2], p: 1 }, 18);
  assertEquals([...one.shape], [2, 3, 11]);
  rejects("LpPool", {}, [fi([1, 2, 9, 8])], /kernel_shape/, 18);
  rejects("LpPool", { kernel_shape: [2] }, [fi([1, 2, 9, 8])], /kernel_shape has 1 values/, 18);
  rejects("LpPool", { kernel_shape: [2, 2], p: 0 }, [fi([1, 2, 9, 8])], /p must be positive/, 18);
  rejects("LpPool", { kernel_shape: [2, 2], auto_pad: "SAME" }, [fi([1, 2, 9, 8])], /auto_pad/, 18);
  rejects(
    "LpPool",
    { kernel_shape: [2, 2], ceil_mode: 1, auto_pad: "SAME_LOWER" },
    [fi([1, 2, 9, 8])],
    /ceil_mode/,
    18,
  );
  rejects("LpPool", { kernel_shape: [2, 2], pads: [0, 0, -1, 0] }, [fi([1, 2, 9, 8])], /pads/, 18);
});

Deno.test("MaxUnpool: inferred and explicit output shapes; bad indices name the node", async () => {
  const x = cpuTensor("float32", [1, 1, 2, 2], [5, 6, 7, 8]);
  const idx = cpuTensor("int64", [1, 1, 2, 2], [5, 7, 13, 15]);
  const y = await run("MaxUnpool", [x, idx], { kernel_shape: [2, 2], strides: [2, 2] }, 11);
  assertEquals([...y.shape], [1, 1, 4, 4]);
  assertEquals(Array.from(y.data), [0, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 0, 0, 7, 0, 8]);
  // An explicit, larger output holds the unpooled tensor at its origin (pads then ignored).
  const z = await run("MaxUnpool", [x, idx, i64(1, 1, 5, 5)], {
    kernel_shape: [2, 2],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  }, 11);
  assertEquals(Array.from(z.data).slice(5, 10), [0, 5, 0, 6, 0]);
  const ins = [fi([1, 1, 2, 2]), fi([1, 1, 2, 2], "int64")];
  const attrs = { kernel_shape: [2, 2], strides: [2, 2] };
  rejects("MaxUnpool", attrs, [...ins, known(i64(1, 1, 3, 5))], /smaller than the inferred/, 11);
  rejects("MaxUnpool", attrs, [...ins, known(i64(1, 2, 4, 4))], /keep X's N and C/, 11);
  rejects("MaxUnpool", attrs, [...ins, known(i64(1, 1, 4))], /X's rank 4/, 11);
  rejects("MaxUnpool", attrs, [ins[0], fi([1, 1, 2, 3], "int64")], /X's shape/, 11);
  rejects(
    "MaxUnpool",
    attrs,
    [ins[0], known(cpuTensor("int64", [1, 1, 2, 2], [0, 1, 2, 16]))],
    /index 16 is outside/,
    11,
  );
  rejects("MaxUnpool", { strides: [2, 2] }, ins, /kernel_shape/, 11);
});

Deno.test("CenterCropPad: crop, pad and both, axes; bad shapes name the node", async () => {
  const x = cpuTensor("float32", [3, 4], Array.from({ length: 12 }, (_, i) => i + 1));
  const y = await run("CenterCropPad", [x, i64(6, 1)], {}, 18);
  assertEquals([...y.shape], [6, 1]);
  // Padding 3 rows: one before, two after; cropping 4 columns to 1 keeps column 1.
  assertEquals(Array.from(y.data), [0, 2, 6, 10, 0, 0]);
  const hwc = await run("CenterCropPad", [f32([5, 7, 3]), i64(3, 8)], { axes: [-3, -2] }, 18);
  assertEquals([...hwc.shape], [3, 8, 3]);
  const ints = await run(
    "CenterCropPad",
    [cpuTensor("int32", [2, 3], [1, 2, 3, 4, 5, 6]), i64(4)],
    {
      axes: [1],
    },
    18,
  );
  assertEquals(Array.from(ints.data), [1, 2, 3, 0, 4, 5, 6, 0]);
  rejects("CenterCropPad", {}, [fi([3, 4]), known(i64(2))], /1 values for 2 axes/, 18);
  rejects("CenterCropPad", { axes: [0, 0] }, [fi([3, 4]), known(i64(2, 2))], /repeated/, 18);
  rejects("CenterCropPad", { axes: [2] }, [fi([3, 4]), known(i64(2))], /out of range/, 18);
  rejects("CenterCropPad", {}, [fi([3, 4]), known(i64(2, -1))], /non-negative/, 18);
});

Deno.test("Col2Im: shapes from image and block shapes; mismatched block counts name the node", async () => {
  const y = await run("Col2Im", [f32([2, 12, 9]), i64(5, 6), i64(2, 3)], {
    strides: [1, 2],
    pads: [0, 1, 0, 1],
    dilations: [2, 1],
  }, 18);
  assertEquals([...y.shape], [2, 2, 5, 6]);
  const ins = [fi([1, 6, 10]), known(i64(5, 5)), known(i64(2, 3))];
  rejects("Col2Im", {}, ins, /number of sliding blocks/, 18);
  rejects("Col2Im", {}, [fi([1, 7, 12]), known(i64(5, 5)), known(i64(2, 3))], /multiple/, 18);
  rejects(
    "Col2Im",
    { strides: [1] },
    [fi([1, 6, 12]), known(i64(5, 5)), known(i64(2, 3))],
    /strides/,
    18,
  );
  rejects("Col2Im", {}, [fi([1, 6, 12]), fi([2], "int64"), known(i64(2, 3))], /must be known/, 18);
});

Deno.test("DeformConv: optional bias and mask, groups; inconsistent inputs name the node", async () => {
  const x = f32([1, 4, 6, 5]);
  const w = f32([6, 2, 3, 2]);
  const offset = f32([1, 2 * 6 * 2, 4, 4], -2, 2);
  const attrs = { group: 2, offset_group: 2, kernel_shape: [3, 2] };
  const y = await run("DeformConv", [x, w, offset], attrs, 19);
  assertEquals([...y.shape], [1, 6, 4, 4]);
  await run("DeformConv", [x, w, offset, f32([6]), f32([1, 12, 4, 4], 0, 1)], attrs, 19);
  await run("DeformConv", [x, w, offset, undefined, f32([1, 12, 4, 4], 0, 1)], attrs, 19);
  const ins = [fi([1, 4, 6, 5]), fi([6, 2, 3, 2]), fi([1, 24, 4, 4])];
  rejects("DeformConv", { ...attrs, group: 3 }, ins, /groups/, 19);
  rejects("DeformConv", { ...attrs, kernel_shape: [3, 3] }, ins, /kernel_shape/, 19);
  rejects("DeformConv", { ...attrs, offset_group: 1 }, ins, /offset is/, 19);
  rejects("DeformConv", attrs, [...ins, fi([5])], /B is/, 19);
  rejects(
    "DeformConv",
    {},
    [fi([1, 4, 6]), fi([6, 4, 3]), fi([1, 6, 4])],
    /2-D/,
    19,
    UnsupportedFeatureError,
  );
});

Deno.test("RoiAlign and MaxUnpool: indices known only at run time are checked on the GPU", async () => {
  const roi = await loadModelBytes(
    encodeModel({
      opset: 16,
      nodes: [protoNode("RoiAlign", ["x", "rois", "b"], ["y"], [int("output_height", 2)], "roi")],
      inputs: [
        vi("x", "float32", [2, 1, 4, 4]),
        vi("rois", "float32", [2, 4]),
        vi("b", "int64", [2]),
      ],
      outputs: [vi("y", "float32", [2, 1, 2, 1])],
    }),
    { source: "roi test" },
  );
  const x = f32([2, 1, 4, 4]);
  const rois = cpuTensor("float32", [2, 4], [0, 0, 3, 3, 1, 1, 2, 2]);
  const ok = await roi.run({ x, rois, b: cpuTensor("int64", [2], [1, 0]) });
  assertEquals([...ok.y.shape], [2, 1, 2, 1]);
  let error: Error | undefined;
  try {
    await roi.run({ x, rois, b: cpuTensor("int64", [2], [0, 2]) });
  } catch (e) {
    error = e as Error;
  }
  assertEquals(/'roi'.*batch index 2 is outside \[0, 2\)/.test(String(error?.message)), true);

  const unpool = await loadModelBytes(
    encodeModel({
      opset: 11,
      nodes: [protoNode("MaxUnpool", ["x", "i"], ["y"], [ints("kernel_shape", [2, 2])], "unpool")],
      inputs: [vi("x", "float32", [1, 1, 2, 2]), vi("i", "int64", [1, 1, 2, 2])],
      outputs: [vi("y", "float32", [1, 1, 3, 3])],
    }),
    { source: "unpool test" },
  );
  const good = await unpool.run({
    x: f32([1, 1, 2, 2]),
    i: cpuTensor("int64", [1, 1, 2, 2], [0, 2, 6, 8]),
  });
  assertEquals([...good.y.shape], [1, 1, 3, 3]);
  error = undefined;
  try {
    await unpool.run({ x: f32([1, 1, 2, 2]), i: cpuTensor("int64", [1, 1, 2, 2], [0, 2, 9, 8]) });
  } catch (e) {
    error = e as Error;
  }
  assertEquals(/'unpool'.*index 9 is outside/.test(String(error?.message)), true);
  roi.dispose();
  unpool.dispose();
});
