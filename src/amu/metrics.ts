/** `metrics.json`, the per-run record every AMU run writes (accuracies in percent):
 *   {"zero_shot_acc": 58.2,
 *    "epochs": [{"epoch": 1, "lr": ..., "train_loss": ..., "train_acc": ..., "test_acc": ...,
 *                "aux_acc": ..., "test_loss": ...}, ...],
 *    "best": {"epoch": 7, "test_acc": 63.1}}
 * `epoch` counts from 1. `lr` is the scheduler's learning rate at the end of the epoch (what the
 * reference prints after an epoch: the rate the next step would use; 0 after the last epoch).
 * `train_loss` is the mean of the epoch's iteration losses, `train_acc` the fused accuracy over
 * the epoch's batches, `test_loss` lambda * CE(fused) + (1 - lambda) * CE(aux) over the test set,
 * `aux_acc` the auxiliary branch alone. `best` is the first epoch with the highest test_acc (the
 * reference keeps a checkpoint when accuracy strictly improves); before any epoch it is
 * {"epoch": 0, "test_acc": zero_shot_acc}. A complete run adds the common part of every
 * method's record (src/amu/method.ts): "method": "amu" and "final": {"test_acc", "best_epoch"}
 * (AMU reports its best epoch, as the reference does). */

export interface EpochMetrics {
  epoch: number;
  lr: number;
  train_loss: number;
  train_acc: number;
  test_acc: number;
  aux_acc: number;
  test_loss: number;
}

export interface AmuMetrics {
  zero_shot_acc: number;
  epochs: EpochMetrics[];
  best: { epoch: number; test_acc: number };
  /** Set when every epoch has run. */
  method?: "amu";
  final?: { test_acc: number; best_epoch: number };
}

/** The metrics of a complete run: with the method's `final` result. */
export function completed(m: AmuMetrics): AmuMetrics {
  return { ...m, method: "amu", final: { test_acc: m.best.test_acc, best_epoch: m.best.epoch } };
}

/** The first epoch with the highest test accuracy. */
export function bestOf(metrics: Pick<AmuMetrics, "epochs" | "zero_shot_acc">): AmuMetrics["best"] {
  let best = { epoch: 0, test_acc: -Infinity };
  for (const e of metrics.epochs) {
    if (e.test_acc > best.test_acc) best = { epoch: e.epoch, test_acc: e.test_acc };
  }
  return best.epoch === 0 ? { epoch: 0, test_acc: metrics.zero_shot_acc } : best;
}

export function metricsJson(m: AmuMetrics): string {
  const ordered: AmuMetrics = {
    zero_shot_acc: m.zero_shot_acc,
    epochs: m.epochs.map((e) => ({
      epoch: e.epoch,
      lr: e.lr,
      train_loss: e.train_loss,
      train_acc: e.train_acc,
      test_acc: e.test_acc,
      aux_acc: e.aux_acc,
      test_loss: e.test_loss,
    })),
    best: { epoch: m.best.epoch, test_acc: m.best.test_acc },
    ...(m.final ? { method: "amu" as const, final: { ...m.final } } : {}),
  };
  return JSON.stringify(ordered, null, 2) + "\n";
}
