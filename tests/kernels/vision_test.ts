/** Vision kernels (GridSample, AffineGrid, RoiAlign, LRN, LpPool, MaxUnpool, Col2Im, DeformConv):
 * each GPU kernel against its host reference at odd sizes in every mode, outputs pre-filled with
 * garbage; plus a few closed-form checks of the references themselves (the ONNX conformance
 * cases check them against the ONNX reference's data). */
import "../gpu_teardown.ts";
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type CpuTensor, cpuTensor, roundToF16, sizeOf } from "../../src/util/tensor.ts";
import { getGpu } from "../../src/gpu/mod.ts";
import { prepareCol2Im } from "../../src/kernels/col2im.ts";
import { col2ImRef } from "../../src/kernels/col2im_ref.ts";
import { type Col2ImAttrs, col2ImShape } from "../../src/kernels/col2im_shape.ts";
import { prepareDeformConv } from "../../src/kernels/deform_conv.ts";
import { deformConvRef } from "../../src/kernels/deform_conv_ref.ts";
import { type DeformConvAttrs, deformConvShape } from "../../src/kernels/deform_conv_shape.ts";
import { prepareAffineGrid, prepareGridSample } from "../../src/kernels/grid_sample.ts";
import { roundHalfEven } from "../../src/kernels/elementwise_ref.ts";
import { affineGridRef, gridSampleRef } from "../../src/kernels/grid_sample_ref.ts";
import {
  affineGridShape,
  type GridPaddingMode,
  type GridSampleMode,
  gridSampleShape,
} from "../../src/kernels/grid_sample_shape.ts";
import { prepareLpPool } from "../../src/kernels/lp_pool.ts";
import { lpPoolRef } from "../../src/kernels/lp_pool_ref.ts";
import { prepareLrn } from "../../src/kernels/lrn.ts";
import { lrnRef } from "../../src/kernels/lrn_ref.ts";
import { prepareMaxUnpool } from "../../src/kernels/max_unpool.ts";
import { maxUnpoolRef } from "../../src/kernels/max_unpool_ref.ts";
import { maxPoolRef } from "../../src/kernels/pool_ref.ts";
import { type PoolAttrs, poolOutputShape } from "../../src/kernels/pool_shape.ts";
import { prepareRoiAlign } from "../../src/kernels/roi_align.ts";
import { roiAlignRef } from "../../src/kernels/roi_align_ref.ts";
import type { RoiAlignOptions } from "../../src/kernels/roi_align_shape.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import {
  assertHalfValues,
  assertSameTensor,
  assertTensorClose,
  randomInts,
  runKernel,
  uniformTensor,
} from "./harness.ts";

let seed = 1300;

/** Random floats in [lo, hi), rounded to half precision for float16. */
function floats(
  dtype: "float32" | "float16",
  shape: readonly number[],
  lo = -1,
  hi = 1,
): CpuTensor {
  return uniformTensor(dtype, shape, seed++, lo, hi);
}

/** GPU (f32 arithmetic) against the float64 reference; float16 allows one half-precision step
 * (and must hold half values). */
function close(got: CpuTensor, want: CpuTensor, label: string): void {
  const half = got.dtype === "float16";
  assertTensorClose(got, want, { rtol: half ? 2e-3 : 1e-4, atol: half ? 2e-3 : 1e-5, label });
  if (half) assertHalfValues(got, label);
}

// ---- GridSample ----

const GRID_MODES: GridSampleMode[] = ["nearest", "linear", "cubic"];
const PADDINGS: GridPaddingMode[] = ["zeros", "border", "reflection"];

Deno.test("grid sample: every mode, padding and align_corners, 1-3 spatial axes", async () => {
  const gpu = await getGpu();
  const cases: { x: number[]; out: number[] }[] = [
    { x: [2, 3, 7], out: [5] },
    { x: [2, 3, 5, 7], out: [4, 9] },
    { x: [1, 2, 3, 5, 4], out: [3, 2, 5] },
    { x: [1, 1, 1, 6], out: [3, 3] }, // a length-1 axis
  ];
  for (const { x: xs, out } of cases) {
    const rank = xs.length - 2;
    for (const mode of GRID_MODES) {
      if (mode === "cubic" && rank !== 2) continue;
      for (const padding of PADDINGS) {
        for (const alignCorners of [false, true]) {
          for (const dtype of ["float32", "float16"] as const) {
            if (dtype === "float16" && (padding !== "reflection" || !alignCorners)) continue;
            const opts = { mode, padding, alignCorners };
            const x = floats(dtype, xs);
            // Coordinates reach past [-1, 1] so every padding rule is exercised.
            const grid = floats(dtype, [xs[0], ...out, rank], -1.6, 1.6);
            const want = gridSampleRef(x, grid, opts);
            const [got] = await runKernel(
              gpu,
              [x, grid],
              [gridSampleShape(xs, grid.shape)],
              (scope, [gx, gg], [gy]) => prepareGridSample(gpu, scope, gx, gg, gy, opts),
            );
            close(got, want, `grid sample ${JSON.stringify({ xs, out, dtype, ...opts })}`);
          }
        }
      }
    }
  }
});

Deno.test("grid sample reference: identity grid reproduces X; nearest rounds half to even", () => {
  const x = cpuTensor("float32", [1, 1, 3, 4], Array.from({ length: 12 }, (_, i) => i));
  // align_corners grid points at the pixel centres.
  const g: number[] = [];
  for (let h = 0; h < 3; h++) for (let w = 0; w < 4; w++) g.push(-1 + (2 * w) / 3, -1 + h);
  const grid = cpuTensor("float32", [1, 3, 4, 2], g);
  for (const mode of GRID_MODES) {
    const y = gridSampleRef(x, grid, { mode, padding: "zeros", alignCorners: true });
    assertClose(y.data, x.data, { atol: 1e-9, label: mode });
  }
  assertEquals([0.5, 1.5, 2.5, -0.5, -1.5].map(roundHalfEven), [0, 2, 2, -0, -2]);
});

// ---- AffineGrid ----

Deno.test("affine grid: 2-D and 3-D, align_corners, odd sizes", async () => {
  const gpu = await getGpu();
  for (const size of [[2, 3, 5, 7], [1, 1, 1, 4], [2, 1, 3, 5, 4], [1, 2, 1, 1, 3]]) {
    const rank = size.length - 2;
    for (const alignCorners of [false, true]) {
      for (const dtype of ["float32", "float16"] as const) {
        const theta = floats(dtype, [size[0], rank, rank + 1]);
        const want = affineGridRef(theta, size, alignCorners);
        const [got] = await runKernel(
          gpu,
          [theta],
          [affineGridShape(theta.shape, size)],
          (scope, [t], [g]) => prepareAffineGrid(gpu, scope, t, size, g, alignCorners),
        );
        close(got, want, `affine grid ${JSON.stringify({ size, alignCorners, dtype })}`);
      }
    }
  }
});

Deno.test("affine grid reference: the identity theta gives the base grid", () => {
  const theta = cpuTensor("float32", [1, 2, 3], [1, 0, 0, 0, 1, 0]);
  const y = affineGridRef(theta, [1, 1, 2, 3], false);
  assertClose(y.data, [-2 / 3, -0.5, 0, -0.5, 2 / 3, -0.5, -2 / 3, 0.5, 0, 0.5, 2 / 3, 0.5], {
    label: "no align",
  });
  const z = affineGridRef(theta, [1, 1, 2, 3], true);
  assertClose(z.data, [-1, -1, 0, -1, 1, -1, -1, 1, 0, 1, 1, 1], { label: "align" });
});

// ---- RoiAlign ----

Deno.test("roi align: avg and max, both coordinate modes, fixed and adaptive sampling", async () => {
  const gpu = await getGpu();
  const xs = [2, 3, 9, 11];
  const r = 5;
  // Regions in image units of a 2x larger image (spatial_scale 0.5), some past the edges.
  const corners = Array.from(randomFloats(r * 4, seed++, -4, 26));
  const roiData: number[] = [];
  for (let k = 0; k < r; k++) {
    const [a, b, c, d] = corners.slice(4 * k, 4 * k + 4);
    roiData.push(Math.min(a, c), Math.min(b, d), Math.max(a, c), Math.max(b, d));
  }
  for (const dtype of ["float32", "float16"] as const) {
    const x = floats(dtype, xs, -2, 2);
    const rois = cpuTensor(dtype, [r, 4], dtype === "float16" ? roiData.map(roundToF16) : roiData);
    const batch = cpuTensor("int64", [r], randomInts(r, seed++, 0, xs[0]));
    for (const mode of ["avg", "max"] as const) {
      for (const halfPixel of [true, false]) {
        for (const samplingRatio of [0, 2]) {
          if (dtype === "float16" && (mode === "max" || samplingRatio === 2)) continue;
          const o: RoiAlignOptions = {
            mode,
            outputHeight: 3,
            outputWidth: 5,
            samplingRatio,
            spatialScale: 0.5,
            halfPixel,
          };
          const want = roiAlignRef(x, rois, batch, o);
          const [got] = await runKernel(
            gpu,
            [x, rois, batch],
            [[r, xs[1], 3, 5]],
            (scope, [gx, gr, gb], [gy]) => prepareRoiAlign(gpu, scope, gx, gr, gb, gy, o),
          );
          close(got, want, `roi align ${JSON.stringify({ dtype, ...o })}`);
        }
      }
    }
  }
});

// ---- LRN ----

Deno.test("lrn: odd and even window sizes, rank 3 and 4", async () => {
  const gpu = await getGpu();
  for (const xs of [[2, 7, 3, 5], [1, 5, 9]]) {
    for (const size of [1, 3, 4, 5, 9]) {
      for (const dtype of ["float32", "float16"] as const) {
        const o = { size, alpha: 0.02, beta: 0.75, bias: 1.5 };
        const x = floats(dtype, xs, -3, 3);
        const want = lrnRef(x, o);
        const [got] = await runKernel(
          gpu,
          [x],
          [xs],
          (scope, [gx], [gy]) => prepareLrn(gpu, scope, gx, gy, o),
        );
        close(got, want, `lrn ${JSON.stringify({ xs, size, dtype })}`);
      }
    }
  }
});

// ---- LpPool ----

Deno.test("lp pool: p 1, 2, 3 with strides, pads, dilations and ceil mode, 1-3 axes", async () => {
  const gpu = await getGpu();
  const cases: { xs: number[]; attrs: PoolAttrs }[] = [
    { xs: [2, 3, 11], attrs: { kernel: [3], strides: [2], pads: [1, 1], dilations: [1] } },
    {
      xs: [1, 3, 9, 7],
      attrs: { kernel: [3, 2], strides: [2, 1], pads: [1, 0, 2, 1], dilations: [1, 2] },
    },
    {
      xs: [2, 2, 7, 8],
      attrs: {
        kernel: [2, 3],
        strides: [2, 2],
        pads: [0, 1, 0, 1],
        dilations: [1, 1],
        ceilMode: true,
      },
    },
    {
      xs: [1, 2, 5, 4, 3],
      attrs: {
        kernel: [2, 2, 2],
        strides: [1, 2, 1],
        pads: [0, 0, 1, 1, 1, 0],
        dilations: [2, 1, 1],
      },
    },
  ];
  for (const { xs, attrs } of cases) {
    for (const p of [1, 2, 3]) {
      for (const dtype of ["float32", "float16"] as const) {
        if (dtype === "float16" && p !== 2) continue;
        const x = floats(dtype, xs, -2, 2);
        const want = lpPoolRef(x, attrs, p);
        const [got] = await runKernel(
          gpu,
          [x],
          [poolOutputShape(xs, attrs)],
          (scope, [gx], [gy]) => prepareLpPool(gpu, scope, gx, gy, attrs, p),
        );
        close(got, want, `lp pool ${JSON.stringify({ xs, attrs, p, dtype })}`);
      }
    }
  }
});

// ---- MaxUnpool ----

Deno.test("max unpool: inverts max pooling's indices, with and without a larger output", async () => {
  const gpu = await getGpu();
  const cases: { xs: number[]; attrs: PoolAttrs; grow: number[] }[] = [
    {
      xs: [2, 3, 9, 7],
      attrs: { kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], dilations: [1, 1] },
      grow: [0, 0, 1, 2],
    },
    {
      xs: [1, 2, 11],
      attrs: { kernel: [3], strides: [2], pads: [0, 0], dilations: [1] },
      grow: [0, 0, 3],
    },
    {
      xs: [1, 2, 5, 4, 7],
      attrs: {
        kernel: [2, 2, 3],
        strides: [2, 2, 3],
        pads: [0, 0, 0, 0, 0, 0],
        dilations: [1, 1, 1],
      },
      grow: [0, 0, 1, 0, 2],
    },
  ];
  for (const { xs, attrs, grow } of cases) {
    const rank = xs.length - 2;
    const source = floats("float32", xs, -2, 2);
    const pooled = maxPoolRef(source.data, xs, attrs);
    // Indices of the pooled tensor refer to the unpooled shape: (in - 1) * stride + kernel.
    const inferred = [
      xs[0],
      xs[1],
      ...pooled.shape.slice(2).map((d, a) => (d - 1) * attrs.strides[a] + attrs.kernel[a]),
    ];
    for (const dtype of ["float32", "int32"] as const) {
      const x = cpuTensor(
        dtype,
        pooled.shape,
        dtype === "int32" ? Array.from(pooled.data, (v) => Math.round(v * 1000)) : pooled.data,
      );
      // Re-flatten the indices from the pooled input's shape to the inferred shape.
      const idx = Array.from(pooled.indices, (i) => {
        const coords: number[] = [];
        for (let a = xs.length - 1; a >= 0; a--) {
          coords.unshift(i % xs[a]);
          i = Math.floor(i / xs[a]);
        }
        return coords.reduce((acc, c, a) => acc * inferred[a] + c, 0);
      });
      const indices = cpuTensor("int64", pooled.shape, idx);
      for (const shape of [inferred, inferred.map((d, a) => d + grow[a])]) {
        const want = maxUnpoolRef(x, indices, inferred, shape);
        const [got] = await runKernel(
          gpu,
          [x, indices],
          [shape],
          (scope, [gx, gi], [gy]) => prepareMaxUnpool(gpu, scope, gx, gi, gy, inferred),
        );
        assertSameTensor(got, want, `max unpool ${JSON.stringify({ xs, shape, dtype, rank })}`);
      }
    }
  }
});

// ---- Col2Im ----

Deno.test("col2im: 1-3 image axes with strides, pads and dilations", async () => {
  const gpu = await getGpu();
  const cases: { n: number; c: number; a: Col2ImAttrs }[] = [
    { n: 2, c: 3, a: { image: [11], block: [3], strides: [2], dilations: [1], pads: [1, 2] } },
    {
      n: 1,
      c: 2,
      a: { image: [7, 9], block: [2, 3], strides: [1, 2], dilations: [2, 1], pads: [1, 0, 0, 1] },
    },
    {
      n: 2,
      c: 1,
      a: { image: [5, 6], block: [3, 3], strides: [3, 2], dilations: [1, 1], pads: [1, 1, 1, 1] },
    },
    {
      n: 1,
      c: 2,
      a: {
        image: [3, 5, 4],
        block: [2, 2, 3],
        strides: [1, 2, 1],
        dilations: [1, 1, 1],
        pads: [0, 1, 0, 1, 0, 1],
      },
    },
  ];
  for (const { n, c, a } of cases) {
    const k = sizeOf(a.block);
    const blocks = a.image.map((len, i) =>
      Math.floor(
        (len + a.pads[i] + a.pads[i + a.image.length] - a.dilations[i] * (a.block[i] - 1) - 1) /
          a.strides[i],
      ) + 1
    );
    for (const dtype of ["float32", "float16"] as const) {
      const x = floats(dtype, [n, c * k, sizeOf(blocks)]);
      const want = col2ImRef(x, a);
      const [got] = await runKernel(
        gpu,
        [x],
        [col2ImShape(x.shape, a)],
        (scope, [gx], [gy]) => prepareCol2Im(gpu, scope, gx, gy, a),
      );
      close(got, want, `col2im ${JSON.stringify({ n, c, dtype, ...a })}`);
    }
  }
});

Deno.test("col2im reference: non-overlapping blocks are a reshuffle", () => {
  // 1 channel, 2x2 blocks tiling a 2x4 image: column k of block b is pixel (k / 2, 2b + k % 2).
  const x = cpuTensor("float32", [1, 4, 2], [0, 1, 2, 3, 4, 5, 6, 7]);
  const y = col2ImRef(x, {
    image: [2, 4],
    block: [2, 2],
    strides: [2, 2],
    dilations: [1, 1],
    pads: [0, 0, 0, 0],
  });
  assertEquals(Array.from(y.data), [0, 2, 1, 3, 4, 6, 5, 7]);
});

// ---- DeformConv ----

Deno.test("deform conv: groups, offset groups, bias and mask, strides, pads, dilations", async () => {
  const gpu = await getGpu();
  const cases: { xs: number[]; ws: number[]; a: DeformConvAttrs; bias: boolean; mask: boolean }[] =
    [
      {
        xs: [1, 2, 5, 7],
        ws: [3, 2, 3, 2],
        a: { strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0], group: 1, offsetGroup: 1 },
        bias: false,
        mask: false,
      },
      {
        xs: [2, 4, 7, 6],
        ws: [6, 2, 3, 3],
        a: { strides: [2, 1], dilations: [1, 2], pads: [1, 2, 1, 0], group: 2, offsetGroup: 2 },
        bias: true,
        mask: true,
      },
      {
        xs: [1, 4, 6, 5],
        ws: [2, 4, 2, 3],
        a: { strides: [1, 2], dilations: [2, 1], pads: [2, 1, 0, 1], group: 1, offsetGroup: 4 },
        bias: true,
        mask: false,
      },
    ];
  for (const { xs, ws, a, bias, mask } of cases) {
    const taps = ws[2] * ws[3];
    for (const dtype of ["float32", "float16"] as const) {
      const yShape = outShape(xs, ws, a);
      assertEquals(
        deformConvShape(xs, ws, [xs[0], a.offsetGroup * taps * 2, yShape[2], yShape[3]], a),
        yShape,
      );
      const x = floats(dtype, xs);
      const w = floats(dtype, ws);
      // Offsets of a few pixels move taps across pixel boundaries and off the edges.
      const offset = floats(dtype, [xs[0], a.offsetGroup * taps * 2, yShape[2], yShape[3]], -3, 3);
      const b = bias ? floats(dtype, [ws[0]]) : undefined;
      const m = mask
        ? floats(dtype, [xs[0], a.offsetGroup * taps, yShape[2], yShape[3]], 0, 1)
        : undefined;
      const want = deformConvRef(x, w, offset, a, b, m);
      const inputs = [x, w, offset, ...(b ? [b] : []), ...(m ? [m] : [])];
      const [got] = await runKernel(gpu, inputs, [yShape], (scope, gi, [gy]) =>
        prepareDeformConv(
          gpu,
          scope,
          gi[0],
          gi[1],
          gi[2],
          gy,
          a,
          b ? gi[3] : undefined,
          m ? gi[b ? 4 : 3] : undefined,
        ));
      close(got, want, `deform conv ${JSON.stringify({ xs, ws, dtype, bias, mask, ...a })}`);
    }
  }
});

/** The convolution output shape (what deformConvShape checks the offset against). */
function outShape(xs: number[], ws: number[], a: DeformConvAttrs): number[] {
  const o = [0, 1].map((i) =>
    Math.floor(
      (xs[2 + i] + a.pads[i] + a.pads[i + 2] - (a.dilations[i] * (ws[2 + i] - 1) + 1)) /
        a.strides[i],
    ) + 1
  );
  return [xs[0], ws[0], o[0], o[1]];
}

Deno.test("deform conv reference: zero offsets and a unit mask give the plain convolution", () => {
  const a: DeformConvAttrs = {
    strides: [1, 1],
    dilations: [1, 1],
    pads: [1, 1, 1, 1],
    group: 1,
    offsetGroup: 1,
  };
  const x = cpuTensor("float32", [1, 1, 2, 2], [1, 2, 3, 4]);
  const w = cpuTensor("float32", [1, 1, 2, 2], [1, 1, 1, 1]);
  const offset = cpuTensor("float32", [1, 8, 3, 3], new Array(72).fill(0));
  const mask = cpuTensor("float32", [1, 4, 3, 3], new Array(36).fill(1));
  const y = deformConvRef(x, w, offset, a, undefined, mask);
  // 2x2 box sums of the zero-padded 4x4 image.
  assertEquals(Array.from(y.data), [1, 3, 2, 4, 10, 6, 3, 7, 4]);
});
