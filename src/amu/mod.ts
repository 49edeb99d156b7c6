/** AMU-Tuning on the GPU: configuration, the training loop, run directories, and the pieces the
 * end-to-end pipeline reuses (flags, orders, synthetic features, the float64 reference). */
export * from "./config.ts";
export * from "./schedule.ts";
export * from "./order.ts";
export * from "./metrics.ts";
export * from "./checkpoint.ts";
export * from "./run_dir.ts";
export { AmuSession, defaultPlan, type EvalTotals, type SessionPlan } from "./session.ts";
export { trainAmu, type TrainOptions, type TrainResult, type TrainTrace } from "./train.ts";
export { trainAmuReference } from "./reference.ts";
export { syntheticFeatures, type SyntheticSpec } from "./synthetic.ts";
