/** Vision operators (GridSample, AffineGrid, RoiAlign, LRN, LpPool, MaxUnpool, CenterCropPad,
 * Col2Im, DeformConv): attribute handling per opset, shape inference, errors naming the node,
 * and the GPU path against the CPU path, each node run as a model (tests/onnx/harness.ts). */
import "../gpu_teardown.ts";
import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { UnsupportedFeatureError } from "../../src/onnx/graph.ts";
import type { TensorInfo } from "../../src/onnx/types.ts";
import { randomF32, runNode, throwsOnInfer } from "./harness.ts";

/** GPU against the CPU path (f32 arithmetic against float64). */
const GPU_TOL = { rtol: 1e-4, atol: 1e-5 };

let seed = 4200;
const f32 = (shape: number[], lo = -1, hi = 1) => randomF32(shape, seed++, lo, hi);
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
      const y = (await runNode("GridSample", [x, grid], {
        attrs: { mode, padding_mode, align_corners: 1 },
        opset: 16,
        tol: GPU_TOL,
      })).cpu[0];
      assertEquals([...y.shape], [2, 3, 4, 6]);
    }
  }
  for (const mode of ["linear", "nearest", "cubic"]) {
    await runNode("GridSample", [x, grid], { attrs: { mode }, opset: 20, tol: GPU_TOL });
  }
  const y5 = (await runNode("GridSample", [f32([1, 2, 3, 4, 5]), f32([1, 2, 3, 4, 3])], {
    attrs: { mode: "nearest" },
    opset: 20,
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals([...y5.shape], [1, 2, 2, 3, 4]);
  const gi = [fi([2, 3, 5, 7]), fi([2, 4, 6, 2])];
  throwsOnInfer("GridSample", { mode: "linear" }, gi, /unknown mode 'linear'/, 16);
  throwsOnInfer("GridSample", { mode: "bilinear" }, gi, /unknown mode 'bilinear'/, 20);
  throwsOnInfer("GridSample", { padding_mode: "wrap" }, gi, /padding_mode 'wrap'/, 20);
  throwsOnInfer("GridSample", { align_corners: 2 }, gi, /align_corners/, 20);
  throwsOnInfer("GridSample", {}, [fi([1, 2, 3, 4, 5]), fi([1, 2, 3, 4, 3])], /4-D/, 16);
  throwsOnInfer(
    "GridSample",
    { mode: "cubic" },
    [fi([1, 2, 3, 4, 5]), fi([1, 2, 3, 4, 3])],
    /cubic/,
    20,
  );
  throwsOnInfer("GridSample", {}, [fi([2, 3, 5, 7]), fi([2, 4, 6, 3])], /last axis is 3/, 20);
  throwsOnInfer("GridSample", {}, [fi([2, 3, 5, 7]), fi([1, 4, 6, 2])], /batch/, 20);
  throwsOnInfer(
    "GridSample",
    {},
    [fi([2, 3, 5, 7], "int32"), fi([2, 4, 6, 2])],
    /int32/,
    20,
    UnsupportedFeatureError,
  );
});

Deno.test("AffineGrid: 2-D and 3-D shapes; size must be constant and fit theta", async () => {
  const y = (await runNode("AffineGrid", [f32([2, 2, 3]), i64(2, 3, 5, 7)], {
    attrs: { align_corners: 1 },
    opset: 20,
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals([...y.shape], [2, 5, 7, 2]);
  const z =
    (await runNode("AffineGrid", [f32([1, 3, 4]), i64(1, 1, 3, 4, 5)], { opset: 20, tol: GPU_TOL }))
      .cpu[0];
  assertEquals([...z.shape], [1, 3, 4, 5, 3]);
  throwsOnInfer("AffineGrid", {}, [fi([2, 2, 3]), fi([4], "int64")], /must be known/, 20);
  throwsOnInfer(
    "AffineGrid",
    {},
    [fi([2, 3, 4]), known(i64(2, 3, 5, 7))],
    /expected \[2,2,3\]/,
    20,
  );
  throwsOnInfer("AffineGrid", {}, [fi([2, 2, 3]), known(i64(2, 3, 5))], /size has 3 values/, 20);
});

Deno.test("RoiAlign: modes and coordinate modes per opset; bad inputs name the node", async () => {
  const x = f32([2, 3, 7, 9], -2, 2);
  const rois = cpuTensor("float32", [3, 4], [0, 0, 8, 6, 1.5, 2.5, 4, 5, -2, 3, 12, 4]);
  const batch = cpuTensor("int64", [3], [1, 0, 1]);
  for (const mode of ["avg", "max"]) {
    for (const coordinate_transformation_mode of ["half_pixel", "output_half_pixel"]) {
      const y = (await runNode("RoiAlign", [x, rois, batch], {
        attrs: {
          mode,
          coordinate_transformation_mode,
          output_height: 3,
          output_width: 2,
          sampling_ratio: 0,
          spatial_scale: 0.75,
        },
        opset: 16,
        tol: GPU_TOL,
      })).cpu[0];
      assertEquals([...y.shape], [3, 3, 3, 2]);
    }
  }
  // Opset 10 has no coordinate_transformation_mode: it is output_half_pixel.
  const attrs = { output_height: 2, output_width: 2, sampling_ratio: 2 };
  const v10 =
    (await runNode("RoiAlign", [x, rois, batch], { attrs, opset: 10, tol: GPU_TOL })).cpu[0];
  const v16 = (await runNode("RoiAlign", [x, rois, batch], {
    attrs: {
      ...attrs,
      coordinate_transformation_mode: "output_half_pixel",
    },
    opset: 16,
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals(Array.from(v10.data), Array.from(v16.data));
  const ins = [fi([2, 3, 7, 9]), fi([3, 4]), fi([3], "int64")];
  throwsOnInfer("RoiAlign", { mode: "sum" }, ins, /unknown mode 'sum'/, 16);
  throwsOnInfer(
    "RoiAlign",
    { coordinate_transformation_mode: "asymmetric" },
    ins,
    /asymmetric/,
    16,
  );
  throwsOnInfer("RoiAlign", { output_height: 0 }, ins, /output_height/, 16);
  throwsOnInfer("RoiAlign", { sampling_ratio: -1 }, ins, /sampling_ratio/, 16);
  throwsOnInfer(
    "RoiAlign",
    {},
    [fi([2, 3, 7, 9]), fi([3, 5]), fi([3], "int64")],
    /\[num_rois, 4\]/,
    16,
  );
  throwsOnInfer(
    "RoiAlign",
    {},
    [fi([2, 3, 7, 9]), fi([3, 4]), fi([2], "int64")],
    /batch_indices/,
    16,
  );
  throwsOnInfer(
    "RoiAlign",
    {},
    [fi([2, 3, 7, 9]), fi([3, 4]), known(cpuTensor("int64", [3], [0, 2, 1]))],
    /batch index 2/,
    16,
  );
});

Deno.test("LRN: shapes kept, size required", async () => {
  const y = (await runNode("LRN", [f32([2, 7, 3, 5], -3, 3)], {
    attrs: { size: 3, alpha: 0.01, bias: 2 },
    opset: 13,
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals([...y.shape], [2, 7, 3, 5]);
  throwsOnInfer("LRN", {}, [fi([1, 3, 4, 4])], /missing attribute 'size'/, 13);
  throwsOnInfer("LRN", { size: 0 }, [fi([1, 3, 4, 4])], /size must be/, 13);
  throwsOnInfer("LRN", { size: 3 }, [fi([1, 3])], /rank 2/, 13);
});

Deno.test("LpPool: auto_pad, dilations and ceil_mode (opset 18); bad attributes", async () => {
  const x = f32([1, 2, 9, 8], -2, 2);
  const same = (await runNode("LpPool", [x], {
    attrs: {
      kernel_shape: [3, 2],
      strides: [2, 2],
      auto_pad: "SAME_UPPER",
    },
    opset: 11,
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals([...same.shape], [1, 2, 5, 4]);
  const dil = (await runNode("LpPool", [x], {
    attrs: {
      kernel_shape: [2, 2],
      dilations: [2, 1],
      ceil_mode: 1,
      strides: [2, 3],
      p: 3,
    },
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals([...dil.shape], [1, 2, 4, 3]);
  const one = (await runNode("LpPool", [f32([2, 3, 11])], {
    attrs: { kernel_shape: [4], pads: [1, 2], p: 1 },
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals([...one.shape], [2, 3, 11]);
  throwsOnInfer("LpPool", {}, [fi([1, 2, 9, 8])], /kernel_shape/, 18);
  throwsOnInfer(
    "LpPool",
    { kernel_shape: [2] },
    [fi([1, 2, 9, 8])],
    /kernel_shape has 1 values/,
    18,
  );
  throwsOnInfer(
    "LpPool",
    { kernel_shape: [2, 2], p: 0 },
    [fi([1, 2, 9, 8])],
    /p must be positive/,
    18,
  );
  throwsOnInfer(
    "LpPool",
    { kernel_shape: [2, 2], auto_pad: "SAME" },
    [fi([1, 2, 9, 8])],
    /auto_pad/,
    18,
  );
  throwsOnInfer(
    "LpPool",
    { kernel_shape: [2, 2], ceil_mode: 1, auto_pad: "SAME_LOWER" },
    [fi([1, 2, 9, 8])],
    /ceil_mode/,
    18,
  );
  throwsOnInfer(
    "LpPool",
    { kernel_shape: [2, 2], pads: [0, 0, -1, 0] },
    [fi([1, 2, 9, 8])],
    /pads/,
    18,
  );
});

Deno.test("MaxUnpool: inferred and explicit output shapes; bad indices name the node", async () => {
  const x = cpuTensor("float32", [1, 1, 2, 2], [5, 6, 7, 8]);
  const idx = cpuTensor("int64", [1, 1, 2, 2], [5, 7, 13, 15]);
  const y = (await runNode("MaxUnpool", [x, idx], {
    attrs: { kernel_shape: [2, 2], strides: [2, 2] },
    opset: 11,
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals([...y.shape], [1, 1, 4, 4]);
  assertEquals(Array.from(y.data), [0, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 0, 0, 7, 0, 8]);
  // An explicit, larger output holds the unpooled tensor at its origin (pads then ignored).
  const z = (await runNode("MaxUnpool", [x, idx, i64(1, 1, 5, 5)], {
    attrs: {
      kernel_shape: [2, 2],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
    },
    opset: 11,
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals(Array.from(z.data).slice(5, 10), [0, 5, 0, 6, 0]);
  const ins = [fi([1, 1, 2, 2]), fi([1, 1, 2, 2], "int64")];
  const attrs = { kernel_shape: [2, 2], strides: [2, 2] };
  throwsOnInfer(
    "MaxUnpool",
    attrs,
    [...ins, known(i64(1, 1, 3, 5))],
    /smaller than the inferred/,
    11,
  );
  throwsOnInfer("MaxUnpool", attrs, [...ins, known(i64(1, 2, 4, 4))], /keep X's N and C/, 11);
  throwsOnInfer("MaxUnpool", attrs, [...ins, known(i64(1, 1, 4))], /X's rank 4/, 11);
  throwsOnInfer("MaxUnpool", attrs, [ins[0], fi([1, 1, 2, 3], "int64")], /X's shape/, 11);
  throwsOnInfer(
    "MaxUnpool",
    attrs,
    [ins[0], known(cpuTensor("int64", [1, 1, 2, 2], [0, 1, 2, 16]))],
    /index 16 is outside/,
    11,
  );
  throwsOnInfer("MaxUnpool", { strides: [2, 2] }, ins, /kernel_shape/, 11);
});

Deno.test("CenterCropPad: crop, pad and both, axes; bad shapes name the node", async () => {
  const x = cpuTensor("float32", [3, 4], Array.from({ length: 12 }, (_, i) => i + 1));
  const y = (await runNode("CenterCropPad", [x, i64(6, 1)], { tol: GPU_TOL })).cpu[0];
  assertEquals([...y.shape], [6, 1]);
  // Padding 3 rows: one before, two after; cropping 4 columns to 1 keeps column 1.
  assertEquals(Array.from(y.data), [0, 2, 6, 10, 0, 0]);
  const hwc = (await runNode("CenterCropPad", [f32([5, 7, 3]), i64(3, 8)], {
    attrs: { axes: [-3, -2] },
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals([...hwc.shape], [3, 8, 3]);
  const ints =
    (await runNode("CenterCropPad", [cpuTensor("int32", [2, 3], [1, 2, 3, 4, 5, 6]), i64(4)], {
      attrs: { axes: [1] },
      tol: GPU_TOL,
    })).cpu[0];
  assertEquals(Array.from(ints.data), [1, 2, 3, 0, 4, 5, 6, 0]);
  throwsOnInfer("CenterCropPad", {}, [fi([3, 4]), known(i64(2))], /1 values for 2 axes/, 18);
  throwsOnInfer("CenterCropPad", { axes: [0, 0] }, [fi([3, 4]), known(i64(2, 2))], /repeated/, 18);
  throwsOnInfer("CenterCropPad", { axes: [2] }, [fi([3, 4]), known(i64(2))], /out of range/, 18);
  throwsOnInfer("CenterCropPad", {}, [fi([3, 4]), known(i64(2, -1))], /non-negative/, 18);
});

Deno.test("Col2Im: shapes from image and block shapes; mismatched block counts name the node", async () => {
  const y = (await runNode("Col2Im", [f32([2, 12, 9]), i64(5, 6), i64(2, 3)], {
    attrs: {
      strides: [1, 2],
      pads: [0, 1, 0, 1],
      dilations: [2, 1],
    },
    tol: GPU_TOL,
  })).cpu[0];
  assertEquals([...y.shape], [2, 2, 5, 6]);
  const ins = [fi([1, 6, 10]), known(i64(5, 5)), known(i64(2, 3))];
  throwsOnInfer("Col2Im", {}, ins, /number of sliding blocks/, 18);
  throwsOnInfer("Col2Im", {}, [fi([1, 7, 12]), known(i64(5, 5)), known(i64(2, 3))], /multiple/, 18);
  throwsOnInfer(
    "Col2Im",
    { strides: [1] },
    [fi([1, 6, 12]), known(i64(5, 5)), known(i64(2, 3))],
    /strides/,
    18,
  );
  throwsOnInfer(
    "Col2Im",
    {},
    [fi([1, 6, 12]), fi([2], "int64"), known(i64(2, 3))],
    /must be known/,
    18,
  );
});

Deno.test("DeformConv: optional bias and mask, groups; inconsistent inputs name the node", async () => {
  const x = f32([1, 4, 6, 5]);
  const w = f32([6, 2, 3, 2]);
  const offset = f32([1, 2 * 6 * 2, 4, 4], -2, 2);
  const attrs = { group: 2, offset_group: 2, kernel_shape: [3, 2] };
  const y =
    (await runNode("DeformConv", [x, w, offset], { attrs, opset: 19, tol: GPU_TOL })).cpu[0];
  assertEquals([...y.shape], [1, 6, 4, 4]);
  await runNode("DeformConv", [x, w, offset, f32([6]), f32([1, 12, 4, 4], 0, 1)], {
    attrs,
    opset: 19,
    tol: GPU_TOL,
  });
  await runNode("DeformConv", [x, w, offset, undefined, f32([1, 12, 4, 4], 0, 1)], {
    attrs,
    opset: 19,
    tol: GPU_TOL,
  });
  const ins = [fi([1, 4, 6, 5]), fi([6, 2, 3, 2]), fi([1, 24, 4, 4])];
  throwsOnInfer("DeformConv", { ...attrs, group: 3 }, ins, /groups/, 19);
  throwsOnInfer("DeformConv", { ...attrs, kernel_shape: [3, 3] }, ins, /kernel_shape/, 19);
  throwsOnInfer("DeformConv", { ...attrs, offset_group: 1 }, ins, /offset is/, 19);
  throwsOnInfer("DeformConv", attrs, [...ins, fi([5])], /B is/, 19);
  throwsOnInfer(
    "DeformConv",
    {},
    [fi([1, 4, 6]), fi([6, 4, 3]), fi([1, 6, 4])],
    /2-D/,
    19,
    UnsupportedFeatureError,
  );
});

Deno.test("RoiAlign and MaxUnpool: indices known only at run time are checked on the GPU", async () => {
  const x = f32([2, 1, 4, 4]);
  const rois = cpuTensor("float32", [2, 4], [0, 0, 3, 3, 1, 1, 2, 2]);
  // Valid indices: every path agrees. Invalid ones: the GPU path alone, which must refuse them.
  const roi = (b: number[], fold = true) =>
    runNode("RoiAlign", [x, rois, cpuTensor("int64", [2], b)], {
      opset: 16,
      attrs: { output_height: 2 },
      tol: GPU_TOL,
      fold,
    });
  assertEquals([...(await roi([1, 0])).gpu[0].shape], [2, 1, 2, 1]);
  await rejects(roi([0, 2], false), /'RoiAlign_0'.*batch index 2 is outside \[0, 2\)/);
  const unpool = (i: number[], fold = true) =>
    runNode("MaxUnpool", [f32([1, 1, 2, 2]), cpuTensor("int64", [1, 1, 2, 2], i)], {
      opset: 11,
      attrs: { kernel_shape: [2, 2] },
      tol: GPU_TOL,
      fold,
    });
  assertEquals([...(await unpool([0, 2, 6, 8])).gpu[0].shape], [1, 1, 3, 3]);
  await rejects(unpool([0, 2, 9, 8], false), /'MaxUnpool_0'.*index 9 is outside/);
});
