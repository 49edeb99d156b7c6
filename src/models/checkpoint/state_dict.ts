/** The one shape every checkpoint reader returns: named tensors whose bytes are read only when
 * asked for, so an architecture builder touches just the tower it builds and a several-hundred-MB
 * file is never held whole beside its converted weights. */
import { type CpuTensor } from "../../util/tensor.ts";
import { EngineError } from "../../util/errors.ts";
import { printable } from "../../util/text.ts";

/** Element types found in checkpoints. Floating types are read as float32 values (float16 and
 * bfloat16 exactly, float64 rounded); integer types as int64 (exact to 2^53). */
export type WeightDType =
  | "float16"
  | "bfloat16"
  | "float32"
  | "float64"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "bool";

export interface WeightInfo {
  readonly name: string;
  /** Element type as stored in the file. */
  readonly dtype: WeightDType;
  readonly shape: readonly number[];
}

/** How a tensor is read: as stored, or (matrices) transposed while it is decoded, so a Linear
 * layer's [out, in] weight becomes the [in, out] operand a matmul takes without a second copy. */
export type ReadView = "stored" | "transposed";

/** The shape and strides of `view` of a tensor stored with `shape` and `strides`. */
export function viewLayout(
  shape: readonly number[],
  strides: readonly number[],
  view: ReadView,
  label: string,
): { shape: number[]; strides: number[] } {
  if (view === "stored") return { shape: [...shape], strides: [...strides] };
  if (shape.length !== 2) {
    throw new CheckpointError(`${label}: has shape [${shape.join(",")}], a matrix was expected`);
  }
  return { shape: [shape[1], shape[0]], strides: [strides[1], strides[0]] };
}

/** The container a checkpoint came in (for `deno task inspect` and messages). */
export type CheckpointFormat =
  | "torchscript"
  | "torch-zip"
  | "torch-legacy"
  | "safetensors";

/** Named tensors of one checkpoint file. Names are the file's own (the key-name mappings of
 * src/models/arch/ turn them into the names the architectures read). */
export interface StateDict {
  /** The file, for messages. */
  readonly source: string;
  readonly format: CheckpointFormat;
  /** Every tensor's name, dtype and shape, in file order; no tensor data is read for this. */
  readonly entries: ReadonlyMap<string, WeightInfo>;
  /** Reads one tensor: float types as `float32` CpuTensor values, integer and bool types as
   * `int64`. Throws CheckpointError naming the file and key when it is absent or its bytes are
   * missing (a truncated file). */
  read(name: string, view?: ReadView): CpuTensor;
  /** Non-tensor values found beside the tensors (`epoch`, `arch`...), for `inspect`. */
  readonly extras: ReadonlyMap<string, unknown>;
  /** Releases the file handle (reads after this throw). */
  close(): void;
}

/** A checkpoint that cannot be read or used: names the file and, where one is at fault, the
 * key. Names and excerpts in messages come from the file, so control characters in them are
 * escaped: a corrupt file still gives one readable line. */
export class CheckpointError extends EngineError {
  constructor(message: string) {
    super(printable(message));
    this.name = "CheckpointError";
  }
}
