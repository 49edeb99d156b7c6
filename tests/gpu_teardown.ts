/** Imported by every test file that uses the GPU: after the file's last test, waits until the
 * shared device has finished all submitted work and destroys it, inside the worker that made it.
 * Each test file runs in its own worker. Left to the worker's teardown, the device's driver
 * threads were occasionally still running while the runtime freed its state, which corrupted the
 * heap on lavapipe and aborted the run after every test had passed. */
import { releaseGpu } from "../src/gpu/mod.ts";

Deno.test.afterAll(releaseGpu);
