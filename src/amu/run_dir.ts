/** A run directory and its one owner, `RunDir`: what the folder holds (nothing, an interrupted
 * run, a finished one, or someone else's files), whether a run may resume there, its train.log,
 * and the files every finished epoch leaves.
 *
 *   config.json          resolved training config, feature source and sizes (checked on resume)
 *   order.npy            int64 [epochs, N]: the batch order this run uses (replay with --order)
 *   metrics.json         see metrics.ts (rewritten after every epoch)
 *   checkpoint_last.npz  everything needed to resume after the last finished epoch (checkpoint.ts)
 *   checkpoint_best.npz  the best epoch's head weights (checkpoint.ts)
 *   train.log            the run's printed lines
 * A caller that writes its own files beside these (the experiment's results) describes them with
 * a `RunFolderLayout`, so they count as the run's when a folder is checked or cleared. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { EngineError } from "../util/errors.ts";
import { readNpy, writeFileAtomic, writeNpy } from "../util/npy.ts";
import type { AmuFeatures } from "../models/features.ts";
import {
  type AmuConfig,
  configFromJson,
  configToJson,
  flagForKey,
  itersPerEpoch,
} from "./config.ts";
import { orderFromNpy, orderToNpy } from "./order.ts";
import { type AmuMetrics, metricsJson } from "./metrics.ts";
import type { MethodResult } from "./method.ts";
import {
  type Checkpoint,
  featureFingerprint,
  loadCheckpoint,
  saveBestWeights,
  saveCheckpoint,
} from "./checkpoint.ts";

export const RUN_FILES = {
  config: "config.json",
  order: "order.npy",
  metrics: "metrics.json",
  last: "checkpoint_last.npz",
  best: "checkpoint_best.npz",
  log: "train.log",
} as const;

export type RunFileName = keyof typeof RUN_FILES;

/** A run that cannot continue in its folder (other settings, other features, missing files): the
 * caller may suggest starting over. */
export class CannotResumeError extends EngineError {
  constructor(message: string) {
    super(message);
    this.name = "CannotResumeError";
  }
}

/** What a folder holds: nothing of a run, an interrupted run, or a finished one. */
export type RunState =
  | { kind: "fresh" }
  | { kind: "unfinished"; epochs: number }
  | {
    kind: "finished";
    /** Its result in words, e.g. "best test accuracy 63.10% at epoch 7". */
    result: string;
  };

/** The files a caller writes into run folders beside the trainer's. */
export interface RunFolderLayout {
  /** The command whose folders these are, as messages name it ("deno task train"). */
  command: string;
  /** The caller's files: a folder holding one of them is checked like one holding a run file,
   * and `clear` removes them too. */
  files: readonly string[];
  /** The caller's file written first into every run folder (`markStarted`): a folder whose
   * marker records a `command` that starts with `command` is a run's. */
  marker: string;
}

/** config.json: what a run trains and on what, so a resume can refuse other settings. */
export interface RunDescription {
  config: Record<string, unknown>;
  features: Record<string, unknown>;
  iters_per_epoch: number;
  total_steps: number;
}

export function describeRun(
  config: AmuConfig,
  f: AmuFeatures,
  source: string | undefined,
): RunDescription {
  const iters = itersPerEpoch(f.trainAux.rows, config.batchSize);
  return {
    config: configToJson(config),
    features: {
      source: source ?? null,
      train_rows: f.trainAux.rows,
      test_rows: f.testAux.rows,
      classes: f.clipWeights.cols,
      aux_dim: f.trainAux.cols,
      clip_dim: f.clipWeights.rows,
      fingerprint: featureFingerprint([
        f.trainClip.data,
        f.trainAux.data,
        f.trainLabels,
        f.testClip.data,
        f.testAux.data,
        f.testLabels,
        f.clipWeights.data,
      ]),
    },
    iters_per_epoch: iters,
    total_steps: config.epochs * iters,
  };
}

/** Where an interrupted run continues: its batch order and, once an epoch finished, its last
 * checkpoint. */
export interface ResumePoint {
  order: Int32Array;
  checkpoint?: Checkpoint;
}

/** train.log, every line a run prints, appended as it is said. */
export class RunLog {
  constructor(readonly path: string) {}

  /** Empties the log: a fresh run's log starts with its own first line. */
  restart(): void {
    Deno.writeTextFileSync(this.path, "");
  }

  append(line: string): void {
    Deno.writeTextFileSync(this.path, line + "\n", { append: true });
  }

  /** Ends the log with the error that ended the run. */
  appendError(e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    try {
      this.append(`error: ${message}`);
    } catch { /* the error itself (a full disk, say) is what the user must see */ }
  }
}

export class RunDir {
  readonly log: RunLog;

  constructor(readonly path: string, readonly layout?: RunFolderLayout) {
    this.log = new RunLog(this.file("log"));
  }

  file(name: RunFileName): string {
    return join(this.path, RUN_FILES[name]);
  }

  /** Every file a run writes here: the trainer's, then the caller's. */
  private runFileNames(): string[] {
    return [...Object.values(RUN_FILES), ...(this.layout?.files ?? [])];
  }

  // The folder's state.

  /** What the folder holds: nothing, an interrupted run, or a finished one. */
  state(): RunState {
    const cfg = this.file("config");
    const metricsPath = this.file("metrics");
    if (!existsSync(cfg)) {
      if (existsSync(metricsPath) || existsSync(this.file("last"))) {
        throw new EngineError(
          `${this.path} holds run files but no ${RUN_FILES.config}; pass --overwrite to start ` +
            `over there`,
        );
      }
      return { kind: "fresh" };
    }
    let planned = Infinity;
    try {
      const saved = JSON.parse(Deno.readTextFileSync(cfg));
      planned = Number(saved?.config?.train_epoch ?? Infinity);
    } catch { /* treated as unfinished; the trainer reports a broken config.json */ }
    if (existsSync(metricsPath)) {
      try {
        const m = JSON.parse(Deno.readTextFileSync(metricsPath)) as SavedMetrics;
        return finishedState(m, planned) ?? { kind: "unfinished", epochs: m.epochs?.length ?? 0 };
      } catch { /* fall through */ }
    }
    return { kind: "unfinished", epochs: 0 };
  }

  /** Refuses a folder that holds files with a run file's name but is not a run's (a user's own
   * config.json, say): they would be taken for an interrupted run, replaced, or deleted by
   * `clear`. Nothing is written or removed there. */
  checkNotForeign(): void {
    if (!existsSync(this.path) || this.isRunFolder()) return;
    const clashing = this.runFileNames().filter((f) => existsSync(join(this.path, f)));
    if (clashing.length > 0) {
      throw new EngineError(
        `${this.path} holds ${clashing.join(", ")}, which a run would write, but is not the ` +
          `folder of a run${this.layout ? ` of \`${this.layout.command}\`` : ""}; nothing was ` +
          `changed there: choose an empty or new folder with --out (or --exp_name)`,
      );
    }
  }

  /** Whether the folder holds a run: its config.json (written by the trainer) or its marker
   * (written first by every run) has the shape a run writes. */
  private isRunFolder(): boolean {
    const config = readJsonObject(this.file("config"));
    if (
      config && typeof config.config === "object" && typeof config.iters_per_epoch === "number" &&
      typeof config.total_steps === "number"
    ) return true;
    if (!this.layout) return false;
    const marker = readJsonObject(join(this.path, this.layout.marker));
    return typeof marker?.command === "string" && marker.command.startsWith(this.layout.command);
  }

  /** Removes every run file (the trainer's and the caller's); other files stay. */
  clear(): void {
    for (const f of this.runFileNames()) {
      const p = join(this.path, f);
      if (existsSync(p)) Deno.removeSync(p);
    }
  }

  /** Creates the folder and writes the caller's marker `record` unless one is there already
   * (the caller replaces it once it knows more). */
  markStarted(record: Record<string, unknown>): void {
    if (!this.layout) throw new Error("markStarted needs the caller's RunFolderLayout");
    Deno.mkdirSync(this.path, { recursive: true });
    const marker = join(this.path, this.layout.marker);
    if (!existsSync(marker)) writeFileAtomic(marker, JSON.stringify(record, null, 2) + "\n");
  }

  // Whether a run may resume here.

  /** Before any slow work: an interrupted run resumes only with its own hyper-parameters. A
   * config.json that cannot be read is left to `openResume` to report. */
  checkSameSettings(config: AmuConfig): void {
    let saved: Record<string, unknown>;
    try {
      saved = JSON.parse(Deno.readTextFileSync(this.file("config"))).config;
    } catch {
      return;
    }
    const now = configToJson(config);
    for (const [k, v] of Object.entries(now)) {
      if (k === "exp_name" || JSON.stringify(saved?.[k]) === JSON.stringify(v)) continue;
      throw new CannotResumeError(
        `${this.path} holds an interrupted run with ${k} ${JSON.stringify(saved?.[k])}, now ` +
          `${JSON.stringify(v)}: run it again with its own settings to resume it, pass ` +
          `--overwrite to start a new run there, or choose another --exp_name`,
      );
    }
  }

  /** Refuses to train a fresh run over an earlier one. */
  checkNoRun(): void {
    if (existsSync(this.file("last")) || existsSync(this.file("metrics"))) {
      throw new EngineError(
        `${this.path} already holds a run; pass --resume to continue it, or choose another ` +
          `--exp_name / --out`,
      );
    }
  }

  /** The interrupted run's resume point, refusing other settings, features or a batch order
   * other than its own (`order`, when the caller replays one). */
  openResume(now: RunDescription, order: Int32Array | undefined): ResumePoint {
    const cfgPath = this.file("config");
    if (!existsSync(cfgPath)) {
      throw new CannotResumeError(`cannot resume: ${cfgPath} does not exist (no run to resume)`);
    }
    const saved = JSON.parse(Deno.readTextFileSync(cfgPath)) as RunDescription;
    this.checkSameRun(saved, now);
    const orderPath = this.file("order");
    const savedOrder = orderFromNpy(readNpy(orderPath), orderPath).order;
    if (order && !orderEquals(order, savedOrder)) {
      throw new CannotResumeError(
        `cannot resume ${this.path}: --order differs from the run's order.npy`,
      );
    }
    const last = this.file("last");
    return { order: savedOrder, checkpoint: existsSync(last) ? loadCheckpoint(last) : undefined };
  }

  /** Refuses to resume a run with different hyper-parameters or features, naming what differs. */
  private checkSameRun(saved: RunDescription, now: RunDescription): void {
    const savedConfig = configFromJson(saved.config, this.file("config"));
    const nowConfig = configFromJson(now.config, "current config");
    for (const key of Object.keys(nowConfig) as (keyof AmuConfig)[]) {
      if (key === "expName") continue;
      if (JSON.stringify(savedConfig[key]) !== JSON.stringify(nowConfig[key])) {
        const flag = flagForKey(key);
        throw new CannotResumeError(
          `cannot resume ${this.path}: ${flag ? `--${flag}` : key} was ${savedConfig[key]}, ` +
            `now ${nowConfig[key]} (resume with the run's own settings)`,
        );
      }
    }
    const a = saved.features, b = now.features;
    for (const k of ["train_rows", "test_rows", "classes", "aux_dim", "clip_dim", "fingerprint"]) {
      if (a[k] !== b[k]) {
        throw new CannotResumeError(
          `cannot resume ${this.path}: the features differ from the run's (${k} ${a[k]} vs ` +
            `${b[k]})`,
        );
      }
    }
  }

  // What a run writes.

  /** A fresh run's config.json and order.npy (creating the folder). */
  startFresh(description: RunDescription, order: Int32Array, epochs: number, rows: number): void {
    Deno.mkdirSync(this.path, { recursive: true });
    writeFileAtomic(this.file("config"), JSON.stringify(description, null, 2) + "\n");
    writeNpy(this.file("order"), orderToNpy(order, epochs, rows));
  }

  /** A finished epoch: its checkpoint, the best weights when the epoch `improved` on the best,
   * and the metrics so far. */
  saveEpoch(checkpoint: Checkpoint, improved: boolean): void {
    saveCheckpoint(this.file("last"), checkpoint);
    if (improved) {
      this.saveBest(checkpoint.bestWeight, checkpoint.classes, checkpoint.dim, checkpoint.metrics);
    }
    this.saveMetrics(checkpoint.metrics);
  }

  /** checkpoint_best.npz: the best epoch's head `weight` [classes, dim]. */
  saveBest(weight: Float32Array, classes: number, dim: number, metrics: AmuMetrics): void {
    const { epoch, test_acc } = metrics.best;
    saveBestWeights(this.file("best"), weight, classes, dim, epoch, test_acc);
  }

  saveMetrics(metrics: AmuMetrics): void {
    writeFileAtomic(this.file("metrics"), metricsJson(metrics));
  }
}

/** What metrics.json holds, of any method (read back, so every part may be missing). */
type SavedMetrics = Partial<
  Pick<AmuMetrics, "best" | "epochs"> & Pick<MethodResult, "method" | "final">
>;

/** The state of a run whose metrics.json is `m`, if finished: every one of the `planned` epochs
 * recorded, or a method's final result. */
function finishedState(m: SavedMetrics, planned: number): RunState | undefined {
  if (m.best && (m.final || (m.epochs?.length ?? NaN) >= planned)) {
    const b = m.best;
    return {
      kind: "finished",
      result: `best test accuracy ${b.test_acc.toFixed(2)}% at epoch ${b.epoch}`,
    };
  }
  if (m.final) {
    return {
      kind: "finished",
      result: `${m.method} test accuracy ${m.final.test_acc.toFixed(2)}%`,
    };
  }
  return undefined;
}

function readJsonObject(path: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(Deno.readTextFileSync(path));
    return v && typeof v === "object" && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function orderEquals(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
