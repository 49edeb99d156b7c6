import { getGpu, type Gpu } from "../../src/gpu/mod.ts";
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import { type RowStrategy } from "../../src/kernels/reduce.ts";
import { prepareSoftmax, type SoftmaxOptions } from "../../src/kernels/softmax.ts";
import { softmaxRef } from "../../src/kernels/softmax_ref.ts";
import { assertClose, randomFloats } from "../helpers.ts";
import { assertHalfValues, runKernel } from "./harness.ts";

async function runSoftmax(
  gpu: Gpu,
  x: CpuTensor,
  axis: number,
  options: SoftmaxOptions,
): Promise<CpuTensor> {
  const [y] = await runKernel(
    gpu,
    [x],
    [x.shape],
    (scope, [xt], [out]) => prepareSoftmax(gpu, scope, xt, out, axis, options),
  );
  return y;
}

const STRATEGIES: RowStrategy[] = ["thread", "group"];

Deno.test("softmax: odd row lengths along the last axis, both strategies, log and not", async () => {
  const gpu = await getGpu();
  let seed = 1;
  for (const n of [1, 7, 13, 257, 1000]) {
    const x = cpuTensor("float32", [5, n], randomFloats(5 * n, seed++, -4, 4));
    for (const log of [false, true]) {
      const want = softmaxRef(x, -1, { log });
      for (const strategy of STRATEGIES) {
        const got = await runSoftmax(gpu, x, -1, { log, strategy });
        assertClose(got.data, want.data, {
          rtol: 1e-5,
          atol: 1e-6,
          label: `n=${n} log=${log} ${strategy}`,
        });
      }
    }
  }
});

Deno.test("softmax: leading and middle axes, and opset<13 coerce-to-2D", async () => {
  const gpu = await getGpu();
  const shape = [3, 13, 7];
  const x = cpuTensor("float32", shape, randomFloats(3 * 13 * 7, 42, -3, 3));
  for (const axis of [0, 1, 2, -2]) {
    for (const coerce2d of [false, true]) {
      for (const log of [false, true]) {
        const want = softmaxRef(x, axis, { log, coerce2d });
        for (const strategy of STRATEGIES) {
          const got = await runSoftmax(gpu, x, axis, { log, coerce2d, strategy });
          const label = `axis ${axis} coerce ${coerce2d} log ${log} ${strategy}`;
          assertClose(got.data, want.data, { rtol: 1e-5, atol: 1e-6, label });
        }
      }
    }
  }
  // The two semantics really differ for a middle axis.
  const a = softmaxRef(x, 1, { coerce2d: true }).data;
  const b = softmaxRef(x, 1).data;
  if (a.every((v, i) => Math.abs(v - b[i]) < 1e-6)) throw new Error("coerce2d made no difference");
});

Deno.test("softmax: large values stay finite (max subtraction)", async () => {
  const gpu = await getGpu();
  const values = randomFloats(4 * 300, 5, -1, 1).map((v, i) => v * 50 + (i % 3) * 30000);
  const x = cpuTensor("float32", [4, 300], values);
  for (const log of [false, true]) {
    const want = softmaxRef(x, 1, { log });
    for (const strategy of STRATEGIES) {
      const got = await runSoftmax(gpu, x, 1, { log, strategy });
      for (const v of got.data) if (!Number.isFinite(v)) throw new Error(`non-finite ${v}`);
      assertClose(got.data, want.data, { rtol: 1e-4, atol: 1e-6, label: `large log=${log}` });
    }
  }
  // Rows sum to one.
  const got = await runSoftmax(gpu, x, 1, {});
  for (let r = 0; r < 4; r++) {
    let s = 0;
    for (let k = 0; k < 300; k++) s += got.data[r * 300 + k];
    assertClose([s], [1], { rtol: 1e-5 });
  }
});

Deno.test("softmax: float16 results are rounded to half precision", async () => {
  const gpu = await getGpu();
  const x = cpuTensor("float16", [6, 29], randomFloats(6 * 29, 8, -2, 2));
  const got = await runSoftmax(gpu, x, 1, {});
  assertClose(got.data, softmaxRef(x, 1).data, { rtol: 2e-3, atol: 1e-5 });
  assertHalfValues(got, "float16 softmax");
});
