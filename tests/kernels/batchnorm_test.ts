import {
  allocTensor,
  getGpu,
  readTensor,
  releaseTensor,
  ResourceScope,
  submitDispatches,
  uploadTensor,
} from "../../src/gpu/mod.ts";
import { cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { type BatchNormParams, prepareBatchNorm } from "../../src/kernels/batchnorm.ts";
import { batchNormLayout, batchNormRef } from "../../src/kernels/batchnorm_ref.ts";
import { assertClose, randomFloats } from "../helpers.ts";

let seed = 500;

async function check(
  shape: number[],
  perPosition: boolean,
  onGpu: boolean,
  f16 = false,
): Promise<void> {
  const gpu = await getGpu();
  const layout = batchNormLayout(shape, perPosition);
  const xData = randomFloats(shape.reduce((a, b) => a * b, 1), seed++, -3, 3);
  const vectors = [
    randomFloats(layout.params, seed++, 0.5, 2), // scale
    randomFloats(layout.params, seed++), // bias
    randomFloats(layout.params, seed++), // mean
    randomFloats(layout.params, seed++, 0.1, 3), // variance
  ];
  const eps = 1e-3;
  const ref = batchNormRef(xData, layout, vectors[0], vectors[1], vectors[2], vectors[3], eps);
  const scope = new ResourceScope();
  const dtype = f16 ? "float16" : "float32";
  const x = uploadTensor(gpu, xData, shape, dtype, "x");
  const y = allocTensor(gpu, shape, dtype, "y");
  const uploaded = vectors.map((v) => uploadTensor(gpu, v, [layout.params], "float32"));
  const host = vectors.map((v) => cpuTensor("float32", [layout.params], v));
  const src = onGpu ? uploaded : host;
  const p = { scale: src[0], bias: src[1], mean: src[2], variance: src[3] } as BatchNormParams;
  submitDispatches(gpu, prepareBatchNorm(gpu, scope, x, y, layout, p, eps));
  const got = await readTensor(gpu, y);
  for (const t of [x, y, ...uploaded]) releaseTensor(gpu, t);
  scope.dispose();
  const label = JSON.stringify({ shape, perPosition, onGpu, f16 });
  if (f16) {
    const unrounded = got.findIndex((v) => v !== roundToF16(v));
    if (unrounded >= 0) throw new Error(`${label}: output ${got[unrounded]} is not a half value`);
    assertClose(got, ref.map(roundToF16), { rtol: 1e-3, atol: 1e-3, label });
  } else {
    assertClose(got, ref, { rtol: 1e-5, atol: 1e-5, label });
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
