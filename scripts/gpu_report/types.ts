/** The GPU report's JSON (report.json under $OUT), which the markdown table is made from. */
import type { RowResult } from "../../src/bench/types.ts";
import type { AmuEngineResult, AmuSizes } from "./amu.ts";

export interface ConformanceCount {
  readonly list: string;
  readonly passed: number;
  readonly failed: number;
  readonly unsupported: number;
  readonly failing: readonly string[];
  readonly seconds: number;
}

/** One PyTorch row as gpu_report_torch.py writes it. */
export interface TorchRow {
  readonly model: string;
  readonly mode: "fp32" | "tf32" | "fp16";
  readonly batch: number;
  readonly status: "ok" | "wrong" | "failed" | "skipped";
  readonly ms?: number;
  readonly items_per_s?: number;
  readonly rel_error?: number;
  readonly bound?: number;
  readonly note?: string;
}

export interface TorchAmu {
  readonly status: "ok" | "wrong";
  readonly steps?: number;
  readonly epoch_ms?: number;
  readonly rel_error: number;
  readonly bound: number;
}

export interface TorchSection {
  /** Why the peer did not run (no torch, it failed, no time left), when it did not. */
  readonly skipped?: string;
  readonly torch?: string;
  readonly device?: string;
  readonly device_name?: string;
  readonly rows: readonly TorchRow[];
  readonly amu: Readonly<Partial<Record<"fp32" | "tf32", TorchAmu>>>;
}

export interface GpuReport {
  readonly mode: "local" | "device";
  readonly adapter: Readonly<Record<string, unknown>>;
  readonly versions: Readonly<Record<string, string>>;
  readonly started: string;
  readonly seconds: number;
  readonly budgetSeconds: number;
  readonly conformance: readonly ConformanceCount[];
  readonly kernels: readonly RowResult[];
  readonly models: readonly RowResult[];
  /** Rows not run because the time budget was spent. */
  readonly skippedForBudget: readonly string[];
  readonly torch: TorchSection;
  readonly amu: {
    readonly sizes: AmuSizes;
    readonly engine?: AmuEngineResult;
    readonly skipped?: string;
  };
  readonly notes: readonly string[];
}
