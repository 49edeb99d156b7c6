/** Imported by every test file that uses the GPU: after the file's last test, waits until the
 * shared device has finished all submitted work and destroys it, inside the worker that made it
 * (each test file runs in its own worker), rather than leaving the device to the worker's
 * teardown. (The rare abort at exit after a passing run was EGL's thread data, not this: see
 * chooseBackends in src/gpu/device.ts.) */
import { releaseGpu } from "../src/gpu/mod.ts";

Deno.test.afterAll(releaseGpu);
