import { deepStrictEqual } from "node:assert/strict";
import { cpuTensor } from "../../src/util/tensor.ts";
import { getGpu } from "../../src/gpu/mod.ts";
import { preparePad, prepareTile } from "../../src/kernels/pad.ts";
import { padRef, padSource, tileRef } from "../../src/kernels/pad_ref.ts";
import type { PadMode } from "../../src/kernels/pad_shape.ts";
import { rng } from "../helpers.ts";
import { assertSameTensor, randomTensor, runKernel } from "./harness.ts";

const MODES: PadMode[] = ["constant", "reflect", "edge", "wrap"];

Deno.test("padSource: numpy semantics of each mode", () => {
  // numpy.pad([0,1,2,3], 5, mode) read at coordinates -5..8.
  const at = (mode: PadMode) => Array.from({ length: 14 }, (_, i) => padSource(i - 5, 4, mode));
  deepStrictEqual(at("reflect"), [1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
  deepStrictEqual(at("edge"), [0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3]);
  deepStrictEqual(at("wrap"), [3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0]);
  deepStrictEqual(at("constant").filter((s) => s >= 0), [0, 1, 2, 3]);
});

Deno.test("pad: every mode at ranks 1..5 with odd sizes, crops and large pads", async () => {
  const gpu = await getGpu();
  const r = rng(21);
  for (let rank = 1; rank <= 5; rank++) {
    for (const mode of MODES) {
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(r() * (rank > 3 ? 4 : 9)));
      // Pads up to 2x the axis (reflect/wrap go round more than once); negative pads crop.
      const pad = (d: number) => {
        const n = Math.floor(r() * (2 * shape[d] + 1));
        return r() < 0.3 ? -Math.floor(r() * Math.ceil(shape[d] / 2)) : n;
      };
      const begin = shape.map((_, d) => pad(d));
      const end = shape.map((_, d) => pad(d));
      const dtype = rank % 2 ? "float32" : "int32";
      const x = randomTensor(dtype, shape, rank * 7);
      const value = dtype === "int32" ? -7 : 2.5;
      const expected = padRef(x, begin, end, mode, value);
      const [got] = await runKernel(
        gpu,
        [x],
        [expected.shape],
        (s, [a], [o]) => preparePad(gpu, s, a, o, begin, end, mode, value),
      );
      assertSameTensor(got, expected, `pad ${mode} ${shape} [${begin}] [${end}]`);
    }
  }
});

Deno.test("pad: constant padding of an empty tensor and of a long row", async () => {
  const gpu = await getGpu();
  const empty = cpuTensor("float32", [0, 3]);
  const [a] = await runKernel(
    gpu,
    [empty],
    [[2, 4]],
    (s, [x], [o]) => preparePad(gpu, s, x, o, [1, 0], [1, 1], "constant", 1.5),
  );
  deepStrictEqual(Array.from(a.data), new Array(8).fill(1.5));
  const row = randomTensor("float32", [2, 300], 8);
  for (const mode of MODES) {
    const expected = padRef(row, [1, 17], [0, 3], mode, 0);
    const [got] = await runKernel(
      gpu,
      [row],
      [expected.shape],
      (s, [x], [o]) => preparePad(gpu, s, x, o, [1, 17], [0, 3], mode, 0),
    );
    assertSameTensor(got, expected, `pad long row ${mode}`);
  }
});

Deno.test("tile: repeats at ranks 1..4, zero repeats", async () => {
  const gpu = await getGpu();
  const cases: [number[], number[]][] = [
    [[3], [4]],
    [[2, 5], [3, 1]],
    [[1, 3, 2], [2, 2, 3]],
    [[2, 1, 3, 2], [1, 5, 1, 2]],
    [[2, 3], [0, 2]],
  ];
  for (const [shape, repeats] of cases) {
    const x = randomTensor("int64", shape, shape.length);
    const expected = tileRef(x, repeats);
    const [got] = await runKernel(
      gpu,
      [x],
      [expected.shape],
      (s, [a], [o]) => prepareTile(gpu, s, a, o, repeats),
    );
    assertSameTensor(got, expected, `tile ${shape} x ${repeats}`);
  }
});
