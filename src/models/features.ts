/** The features every few-shot method trains on (AMU and its baselines), as the feature cache
 * (src/data) stores them and the methods (src/amu) read them: both import this module, so
 * neither imports the other. */
import { EngineError } from "../util/errors.ts";

/** A row-major float32 matrix. */
export interface FeatureMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float32Array;
}

/** Everything the AMU trainer needs, in memory. */
export interface AmuFeatures {
  readonly trainClip: FeatureMatrix;
  readonly trainAux: FeatureMatrix;
  readonly trainLabels: Int32Array;
  readonly testClip: FeatureMatrix;
  readonly testAux: FeatureMatrix;
  readonly testLabels: Int32Array;
  /** [Dc, C]: column c is class c's text embedding. */
  readonly clipWeights: FeatureMatrix;
  /** The validation split (for methods that search hyper-parameters), when the cache has one. */
  readonly valClip?: FeatureMatrix;
  readonly valAux?: FeatureMatrix;
  readonly valLabels?: Int32Array;
  /** [N]: which few-shot image each training row (an augmented view) came from, 0-based, when
   * the cache records it (Tip-Adapter's keys average an image's views). */
  readonly trainImage?: Int32Array;
}

export function featureMatrix(rows: number, cols: number, data?: Float32Array): FeatureMatrix {
  const d = data ?? new Float32Array(rows * cols);
  if (d.length !== rows * cols) {
    throw new EngineError(`matrix [${rows},${cols}] given ${d.length} values`);
  }
  return { rows, cols, data: d };
}

/** Shapes and label ranges agree and every feature is finite; errors name the array (and row). */
export function validateFeatures(f: AmuFeatures, label = "features"): void {
  const classes = f.clipWeights.cols;
  const dc = f.clipWeights.rows;
  const check = (ok: boolean, msg: string) => {
    if (!ok) throw new EngineError(`${label}: ${msg}`);
  };
  check(classes >= 2, `clip_weights [${dc},${classes}] needs at least 2 classes`);
  check(f.trainClip.rows >= 1, "train_clip has no rows");
  check(f.trainClip.cols === dc, `train_clip has ${f.trainClip.cols} columns, clip_weights ${dc}`);
  check(f.testClip.cols === dc, `test_clip has ${f.testClip.cols} columns, clip_weights ${dc}`);
  check(f.trainAux.cols >= 1, "train_aux has no columns");
  check(
    f.testAux.cols === f.trainAux.cols,
    `test_aux has ${f.testAux.cols} columns, train_aux ${f.trainAux.cols}`,
  );
  check(
    f.trainAux.rows === f.trainClip.rows && f.trainLabels.length === f.trainClip.rows,
    `train rows disagree: train_clip ${f.trainClip.rows}, train_aux ${f.trainAux.rows}, ` +
      `train_labels ${f.trainLabels.length}`,
  );
  check(
    f.testAux.rows === f.testClip.rows && f.testLabels.length === f.testClip.rows,
    `test rows disagree: test_clip ${f.testClip.rows}, test_aux ${f.testAux.rows}, ` +
      `test_labels ${f.testLabels.length}`,
  );
  const val = [f.valClip, f.valAux, f.valLabels].filter((x) => x !== undefined).length;
  check(
    val === 0 || val === 3,
    "val_clip, val_aux and val_labels come together (some are missing)",
  );
  if (f.valClip && f.valAux && f.valLabels) {
    check(f.valClip.cols === dc, `val_clip has ${f.valClip.cols} columns, clip_weights ${dc}`);
    check(
      f.valAux.cols === f.trainAux.cols,
      `val_aux has ${f.valAux.cols} columns, train_aux ${f.trainAux.cols}`,
    );
    check(
      f.valAux.rows === f.valClip.rows && f.valLabels.length === f.valClip.rows,
      `val rows disagree: val_clip ${f.valClip.rows}, val_aux ${f.valAux.rows}, ` +
        `val_labels ${f.valLabels.length}`,
    );
  }
  if (f.trainImage) {
    check(
      f.trainImage.length === f.trainClip.rows,
      `train_image has ${f.trainImage.length} entries, train_clip ${f.trainClip.rows} rows`,
    );
    for (let i = 0; i < f.trainImage.length; i++) {
      check(f.trainImage[i] >= 0, `train_image[${i}] = ${f.trainImage[i]} is negative`);
    }
  }
  const matrices: [string, FeatureMatrix][] = [
    ["train_clip", f.trainClip],
    ["train_aux", f.trainAux],
    ["test_clip", f.testClip],
    ["test_aux", f.testAux],
    ["clip_weights", f.clipWeights],
  ];
  if (f.valClip && f.valAux) matrices.push(["val_clip", f.valClip], ["val_aux", f.valAux]);
  for (const [name, m] of matrices) {
    const bad = firstNonFinite(m.data);
    if (bad >= 0) {
      const row = Math.floor(bad / m.cols), col = bad % m.cols;
      throw new EngineError(
        `${label}: ${name} row ${row} (column ${col}) is ${m.data[bad]}: features must be ` +
          `finite (a NaN or infinity here would train a head of NaN); re-extract the features ` +
          `or check the encoder that made them`,
      );
    }
  }
  const labelArrays: [string, Int32Array][] = [
    ["train_labels", f.trainLabels],
    ["test_labels", f.testLabels],
  ];
  if (f.valLabels) labelArrays.push(["val_labels", f.valLabels]);
  for (const [name, labels] of labelArrays) {
    const arr = labels as Int32Array;
    for (let i = 0; i < arr.length; i++) {
      if (arr[i] < 0 || arr[i] >= classes) {
        throw new EngineError(
          `${label}: ${name}[${i}] = ${arr[i]} is outside the ${classes} classes of clip_weights`,
        );
      }
    }
  }
}

/** Index of the first NaN or infinity in `data`, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) {
    // v - v is 0 for every finite v and NaN for NaN and +-infinity.
    if (data[i] - data[i] !== 0) return i;
  }
  return -1;
}
