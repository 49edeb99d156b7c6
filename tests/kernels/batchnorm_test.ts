import { getGpu } from "../../src/gpu/mod.ts";
import { cpuTensor, roundToF16, sizeOf } from "../../src/util/tensor.ts";
import { type BatchNormParams, prepareBatchNorm } from "../../src/kernels/batchnorm.ts";
import { batchNormRef } from "../../src/kernels/batchnorm_ref.ts";
import { batchNormLayout } from "../../src/kernels/batchnorm_shape.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

let seed = 500;

async function check(
  shape: number[],
  perPosition: boolean,
  onGpu: boolean,
  f16 = false,
): Promise<void> {
  const gpu = await getGpu();
  const layout = batchNormLayout(shape, perPosition);
  const dtype = f16 ? "float16" : "float32";
  const x = cpuTensor(dtype, shape, randomFloats(sizeOf(shape), seed++, -3, 3));
  const vectors = [
    randomFloats(layout.params, seed++, 0.5, 2), // scale
    randomFloats(layout.params, seed++), // bias
    randomFloats(layout.params, seed++), // mean
    randomFloats(layout.params, seed++, 0.1, 3), // variance
  ].map((v) => cpuTensor("float32", [layout.params], v));
  const eps = 1e-3;
  const [scale, bias, mean, variance] = vectors.map((v) => v.data);
  const ref = batchNormRef(x.data, layout, scale, bias, mean, variance, eps);
  const [got] = await runKernel(gpu, onGpu ? [x, ...vectors] : [x], [shape], (scope, ins, [y]) => {
    const src = onGpu ? ins.slice(1) : vectors;
    const p = { scale: src[0], bias: src[1], mean: src[2], variance: src[3] } as BatchNormParams;
    return prepareBatchNorm(gpu, scope, ins[0], y, layout, p, eps);
  });
  const label = JSON.stringify({ shape, perPosition, onGpu, f16 });
  if (f16) {
    assertHalfValues(got, label);
    assertClose(got.data, ref.map(roundToF16), { rtol: 1e-3, atol: 1e-3, label });
  } else {
    assertClose(got.data, ref, { rtol: 1e-5, atol: 1e-5, label });
  }
}

Deno.test("batchnorm: per channel, 1-D to 3-D and rank 2, host and GPU parameters", async () => {
  for (
    const shape of [[2, 3, 7, 5], [1, 64, 13, 13], [3, 5, 17], [2, 4], [1, 3, 3, 4, 5], [
      1,
      1,
      1,
      1,
    ]]
  ) {
    await check(shape, false, false);
    await check(shape, false, true);
  }
});

Deno.test("batchnorm: per channel and position (opset < 9, spatial = 0)", async () => {
  await check([2, 3, 4, 5], true, false);
  await check([3, 2, 7], true, true);
});

Deno.test("batchnorm: float16 outputs are rounded to half precision", async () => {
  await check([2, 3, 5, 5], false, false, true);
});
