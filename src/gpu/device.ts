import { EngineError } from "../util/errors.ts";
import { BufferPool } from "./buffer_pool.ts";
import { PipelineCache } from "./pipelines.ts";

/** What the engine prints about an adapter and uses to pick kernel variants. */
export interface AdapterSummary {
  description: string;
  vendor: string;
  architecture: string;
  isFallback: boolean;
  /** True for Mesa's CPU rasteriser (lavapipe), which rewards different kernels than GPUs. */
  isLlvmpipe: boolean;
  features: string[];
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupsPerDimension: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupStorageSize: number;
  maxStorageBuffersPerShaderStage: number;
}

export interface GpuOptions {
  /** Ask for `shader-f16` when the adapter has it (default true). */
  f16?: boolean;
  powerPreference?: GPUPowerPreference;
}

/** The device went away (driver reset, out of memory, destroyed): `context` says what was
 * waiting. */
export class DeviceLostError extends EngineError {
  constructor(
    readonly reason: GPUDeviceLostReason,
    readonly detail: string,
    readonly context?: string,
  ) {
    super(`${context ? `${context}: ` : ""}GPU device lost (${reason}): ${detail}`);
    this.name = "DeviceLostError";
  }
}

/** The engine's handle on one WebGPU device: limits, caches, and error surfacing. */
export class Gpu {
  readonly pipelines: PipelineCache;
  readonly pool: BufferPool;
  #lost: Promise<DeviceLostError>;
  #lostError: DeviceLostError | undefined;
  #uncaptured: string[] = [];

  constructor(
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly summary: AdapterSummary,
  ) {
    this.pipelines = new PipelineCache(device);
    this.pool = new BufferPool(device);
    // The one watcher of device.lost: every wait on GPU work races this promise (untilLost).
    this.#lost = device.lost.then((info) => {
      const error = new DeviceLostError(info.reason, info.message);
      if (info.reason !== "destroyed") this.#lostError = error;
      return error;
    });
    device.addEventListener("uncapturederror", (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.#uncaptured.push(err.message);
    });
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  get hasF16(): boolean {
    return this.device.features.has("shader-f16");
  }

  get hasTimestamps(): boolean {
    return this.device.features.has("timestamp-query");
  }

  /** Throws if the device was lost or a validation error escaped an error scope. */
  checkHealthy(context: string): void {
    if (this.#lostError) {
      throw new DeviceLostError(this.#lostError.reason, this.#lostError.detail, context);
    }
    if (this.#uncaptured.length > 0) {
      const msgs = this.#uncaptured.splice(0);
      throw new EngineError(`${context}: WebGPU error: ${msgs.join("; ")}`);
    }
  }

  /** Waits for all submitted work, surfacing device loss instead of hanging. */
  async sync(context = "GPU work"): Promise<void> {
    await this.untilLost(this.device.queue.onSubmittedWorkDone(), context);
    this.checkHealthy(context);
  }

  /** Waits for `work` (a map or a queue fence), throwing a DeviceLostError that names
   * `context` if the device is lost first, instead of waiting forever. */
  async untilLost<T>(work: Promise<T>, context: string): Promise<T> {
    const lost = this.#lost.then((error): never => {
      throw new DeviceLostError(error.reason, error.detail, context);
    });
    return await Promise.race([work, lost]);
  }

  /** Runs `fn` inside validation + out-of-memory error scopes and throws with `context`. */
  async scoped<T>(context: string, fn: () => T): Promise<T> {
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    let result: T | undefined;
    let thrown: unknown;
    try {
      result = fn();
    } catch (e) {
      thrown = e;
    }
    const validation = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    if (thrown !== undefined) throw thrown;
    const err = validation ?? oom;
    if (err) throw new EngineError(`${context}: ${err.message}`);
    return result as T;
  }

  destroy(): void {
    this.pool.clear();
    this.device.destroy();
  }

  describe(): string {
    const s = this.summary;
    return `${s.description || s.vendor || "unknown adapter"}` +
      `${s.isFallback ? " (fallback/software)" : ""}; ` +
      `maxStorageBufferBindingSize ${(s.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB, ` +
      `maxBufferSize ${(s.maxBufferSize / 2 ** 20).toFixed(0)} MiB, ` +
      `workgroups/dim ${s.maxComputeWorkgroupsPerDimension}, ` +
      `f16 ${this.hasF16 ? "yes" : "no"}, timestamps ${this.hasTimestamps ? "yes" : "no"}`;
  }
}

const NO_ADAPTER_HELP =
  "No WebGPU adapter found. Install a GPU driver with Vulkan, Metal or D3D12 " +
  "support; on a Linux machine without a GPU install Mesa's software Vulkan driver " +
  "(`apt-get install mesa-vulkan-drivers`), which Deno uses as the `llvmpipe` adapter.";

let shared: Promise<Gpu> | undefined;

/** One process-wide device (tests and CLIs share it; creating devices is slow on lavapipe). */
export function getGpu(options: GpuOptions = {}): Promise<Gpu> {
  shared ??= createGpu(options);
  return shared;
}

/** Waits for the shared device's work and destroys it, if one was made; a later getGpu makes a
 * new one. Processes call this before exiting, and test workers after their last test, so that
 * the device is torn down while the runtime is intact, not by the runtime's own teardown. */
export async function releaseGpu(): Promise<void> {
  if (!shared) return;
  const pending = shared;
  shared = undefined;
  try {
    const gpu = await pending;
    await gpu.device.queue.onSubmittedWorkDone();
    gpu.destroy();
  } catch {
    // No device was made (no adapter): nothing to release.
  }
}

/** Headless Linux has no session runtime dir; the Vulkan/WSI stack then prints a spurious
 * "XDG_RUNTIME_DIR is invalid" error. A private temporary one keeps the output clean. */
function ensureRuntimeDir(): void {
  if (Deno.build.os !== "linux" || Deno.env.get("XDG_RUNTIME_DIR")) return;
  try {
    const dir = `/tmp/xdg-runtime-${Deno.uid() ?? 0}`;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.env.set("XDG_RUNTIME_DIR", dir);
  } catch {
    // Without env/write permission the message stays; nothing else depends on it.
  }
}

/** wgpu starts its OpenGL backend (EGL, through glvnd) beside Vulkan unless told otherwise. On
 * Linux that backend only matters on machines without a Vulkan driver, and it breaks process
 * exit: EGL's per-thread state is freed twice when a thread that touched it (a worker that made a
 * device) exits while the process runs its library destructors. A core dump of the abort that
 * followed a passing test run ("double free or corruption", "corrupted size vs. prev_size") showed
 * libGLdispatch/libEGL thread-data destructors racing exit(). So on Linux the engine asks for
 * Vulkan alone, unless DENO_WEBGPU_BACKEND is set (e.g. `gl` for a machine with OpenGL only).
 * Deno reads the variable when a worker first asks for an adapter. */
function chooseBackends(): void {
  if (Deno.build.os !== "linux") return;
  try {
    if (!Deno.env.get(BACKEND_VARIABLE)) Deno.env.set(BACKEND_VARIABLE, "vulkan");
  } catch {
    // Without env permission wgpu keeps its default backends.
  }
}

const BACKEND_VARIABLE = "DENO_WEBGPU_BACKEND";

function noAdapterError(): EngineError {
  let backend: string | undefined;
  try {
    backend = Deno.env.get(BACKEND_VARIABLE);
  } catch {
    // Without env permission there is nothing more to say.
  }
  if (!backend) return new EngineError(NO_ADAPTER_HELP);
  const hint = Deno.build.os === "linux" && backend === "vulkan" ? "; `gl` tries OpenGL" : "";
  return new EngineError(
    `${NO_ADAPTER_HELP} (backends asked for: ${BACKEND_VARIABLE}=${backend}${hint})`,
  );
}

export async function createGpu(options: GpuOptions = {}): Promise<Gpu> {
  if (!("gpu" in navigator) || !navigator.gpu) throw new EngineError(NO_ADAPTER_HELP);
  ensureRuntimeDir();
  chooseBackends();
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) throw noAdapterError();
  const wanted: GPUFeatureName[] = [];
  if (options.f16 !== false && adapter.features.has("shader-f16")) wanted.push("shader-f16");
  if (adapter.features.has("timestamp-query")) wanted.push("timestamp-query");
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: wanted,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      // Kernels keep packed weights in 2-D textures; the default 8192 caps their rows.
      maxTextureDimension2D: l.maxTextureDimension2D,
      maxTextureArrayLayers: l.maxTextureArrayLayers,
    },
  });
  const info = adapter.info;
  const description = info.description || info.device || "";
  const summary: AdapterSummary = {
    description,
    vendor: info.vendor,
    architecture: info.architecture,
    isFallback: (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    isLlvmpipe: /llvmpipe|lavapipe/i.test(description),
    features: [...adapter.features],
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    maxBufferSize: device.limits.maxBufferSize,
    maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
    maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
    maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage,
  };
  return new Gpu(adapter, device, summary);
}
