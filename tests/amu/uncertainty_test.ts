/** The uncertainty factor against `../shared/fixtures/amu_uncertainty` (the reference's
 * `uncertainty()` in float64 on fixed CLIP-like logits, including a nearly uniform and a very
 * confident row): every kind tabulated there, both powers, GPU within 1e-5 relative. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import {
  createStorageBuffer,
  getGpu,
  readBuffer,
  ResourceScope,
  STORAGE_USAGE,
  submitDispatches,
} from "../../src/gpu/mod.ts";
import { prepareAmuFactor } from "../../src/kernels/amu_factor.ts";
import { uncertaintyFactorRef } from "../../src/kernels/amu_factor_ref.ts";
import { isUncertaintyKind } from "../../src/kernels/amu_factor_shape.ts";
import { assertClose, sharedPath } from "../helpers.ts";

interface Output {
  type: string;
  power: number;
  shape: number[];
  file_f64: string;
}

function raw(path: string): ArrayBuffer {
  const b = Deno.readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
}

Deno.test("uncertainty: factor tables of amu_uncertainty, GPU and host reference", async () => {
  const dir = sharedPath("fixtures", "amu_uncertainty");
  if (!dir) return;
  const manifest = JSON.parse(Deno.readTextFileSync(join(dir, "manifest.json")));
  const [rows, classes] = manifest.inputs[0].shape as number[];
  const logits = new Float32Array(raw(join(dir, manifest.inputs[0].file)));
  const outputs = manifest.outputs as Output[];
  const kinds = new Set(outputs.map((o) => o.type));
  assertEquals(
    [...kinds].sort(),
    [...(manifest.config.types as string[])].sort(),
    "fixture lists its kinds",
  );
  const gpu = await getGpu();
  for (const o of outputs) {
    if (!isUncertaintyKind(o.type)) throw new Error(`fixture kind ${o.type} is not implemented`);
    const want = new Float64Array(raw(join(dir, o.file_f64)));
    const label = `${o.type} power ${o.power}`;
    // The host reference is float64 like the fixture.
    assertClose(uncertaintyFactorRef(logits, rows, classes, o.type, o.power), want, {
      rtol: 1e-10,
      atol: 0,
      label: `${label} (host reference)`,
    });
    const scope = new ResourceScope();
    const lt = {
      buffer: scope.own(createStorageBuffer(gpu, logits)),
      shape: [rows, classes],
      dtype: "float32" as const,
    };
    const factor = {
      buffer: scope.own(gpu.device.createBuffer({ size: rows * 4, usage: STORAGE_USAGE })),
      shape: [rows],
      dtype: "float32" as const,
    };
    submitDispatches(gpu, prepareAmuFactor(gpu, scope, lt, factor, o.type, o.power));
    const got = new Float32Array(await readBuffer(gpu, factor.buffer, rows * 4));
    assertClose(got, want, { rtol: 1e-5, atol: 0, label: `${label} (GPU)` });
    scope.dispose();
  }
});
