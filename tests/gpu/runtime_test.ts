import "../gpu_teardown.ts";
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  allocTensor,
  downloadTensor,
  getGpu,
  releaseTensor,
  ResourceScope,
  sizeClass,
  splitWorkgroups,
  submitDispatches,
  uploadCpuTensor,
} from "../../src/gpu/mod.ts";
import { cpuTensor, roundToF16 } from "../../src/util/tensor.ts";
import { prepareFill } from "../../src/kernels/fill.ts";
import { fillRef } from "../../src/kernels/fill_ref.ts";

Deno.test("gpu: adapter is described", async () => {
  const gpu = await getGpu();
  const text = gpu.describe();
  if (!text.includes("maxStorageBufferBindingSize")) throw new Error(text);
});

/** The backends the user asked for, read before this file makes a device. */
const backendAsked = Deno.env.get("DENO_WEBGPU_BACKEND");

Deno.test({
  name: "gpu: on Linux only the Vulkan backend is started (EGL's thread data broke process exit)",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await getGpu();
    const backend = Deno.env.get("DENO_WEBGPU_BACKEND");
    assertEquals(backend, backendAsked ?? "vulkan");
    if (backend === "vulkan") {
      const libraries = Deno.readTextFileSync("/proc/self/maps");
      assertEquals(/libEGL/.test(libraries), false, "libEGL was loaded beside Vulkan");
    }
  },
});

Deno.test("gpu: upload/download round trip for every dtype", async () => {
  const gpu = await getGpu();
  for (const dtype of ["float32", "float16", "int32", "int64", "bool"] as const) {
    const values = dtype === "bool"
      ? [1, 0, 1]
      : dtype.startsWith("int")
      ? [1, -2, 3]
      : [1.5, -2.25, 3];
    const t = uploadCpuTensor(gpu, cpuTensor(dtype, [3], values));
    const back = await downloadTensor(gpu, t);
    assertEquals(Array.from(back.data), values);
    releaseTensor(gpu, t);
  }
});

Deno.test("gpu: int64 outside i32 is a clear error", async () => {
  const gpu = await getGpu();
  const bad = cpuTensor("int64", [2], [1, 2 ** 40]);
  throws(() => uploadCpuTensor(gpu, bad, "ids"), /ids: int64 value/);
});

Deno.test("gpu: fill kernel matches reference at odd sizes, with split dispatches", async () => {
  const gpu = await getGpu();
  for (const n of [1, 7, 255, 257, 1000]) {
    const t = allocTensor(gpu, [n], "float32");
    const scope = new ResourceScope();
    submitDispatches(gpu, prepareFill(gpu, scope, t, 0.5));
    const back = await downloadTensor(gpu, t);
    assertEquals(Array.from(back.data), Array.from(fillRef(n, 0.5)));
    releaseTensor(gpu, t);
    scope.dispose();
  }
  const [x, y] = splitWorkgroups(gpu, 200_000);
  if (x * y < 200_000 || x > gpu.limits.maxComputeWorkgroupsPerDimension) throw new Error("split");
});

Deno.test("gpu: pool reuses buffers by size class", async () => {
  const gpu = await getGpu();
  assertEquals(sizeClass(1000), 1024);
  assertEquals(sizeClass(1100), 1280);
  const a = allocTensor(gpu, [300], "float32");
  releaseTensor(gpu, a);
  const b = allocTensor(gpu, [290], "float32");
  assertEquals(a.buffer, b.buffer);
  releaseTensor(gpu, b);
});

Deno.test("gpu: float16 rounding is IEEE round-to-nearest-even", () => {
  assertEquals(roundToF16(1 + 2 ** -11), 1); // tie -> even
  assertEquals(roundToF16(1 + 3 * 2 ** -11), 1 + 2 ** -9);
  assertEquals(roundToF16(70000), Infinity);
  assertEquals(roundToF16(2 ** -25), 0);
});
