export * from "./tensor.ts";
export * from "./device.ts";
export * from "./buffer_pool.ts";
export * from "./buffers.ts";
export * from "./pipelines.ts";
export * from "./dispatch.ts";
export * from "./uniforms.ts";
export * from "./status.ts";
