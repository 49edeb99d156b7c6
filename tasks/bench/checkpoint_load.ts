/** One checkpoint load, measured in its own process so its peak memory is its own: open (index
 * only), then each tower's weights read and its graph built, optionally planned on the GPU at
 * batch 1 (weights uploaded). Prints one JSON line; run by the `checkpoints` bench suite. */
import { Model, OPS } from "../../src/onnx/mod.ts";
import { getGpu, releaseGpu } from "../../src/gpu/mod.ts";
import { openCheckpoint } from "../../src/models/checkpoint/open.ts";
import { describeCheckpoint } from "../../src/models/arch/mod.ts";

/** Peak resident memory of this process so far (Linux VmHWM), in MiB. */
function peakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

const [path, ...flags] = Deno.args;
const gpuToo = flags.includes("--gpu");
// Memory in use before the file is opened (the runtime and these modules).
const startMiB = peakRssMiB();
const t0 = performance.now();
const sd = openCheckpoint(path);
const summary = describeCheckpoint(sd);
const openMs = performance.now() - t0;
const towers: Record<string, { buildMs: number; planMs?: number; parameters: number }> = {};
const built = summary.towers.map((tower) => {
  const t1 = performance.now();
  const parsed = tower.build().toParsedModel(path, OPS);
  towers[tower.tower] = { buildMs: performance.now() - t1, parameters: tower.parameters };
  return { tower, parsed };
});
// Every tower's weights are in memory here: the host-side peak of a load.
const hostPeakMiB = peakRssMiB();
if (gpuToo) {
  for (const { tower, parsed } of built) {
    const t2 = performance.now();
    const model = new Model(await getGpu(), parsed, OPS);
    const input = parsed.graph.inputs[0];
    const shape = (input.dims ?? []).map((d) =>
      typeof d === "number" ? d : d === "batch" ? 1 : tower.inputSize ?? 224
    );
    await model.plan({ [input.name]: shape });
    towers[tower.tower].planMs = performance.now() - t2;
    model.dispose();
  }
}
sd.close();
console.log(JSON.stringify({
  path,
  bytes: Deno.statSync(path).size,
  format: sd.format,
  openMs,
  towers,
  hostPeakMiB,
  startMiB,
  peakMiB: peakRssMiB(),
}));
if (gpuToo) await releaseGpu();
