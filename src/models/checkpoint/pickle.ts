/** Python pickles as PyTorch writes them (`torch.save`'s data.pkl and legacy stream, TorchScript
 * archives' data.pkl), unpickled with the `pickleparser` package (every opcode of protocols 0-5)
 * and PyTorch's globals registered here: tensors become `TensorRef`s that point into storages,
 * read later. Any other global becomes a generic object (`ForeignObject`): plain data such as an
 * optimizer's settings or an `argparse.Namespace` loads, and the readers refuse one only where it
 * holds tensors.
 *
 * What pickleparser 0.2.1 gets wrong, and how it is met here:
 * - NEWOBJ, INST and OBJ construct the resolved global with `new`, which an arrow function
 *   refuses: every global registered here is a plain `function` returning its object.
 * - LONG1 and LONG4 are read as unsigned and a LONG1 longer than 8 bytes is refused: PyTorch's own
 *   numbers (sizes, strides, offsets, the legacy magic number aside) never need more, so this is
 *   left; a plain value below -2^31 comes out wrong and one of 2^63 or more fails the file with a
 *   CheckpointError. The legacy magic number (10 bytes) is skipped by its reader.
 * - DICT (protocol 0 only; torch never writes it) sets properties instead of Map entries.
 * - A truncated pickle fails with a plain Error: `PickleStream` tells it apart
 *   (`TruncatedPickleError`) so a reader can retry with more of the file. */
import { BufferReader, NameRegistry, Parser } from "pickleparser";
import { CheckpointError, type WeightDType } from "./state_dict.ts";

/** A storage a pickle refers to by persistent id; its bytes live elsewhere in the file. */
export class StorageRef {
  constructor(
    /** The record it lives in (zip: `data/<key>`; legacy: the key of the storages section). */
    readonly key: string,
    readonly dtype: WeightDType,
    /** Elements it holds, where the file says (legacy and zip pids carry it). */
    readonly numel: number | undefined,
  ) {}
}

/** A tensor: a view of a storage with an element offset, sizes and strides. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
  ) {}
}

/** An instance of a class the readers do not know (`__module__.__name__`), with the arguments it
 * was built from and the attributes its state set. */
export interface ForeignObject {
  readonly __module__: string;
  readonly __name__: string;
  readonly args?: readonly unknown[];
  [attribute: string]: unknown;
}

export function isForeignObject(v: unknown): v is ForeignObject {
  return typeof v === "object" && v !== null && !(v instanceof Map) && !Array.isArray(v) &&
    typeof (v as { __module__?: unknown }).__module__ === "string";
}

/** `torch.HalfStorage` and friends (legacy and zip pids), by class name. */
const STORAGE_DTYPES: Readonly<Record<string, WeightDType>> = {
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  FloatStorage: "float32",
  DoubleStorage: "float64",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
  UntypedStorage: "uint8",
};

/** `torch.float16` and friends (dtype objects some pickles hold). */
const DTYPE_NAMES: Readonly<Record<string, WeightDType>> = {
  float16: "float16",
  half: "float16",
  bfloat16: "bfloat16",
  float32: "float32",
  float: "float32",
  float64: "float64",
  double: "float64",
  int64: "int64",
  long: "int64",
  int32: "int32",
  int: "int32",
  int16: "int16",
  int8: "int8",
  uint8: "uint8",
  bool: "bool",
};

/** Marker for a storage class global (what a pid's second field resolves to). */
class StorageType {
  constructor(readonly dtype: WeightDType, readonly name: string) {}
}

/** Marker for a `torch.<dtype>` global. */
class TorchDType {
  constructor(readonly dtype: WeightDType) {}
}

/** Resolves a persistent id to a storage (the zip and legacy formats differ in what follows). */
export type PersistentLoad = (pid: unknown[]) => StorageRef;

/** The storage dtype that a pid's storage-type field names. */
export function storageDType(type: unknown, source: string): WeightDType {
  if (type instanceof StorageType) return type.dtype;
  if (type instanceof TorchDType) return type.dtype;
  throw new CheckpointError(`${source}: a tensor storage of unknown type ${describe(type)}`);
}

function describe(v: unknown): string {
  if (isForeignObject(v)) return `${v.__module__}.${v.__name__}`;
  if (typeof v === "function") {
    const p = (v as { prototype?: { __module__?: string; __name__?: string } }).prototype;
    if (p?.__module__) return `${p.__module__}.${p.__name__}`;
  }
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch { // bigints, cycles
    text = String(v);
  }
  return excerpt(text);
}

/** At most 160 characters of `text` (a corrupt pickle's values can be any length). */
function excerpt(text: string): string {
  return text.length > 160 ? `${text.slice(0, 160)}...` : text;
}

/** A count, index or stride: a non-negative integer. */
function isIndex(x: unknown): boolean {
  return (typeof x === "number" || typeof x === "bigint") && Number.isSafeInteger(Number(x)) &&
    Number(x) >= 0;
}

function asInts(v: unknown, what: string, source: string): number[] {
  if (!Array.isArray(v) || !v.every(isIndex)) {
    throw new CheckpointError(
      `${source}: a tensor's ${what} is not a tuple of non-negative integers`,
    );
  }
  return v.map(Number);
}

function rebuildTensor(source: string) {
  // A plain function (not an arrow): pickleparser constructs globals with `new` for NEWOBJ.
  return function (storage: unknown, offset: unknown, size: unknown, stride: unknown): TensorRef {
    if (!(storage instanceof StorageRef)) {
      throw new CheckpointError(
        `${source}: a tensor is built from ${describe(storage)}, not a storage`,
      );
    }
    const shape = asInts(size, "size", source);
    const strides = asInts(stride, "stride", source);
    if (!isIndex(offset) || shape.length !== strides.length) {
      throw new CheckpointError(
        `${source}: a tensor has storage offset ${String(offset)}, size [${shape}] and stride ` +
          `[${strides}] (corrupt)`,
      );
    }
    return new TensorRef(storage, Number(offset), shape, strides);
  };
}

/** `_rebuild_from_type_v2(func, new_type, args, state)`: a tensor with Python state or of a
 * subclass, rebuilt by `func(*args)`; the subclass and its state are dropped. */
function rebuildFromType(source: string) {
  return function (func: unknown, _type: unknown, args: unknown): unknown {
    if (typeof func !== "function" || !Array.isArray(args)) {
      throw new CheckpointError(`${source}: a tensor subclass is rebuilt from ${describe(func)}`);
    }
    return func(...args);
  };
}

function registry(source: string): NameRegistry {
  const names = new NameRegistry();
  const rebuild = rebuildTensor(source);
  names.register("torch._utils", "_rebuild_tensor_v2", rebuild);
  names.register("torch._utils", "_rebuild_tensor", rebuild);
  names.register("torch._tensor", "_rebuild_from_type_v2", rebuildFromType(source));
  // A parameter is its tensor (requires_grad, hooks and Python state do not matter here).
  const parameter = function (data: unknown): unknown {
    return data;
  };
  names.register("torch._utils", "_rebuild_parameter", parameter);
  names.register("torch._utils", "_rebuild_parameter_with_state", parameter);
  names.register("torch.nn.parameter", "Parameter", parameter);
  // OrderedDict() is a REDUCE with no arguments; SETITEMS then fills the Map it returns.
  names.register("collections", "OrderedDict", function (): Map<unknown, unknown> {
    return new Map();
  });
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
    const marker = new StorageType(dtype, name);
    // The registry hands back functions; a storage type is used as a value (a pid field), so
    // the function carries the marker.
    const lookup = Object.assign(function (): StorageType {
      return marker;
    }, { storageType: marker });
    for (const module of ["torch", "torch.storage", "torch.cuda"]) {
      names.register(module, name, lookup);
    }
  }
  for (const [name, dtype] of Object.entries(DTYPE_NAMES)) {
    const marker = new TorchDType(dtype);
    names.register(
      "torch",
      name,
      Object.assign(function (): TorchDType {
        return marker;
      }, { torchDType: marker }),
    );
  }
  return names;
}

/** The storage type or dtype a pid field holds (the registry gives the looked-up function). */
function unwrapType(v: unknown): unknown {
  if (typeof v === "function") {
    const f = v as { storageType?: StorageType; torchDType?: TorchDType };
    return f.storageType ?? f.torchDType ?? v;
  }
  return v;
}

export interface UnpickleOptions {
  /** Names the file in errors. */
  readonly source: string;
  /** What the pickle is, for messages ("data.pkl"). */
  readonly what: string;
  readonly persistentLoad?: (pid: unknown[], type: unknown) => StorageRef;
}

/** A pickle reader over `bytes` that can read several pickles in sequence (the legacy format). */
export class PickleStream {
  readonly #reader: BufferReader;
  readonly #parser: Parser;
  readonly #source: string;

  constructor(bytes: Uint8Array, options: UnpickleOptions) {
    this.#reader = new BufferReader(bytes);
    this.#source = options.source;
    const load = options.persistentLoad;
    this.#parser = new Parser({
      nameResolver: registry(options.source),
      unpicklingTypeOfDictionary: "Map",
      persistentResolver: {
        resolve: (pid: unknown) => {
          if (!load || !Array.isArray(pid)) {
            throw new CheckpointError(
              `${options.source}: ${options.what} refers to external data ${describe(pid)}`,
            );
          }
          return load(pid, unwrapType(pid[1]));
        },
      },
    });
  }

  /** Byte offset after the last pickle read. */
  get position(): number {
    return this.#reader.position;
  }

  /** The next pickle's value. `what` names it in errors; a pickle that runs past the end of the
   * bytes throws TruncatedPickleError. */
  next(what: string): unknown {
    try {
      return this.#parser.read(this.#reader);
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      // pickleparser's messages may quote the data (of any length): an excerpt.
      const why = e instanceof Error ? e.message : String(e);
      const message = `${this.#source}: cannot unpickle ${what} (${excerpt(why)}); the file is ` +
        "truncated or corrupt";
      // pickleparser's reader advances past the end before it throws, or finds no newline.
      const ranOut = this.#reader.position >= this.#reader.length ||
        /end of line|end of file/i.test(why);
      throw ranOut ? new TruncatedPickleError(message) : new CheckpointError(message);
    }
  }
}

/** A pickle that ends before its STOP: the bytes given were too few (or the file is cut). */
export class TruncatedPickleError extends CheckpointError {}

/** Unpickles one pickle. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  return new PickleStream(bytes, options).next(options.what);
}
