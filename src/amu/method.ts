/** What every few-shot method reports (AMU and its baselines), the shape of `metrics.json`'s
 * common part:
 *   {"method": "tip-adapter-f", "zero_shot_acc": 58.2,
 *    "final": {"test_acc": 63.1, "beta": 5.1, "alpha": 1.3, "best_epoch": 7},
 *    "search_split": "val",
 *    "epochs": [{"epoch": 1, "test_acc": 60.2, "train_loss": 1.9, ...}, ...]}
 * Accuracies are percentages. `final.test_acc` is the method's reported result, at its own
 * chosen hyper-parameters (listed beside it in `final`); `epochs` exists for methods that
 * train; `search_split` says where a hyper-parameter search looked ("test" when the features
 * have no validation split, as Tip-Adapter does for ImageNet). */

/** The methods `deno task train --method` runs. */
export const METHOD_NAMES = [
  "amu",
  "zero-shot",
  "tip-adapter",
  "tip-adapter-f",
  "linear-probe",
] as const;
export type MethodName = typeof METHOD_NAMES[number];

export function isMethodName(name: string): name is MethodName {
  return (METHOD_NAMES as readonly string[]).includes(name);
}

export interface EpochRecord {
  epoch: number;
  test_acc: number;
  train_loss: number;
  [metric: string]: number;
}

export interface MethodResult {
  method: MethodName;
  zero_shot_acc: number;
  final: { test_acc: number; [chosen: string]: number | string };
  search_split?: "val" | "test";
  epochs?: EpochRecord[];
}

/** A result's chosen hyper-parameters in words ("beta 2.5, alpha 1.2"); "" when it has none. */
export function chosenText(final: MethodResult["final"]): string {
  const { test_acc: _, ...chosen } = final;
  return Object.entries(chosen).map(([k, v]) => `${k} ${v}`).join(", ");
}
