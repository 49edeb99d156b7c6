/** Runs every required ONNX backend case (required-node.txt from node/, and
 * required-pytorch-converted.txt from pytorch-converted/) through the same code as
 * `deno task conformance`; all must pass (unsupported counts as a failure here). */
import { getGpu } from "../../src/gpu/mod.ts";
import {
  type CaseResult,
  formatFailures,
  formatTable,
  runConformance,
  summaryLine,
} from "../../tasks/conformance.ts";
import { sharedPath } from "../helpers.ts";

function check(results: CaseResult[], label: string): void {
  const bad = results.filter((r) => r.status !== "pass");
  console.log(`${label}: ${summaryLine(results)}`);
  if (bad.length === 0) return;
  throw new Error(
    `${label}: ${bad.length} required case(s) did not pass\n\n` +
      `${formatTable(bad)}\n\n${formatFailures(bad, true)}\n\n${summaryLine(results)}`,
  );
}

for (
  const [folder, list] of [
    ["node", "required-node.txt"],
    ["pytorch-converted", "required-pytorch-converted.txt"],
  ] as const
) {
  Deno.test(`conformance: every case of ${list} passes`, async () => {
    const dir = sharedPath("onnx-backend-tests", folder);
    const listFile = sharedPath("onnx-backend-tests", list);
    if (!dir || !listFile) return;
    const results = await runConformance([dir], listFile, await getGpu());
    check(results, list);
  });
}
