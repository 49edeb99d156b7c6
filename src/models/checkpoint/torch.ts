/** PyTorch checkpoints: `torch.save` in the zip format (PyTorch >= 1.6) and the legacy stream
 * format, and TorchScript archives (`torch.jit.save`, as OpenAI's released CLIP files are). Each
 * becomes a StateDict whose tensors are read from their storages only when asked for. */
import { type CpuTensor } from "../../util/tensor.ts";
import { decodeDense, decodeTensor, WEIGHT_DTYPE_BYTES } from "./dtypes.ts";
import { type ByteSource, openByteSource } from "./file_source.ts";
import {
  isForeignObject,
  PickleStream,
  storageDType,
  StorageRef,
  TensorRef,
  TruncatedPickleError,
  unpickle,
} from "./pickle.ts";
import {
  CheckpointError,
  type CheckpointFormat,
  type ReadView,
  type StateDict,
  viewLayout,
} from "./state_dict.ts";
import { ZipArchive } from "./zip.ts";

/** Where a checkpoint keeps its weights when it holds more than weights (training checkpoints),
 * tried in this order: MoCo and most training scripts save `state_dict`, others `model`... */
const WEIGHT_CONTAINERS = [
  "state_dict",
  "model",
  "model_state",
  "model_state_dict",
  "state_dict_ema",
  "net",
  "module",
  "params",
];

/** PyTorch's legacy magic number 0x1950a86a20f9469cfc6c, as the 10 little-endian bytes of the
 * LONG1 that the legacy format's first pickle holds. */
const LEGACY_MAGIC = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** Bytes of the legacy format's first pickle (PROTO, a FRAME from protocol 4 on, LONG1 of the
 * magic number, STOP), or 0 when `head` does not start with it. torch.save writes protocol 2
 * unless told otherwise. The pickle is skipped rather than parsed: pickleparser refuses a LONG1
 * over 8 bytes. */
export function legacyMagicLength(head: Uint8Array): number {
  if (head[0] !== 0x80 || !(head[1] >= 2 && head[1] <= 5)) return 0;
  const at = head[2] === 0x95 ? 11 : 2; // FRAME and its 8-byte length
  if (head[at] !== 0x8a || head[at + 1] !== LEGACY_MAGIC.length) return 0;
  if (!LEGACY_MAGIC.every((b, i) => head[at + 2 + i] === b)) return 0;
  return head[at + 2 + LEGACY_MAGIC.length] === 0x2e ? at + 3 + LEGACY_MAGIC.length : 0;
}

export function looksLikeLegacyTorch(head: Uint8Array): boolean {
  return legacyMagicLength(head) > 0;
}

/** Bytes of a legacy file read first to parse its pickles; more are read (x4) until they parse.
 * A state dict's pickles are some hundred bytes per tensor, so one read usually does. */
const LEGACY_FIRST_READ = 1 << 20;

/** Where a storage's bytes are: a byte range of the file, or bytes already in memory (a deflated
 * zip entry). */
type StorageBytes = { offset: number; length: number } | Uint8Array;

/** Reads a zip-format `torch.save` file or TorchScript archive. */
export function openTorchZip(path: string, source: ByteSource = openByteSource(path)): StateDict {
  try {
    const zip = new ZipArchive(source);
    const pkl = [...zip.entries.keys()].find((n) => n === "data.pkl" || n.endsWith("/data.pkl"));
    if (!pkl) {
      throw new CheckpointError(
        `${path}: a zip archive without data.pkl (not a PyTorch checkpoint); it holds ` +
          [...zip.entries.keys()].slice(0, 5).join(", "),
      );
    }
    const prefix = pkl.slice(0, -"data.pkl".length);
    const order = zip.entries.get(`${prefix}byteorder`);
    if (order && new TextDecoder().decode(zip.read(order.name)).trim() === "big") {
      throw new CheckpointError(`${path}: saved on a big-endian machine; not supported`);
    }
    const format: CheckpointFormat = [...zip.entries.keys()].some((n) =>
        n.startsWith(`${prefix}code/`) || n === `${prefix}constants.pkl`
      )
      ? "torchscript"
      : "torch-zip";
    const root = unpickle(zip.read(pkl), {
      source: path,
      what: pkl,
      persistentLoad: (pid, type) =>
        new StorageRef(String(pid[2]), storageDType(type, path), numberOr(pid[4])),
    });
    const located = new Map<string, StorageBytes>();
    const bytesOf = (key: string): StorageBytes => {
      let b = located.get(key);
      if (!b) {
        b = zip.locate(`${prefix}data/${key}`);
        located.set(key, b);
      }
      return b;
    };
    return torchStateDict(path, format, source, root, bytesOf);
  } catch (e) {
    source.close();
    throw e;
  }
}

/** Reads a legacy (pre-1.6) `torch.save` stream: magic number, protocol, system info, the
 * object, the list of storage keys, then each storage as an 8-byte element count and its bytes.
 * Only the pickles and each storage's 8-byte count are read here; tensors are read when asked. */
export function openTorchLegacy(
  path: string,
  source: ByteSource = openByteSource(path),
): StateDict {
  try {
    const start = legacyMagicLength(source.read(0, Math.min(source.size, 32), "the header"));
    if (start === 0) {
      throw new CheckpointError(`${path}: not a legacy torch.save file (no magic number)`);
    }
    const { root, keys, refs, end } = readLegacyPickles(path, source, start);
    const where = locateLegacyStorages(path, source, keys, refs, end);
    const bytesOf = (key: string): StorageBytes => {
      const [base, viewOffset] = key.split("@");
      const range = where.get(base);
      if (!range) throw new CheckpointError(`${path}: storage '${base}' is not in the file`);
      if (viewOffset === undefined) return range;
      const skip = Number(viewOffset) * WEIGHT_DTYPE_BYTES[refs.get(base)!.dtype];
      return { offset: range.offset + skip, length: range.length - skip };
    };
    return torchStateDict(path, "torch-legacy", source, root, bytesOf);
  } catch (e) {
    source.close();
    throw e;
  }
}

interface LegacyPickles {
  readonly root: unknown;
  readonly keys: readonly string[];
  /** Storages by key, as the object's persistent ids described them. */
  readonly refs: ReadonlyMap<string, StorageRef>;
  /** File offset just after the storage key list (where the storages begin). */
  readonly end: number;
}

/** The legacy file's pickles after the magic number (at `start`), parsed from a prefix of the
 * file that grows until they fit: their total length is only known by parsing them. */
function readLegacyPickles(path: string, source: ByteSource, start: number): LegacyPickles {
  for (let length = Math.min(source.size, LEGACY_FIRST_READ);; length *= 4) {
    length = Math.min(length, source.size);
    const bytes = source.read(start, length - start, "the legacy pickles");
    try {
      return parseLegacyPickles(path, bytes, start);
    } catch (e) {
      if (!(e instanceof TruncatedPickleError) || length >= source.size) throw e;
    }
  }
}

function parseLegacyPickles(path: string, bytes: Uint8Array, start: number): LegacyPickles {
  const refs = new Map<string, StorageRef>();
  const stream = new PickleStream(bytes, {
    source: path,
    what: "the checkpoint",
    persistentLoad: (pid, type) => {
      const key = String(pid[2]);
      const ref = refs.get(key) ??
        new StorageRef(key, storageDType(type, path), numberOr(pid[4]));
      refs.set(key, ref);
      const view = pid[5];
      if (Array.isArray(view) && view.length >= 2) {
        // A view of another storage (PyTorch < 0.4): same bytes, from an element offset.
        const at = numberOr(view[1]);
        if (at === undefined || !Number.isSafeInteger(at) || at < 0) {
          throw new CheckpointError(
            `${path}: storage '${key}' has a view at element ${String(view[1])} (corrupt)`,
          );
        }
        return new StorageRef(`${key}@${at}`, ref.dtype, numberOr(view[2]));
      }
      return ref;
    },
  });
  const protocol = stream.next("the protocol version");
  if (protocol !== 1001) {
    throw new CheckpointError(
      `${path}: legacy torch.save protocol ${String(protocol)} (1001 expected)`,
    );
  }
  stream.next("the system information");
  const root = stream.next("the checkpoint");
  const keys = stream.next("the storage keys");
  if (!Array.isArray(keys)) {
    throw new CheckpointError(`${path}: the storage key list is missing (truncated or corrupt)`);
  }
  return { root, keys: keys.map(String), refs, end: start + stream.position };
}

/** Each storage's byte range: they follow the key list in its order, each an int64 element
 * count then the bytes. Only the counts are read. */
function locateLegacyStorages(
  path: string,
  source: ByteSource,
  keys: readonly string[],
  refs: ReadonlyMap<string, StorageRef>,
  start: number,
): Map<string, { offset: number; length: number }> {
  const where = new Map<string, { offset: number; length: number }>();
  let at = start;
  for (const key of keys) {
    const ref = refs.get(key);
    if (!ref) {
      // Its element size is unknown, so where the storages after it begin is too.
      throw new CheckpointError(
        `${path}: storage '${key}' is listed but no tensor uses it (corrupt file)`,
      );
    }
    const count = source.read(at, 8, `the size of storage '${key}' (truncated file)`);
    const numel = Number(new DataView(count.buffer, count.byteOffset, 8).getBigInt64(0, true));
    const length = numel * WEIGHT_DTYPE_BYTES[ref.dtype];
    if (!(numel >= 0) || at + 8 + length > source.size) {
      throw new CheckpointError(
        `${path}: storage '${key}' claims ${numel} elements, more than the file holds ` +
          "(truncated or corrupt)",
      );
    }
    where.set(key, { offset: at + 8, length });
    at += 8 + length;
  }
  return where;
}

function numberOr(v: unknown): number | undefined {
  return typeof v === "number" || typeof v === "bigint" ? Number(v) : undefined;
}

/** A StateDict over the tensors found in an unpickled checkpoint. */
function torchStateDict(
  path: string,
  format: CheckpointFormat,
  source: ByteSource,
  root: unknown,
  bytesOf: (storageKey: string) => StorageBytes,
): StateDict {
  const { tensors, extras } = findWeights(path, root);
  if (tensors.size === 0) {
    throw new CheckpointError(
      `${path}: no tensors found` +
        (extras.size ? ` (it holds ${[...extras.keys()].slice(0, 8).join(", ")})` : ""),
    );
  }
  const entries = new Map(
    [...tensors].map(([name, t]) => [name, { name, dtype: t.storage.dtype, shape: t.shape }]),
  );
  return {
    source: path,
    format,
    entries,
    extras,
    read(name: string, view: ReadView = "stored"): CpuTensor {
      const t = tensors.get(name);
      if (!t) throw new CheckpointError(`${path}: no tensor '${name}'`);
      const label = `${path}: tensor '${name}'`;
      const width = WEIGHT_DTYPE_BYTES[t.storage.dtype];
      // Only the span of the storage the view touches is read.
      let last = t.offset;
      for (let d = 0; d < t.shape.length; d++) last += Math.max(0, t.shape[d] - 1) * t.strides[d];
      const empty = t.shape.some((d) => d === 0);
      const span = empty ? 0 : (last - t.offset + 1) * width;
      const where = bytesOf(t.storage.key);
      if (t.offset * width + span > where.length) {
        throw new CheckpointError(`${label}: its storage is too short (truncated or corrupt)`);
      }
      const layout = viewLayout(t.shape, t.strides, view, label);
      const start = t.offset * width;
      if (!(where instanceof Uint8Array)) {
        // Dense layouts are decoded chunk by chunk straight from the file.
        const base = where.offset + start;
        const dense = decodeDense(
          (at, target) => source.readInto(base + at, target, `tensor '${name}'`),
          t.storage.dtype,
          layout.shape,
          layout.strides,
          label,
        );
        if (dense) return dense;
      }
      const bytes = where instanceof Uint8Array
        ? where.subarray(start, start + span)
        : source.read(where.offset + start, span, `tensor '${name}'`);
      return decodeTensor(bytes, t.storage.dtype, layout.shape, label, {
        offset: 0,
        strides: layout.strides,
      });
    },
    close: () => source.close(),
  };
}

/** The weights of a checkpoint: the tensors of a state_dict, of a training checkpoint's weight
 * container, or of a TorchScript module tree, by dotted name; plus the top-level plain values. */
function findWeights(
  path: string,
  root: unknown,
): { tensors: Map<string, TensorRef>; extras: Map<string, unknown> } {
  const extras = new Map<string, unknown>();
  let weights = root;
  let where = "";
  if (root instanceof Map) {
    for (const [k, v] of root) {
      if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") {
        extras.set(String(k), v);
      }
    }
    const container = WEIGHT_CONTAINERS.find((k) => holdsTensors(root.get(k)));
    if (container) {
      weights = root.get(container);
      extras.set("weights_key", container);
      where = `${container}.`;
    }
  }
  const tensors = new Map<string, TensorRef>();
  flatten(path, weights, "", tensors, new Set(), where);
  return { tensors, extras };
}

/** Whether `v` holds tensor data: a tensor, or a bare storage (which an unknown rebuild function,
 * a quantized or sparse tensor say, was given). */
function holdsTensors(v: unknown, seen = new Set<unknown>()): boolean {
  if (v instanceof TensorRef || v instanceof StorageRef) return true;
  if (typeof v !== "object" || v === null || seen.has(v)) return false;
  seen.add(v);
  if (v instanceof Map) return [...v.values()].some((x) => holdsTensors(x, seen));
  if (Array.isArray(v)) return v.some((x) => holdsTensors(x, seen));
  return Object.values(v).some((x) => holdsTensors(x, seen)) ||
    (isForeignObject(v) && (v.args ?? []).some((x) => holdsTensors(x, seen)));
}

/** Dotted names of every tensor under `v`, as `module.state_dict()` names them. */
function flatten(
  path: string,
  v: unknown,
  prefix: string,
  out: Map<string, TensorRef>,
  seen: Set<unknown>,
  /** Where `v` sits in the file (for messages): the weight container's key. */
  where: string,
): void {
  if (v instanceof TensorRef) {
    out.set(prefix.slice(0, -1), v);
    return;
  }
  if (typeof v !== "object" || v === null || seen.has(v)) return;
  seen.add(v);
  if (v instanceof Map) {
    for (const [k, x] of v) flatten(path, x, `${prefix}${String(k)}.`, out, seen, where);
    return;
  }
  if (Array.isArray(v)) return; // lists hold no named weights (optimizer state, hooks)
  if (isForeignObject(v)) {
    const name = `${v.__module__}.${v.__name__}`;
    // TorchScript module objects: their attributes are submodules, parameters and buffers.
    if (v.__module__.startsWith("__torch__")) {
      for (const [k, x] of Object.entries(v)) flatten(path, x, `${prefix}${k}.`, out, seen, where);
      return;
    }
    if (holdsTensors(v)) {
      throw new CheckpointError(
        `${path}: '${(where + prefix).slice(0, -1) || "(top level)"}' is a ${name} holding ` +
          "tensors; " +
          "that Python class is not known here, so its weights cannot be named (save a " +
          "state_dict instead)",
      );
    }
    return;
  }
  for (const [k, x] of Object.entries(v)) flatten(path, x, `${prefix}${k}.`, out, seen, where);
}
