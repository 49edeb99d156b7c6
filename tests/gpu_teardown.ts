/** Imported by every test file that uses the GPU: registers a test that waits until the shared
 * device has finished all submitted work. It is registered from a microtask, so it runs after
 * the file's own tests unless the file awaits at top level (then it runs earlier, harmlessly).
 * Each test file runs in its own worker; a worker torn down while the driver's threads were
 * still executing its last submissions occasionally corrupted the heap on lavapipe and aborted
 * the run after every test had passed. */
import { settleGpu } from "../src/gpu/mod.ts";

queueMicrotask(() =>
  Deno.test({ name: "teardown: shared GPU device idle before the worker exits", fn: settleGpu })
);
