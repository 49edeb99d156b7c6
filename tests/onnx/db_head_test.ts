/** A DBNet-style text-detection head, the way PaddleOCR's detector ends (Conv-BN-ReLU, two
 * ConvTranspose 2x2/2 upsamplings, Sigmoid), exported by torch.onnx with random weights
 * (tests/onnx/data/db_head/make_db_head.py): the engine's output matches PyTorch in float64. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { cpuTensor } from "../../src/util/tensor.ts";
import { readNpy, toNumbers } from "../../src/util/npy.ts";
import { loadModel } from "../../src/onnx/mod.ts";
import { assertClose } from "../helpers.ts";

const dir = fileURLToPath(new URL("./data/db_head/", import.meta.url));

Deno.test("onnx: a DBNet-style detection head (ConvTranspose upsampling) matches PyTorch float64", async () => {
  const model = await loadModel(`${dir}db_head.onnx`);
  try {
    const x = readNpy(`${dir}x.npy`);
    const want = readNpy(`${dir}maps_f64.npy`);
    const out = await model.run({ x: cpuTensor("float32", x.shape, x.data as Float32Array) });
    assertEquals(out.maps.shape, want.shape);
    assertClose(out.maps.data, toNumbers(want), { rtol: 1e-5, atol: 1e-6, label: "maps" });
  } finally {
    model.dispose();
  }
});
