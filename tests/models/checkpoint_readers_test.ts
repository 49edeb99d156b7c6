/** The checkpoint readers (src/models/checkpoint/) on their own, no GPU: every shared file opens
 * as its format; the same weights in zip, legacy, TorchScript (float16) and safetensors form agree
 * value for value; hand-written torch zips exercise storage offsets and strides, deflated entries
 * and ZIP64 end records; bad input of every kind (cut files, noise, foreign pickles, broken
 * safetensors headers, a seeded byte-flip fuzz) is refused with a CheckpointError naming the file,
 * never a TypeError or RangeError. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import { EngineError } from "../../src/util/errors.ts";
import { roundToF16 } from "../../src/util/tensor.ts";
import { memoryByteSource } from "../../src/models/checkpoint/file_source.ts";
import {
  decodeDense,
  decodeTensor,
  WEIGHT_DTYPE_BYTES,
} from "../../src/models/checkpoint/dtypes.ts";
import { checkpointKind, openCheckpoint } from "../../src/models/checkpoint/open.ts";
import {
  CheckpointError,
  type StateDict,
  type WeightDType,
} from "../../src/models/checkpoint/state_dict.ts";
import { openTorchZip } from "../../src/models/checkpoint/torch.ts";
import { ZipArchive } from "../../src/models/checkpoint/zip.ts";
import { rng, sharedPath } from "../helpers.ts";

// ---------------------------------------------------------------------------------------------
// helpers

const SHARED_FORMATS: Readonly<Record<string, string>> = {
  "clip_vit_ckpt.jit.pt": "torchscript",
  "clip_vit_ckpt.state_dict.pt": "torch-zip",
  "clip_vit_ckpt.legacy.pt": "torch-legacy",
  "clip_vit_ckpt.hf.safetensors": "safetensors",
  "clip_rn_ckpt.jit.pt": "torchscript",
  "mocov3_resnet_ckpt.pth.tar": "torch-zip",
  "mocov3_resnet_ckpt.legacy.pth.tar": "torch-legacy",
};

function withCheckpoint<T>(path: string, f: (sd: StateDict) => T): T {
  const sd = openCheckpoint(path);
  try {
    return f(sd);
  } finally {
    sd.close();
  }
}

/** Every tensor's values (as plain arrays) and shape. */
function readAll(path: string): Map<string, { shape: number[]; values: number[] }> {
  return withCheckpoint(path, (sd) => {
    const out = new Map<string, { shape: number[]; values: number[] }>();
    for (const [name, info] of sd.entries) {
      const t = sd.read(name);
      assert.deepEqual(t.shape, [...info.shape], `${path}: ${name} shape`);
      out.set(name, { shape: [...t.shape], values: Array.from(t.data) });
    }
    return out;
  });
}

/** Opens `path` and reads every tensor; the error thrown, if any. */
function errorOf(path: string): unknown {
  try {
    withCheckpoint(path, (sd) => {
      for (const name of sd.entries.keys()) sd.read(name);
    });
    return undefined;
  } catch (e) {
    return e;
  }
}

function describeError(e: unknown): string {
  return e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
}

/** `f` throws a CheckpointError whose message names `file` and matches `pattern`. */
function assertCheckpointError(f: () => unknown, file: string, pattern?: RegExp): void {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  assert.ok(
    thrown instanceof CheckpointError,
    `expected a CheckpointError, got ${describeError(thrown)}`,
  );
  assert.ok(thrown.message.includes(file), `message does not name ${file}: ${thrown.message}`);
  if (pattern) assert.match(thrown.message, pattern);
}

function withTempDir<T>(f: (dir: string) => T): T {
  const dir = Deno.makeTempDirSync({ prefix: "ckpt_readers_" });
  try {
    return f(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// 1. formats

Deno.test("shared checkpoints: each file opens as its format, with tensors listed", () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  for (const [file, format] of Object.entries(SHARED_FORMATS)) {
    withCheckpoint(join(dir, file), (sd) => {
      assert.equal(sd.format, format, file);
      assert.equal(sd.source, join(dir, file));
      assert.ok(sd.entries.size > 0, `${file}: no tensors`);
      for (const [name, info] of sd.entries) {
        assert.equal(info.name, name);
        assert.ok(info.shape.every((d) => Number.isInteger(d) && d >= 0), `${file}: ${name}`);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// 2. CLIP ViT: zip state_dict == legacy; TorchScript = the same rounded to float16 where stored so

Deno.test("CLIP ViT: state_dict.pt and legacy.pt agree; jit.pt holds them (float16 where stored so) plus int64 buffers", () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const zip = readAll(join(dir, "clip_vit_ckpt.state_dict.pt"));
  const legacy = readAll(join(dir, "clip_vit_ckpt.legacy.pt"));
  assert.deepEqual([...legacy.keys()].sort(), [...zip.keys()].sort());
  for (const [name, t] of zip) assert.deepEqual(legacy.get(name), t, name);
  assert.ok(zip.has("visual.transformer.resblocks.0.attn.in_proj_weight"));
  assert.ok(zip.has("text_projection") && zip.has("logit_scale"));

  withCheckpoint(join(dir, "clip_vit_ckpt.jit.pt"), (jit) => {
    const buffers = ["input_resolution", "context_length", "vocab_size"];
    assert.deepEqual(
      [...jit.entries.keys()].sort(),
      [...zip.keys(), ...buffers].sort(),
    );
    const bufferValues = buffers.map((b) => {
      assert.equal(jit.entries.get(b)!.dtype, "int64", b);
      const t = jit.read(b);
      assert.equal(t.dtype, "int64");
      assert.ok(t.data instanceof Float64Array);
      assert.equal(t.data.length, 1);
      return t.data[0];
    });
    assert.deepEqual(bufferValues, [32, 16, 512]);

    const half =
      /(conv\d*|c_fc|c_proj|out_proj|in_proj_(weight|bias))(\.weight|\.bias)?$|(^|\.)proj$|^text_projection$/;
    const float =
      /positional_embedding$|\.ln_\w+\.|^ln_final\.|class_embedding$|^token_embedding\.|^logit_scale$/;
    let halfCount = 0, floatCount = 0;
    for (const [name, want] of zip) {
      const info = jit.entries.get(name)!;
      assert.deepEqual([...info.shape], want.shape, name);
      const got = jit.read(name);
      assert.equal(got.dtype, "float32", name);
      assert.ok(got.data instanceof Float32Array, name);
      if (info.dtype === "float16") {
        assert.ok(half.test(name) && !float.test(name), `${name} unexpectedly float16`);
        assert.deepEqual(Array.from(got.data), want.values.map(roundToF16), name);
        halfCount++;
      } else {
        assert.equal(info.dtype, "float32", name);
        assert.ok(float.test(name) && !half.test(name), `${name} unexpectedly float32`);
        assert.deepEqual(Array.from(got.data), want.values, name);
        floatCount++;
      }
    }
    assert.ok(halfCount > 10 && floatCount > 5, `${halfCount} float16, ${floatCount} float32`);
    for (const name of ["visual.conv1.weight", "visual.proj", "text_projection"]) {
      assert.equal(jit.entries.get(name)!.dtype, "float16", name);
    }
    for (
      const name of ["visual.class_embedding", "positional_embedding", "token_embedding.weight"]
    ) {
      assert.equal(jit.entries.get(name)!.dtype, "float32", name);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 3. safetensors (Hugging Face names): split q/k/v, transposed projections

Deno.test("CLIP ViT safetensors: q/k/v are thirds of in_proj; projections are transposed", () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const zip = readAll(join(dir, "clip_vit_ckpt.state_dict.pt"));
  withCheckpoint(join(dir, "clip_vit_ckpt.hf.safetensors"), (hf) => {
    assert.equal(hf.extras.get("format"), "pt");
    const inProj = zip.get("visual.transformer.resblocks.0.attn.in_proj_weight")!;
    const [rows3, cols] = inProj.shape;
    const rows = rows3 / 3;
    ["q_proj", "k_proj", "v_proj"].forEach((p, j) => {
      const t = hf.read(`vision_model.encoder.layers.0.self_attn.${p}.weight`);
      assert.deepEqual(t.shape, [rows, cols], p);
      assert.deepEqual(
        Array.from(t.data),
        inProj.values.slice(j * rows * cols, (j + 1) * rows * cols),
        p,
      );
    });
    const proj = zip.get("visual.proj")!; // [width, embed]
    const [w, e] = proj.shape;
    const t = hf.read("visual_projection.weight"); // [embed, width]
    assert.deepEqual(t.shape, [e, w]);
    const transposed = new Array<number>(w * e);
    for (let r = 0; r < w; r++) {
      for (let c = 0; c < e; c++) transposed[c * w + r] = proj.values[r * e + c];
    }
    assert.deepEqual(Array.from(t.data), transposed);
    // Read transposed while decoding, it is visual.proj again.
    const back = hf.read("visual_projection.weight", "transposed");
    assert.deepEqual(back.shape, proj.shape);
    assert.deepEqual(Array.from(back.data), proj.values);
    const textProj = zip.get("text_projection")!;
    const tp = hf.read("text_projection.weight", "transposed");
    assert.deepEqual([tp.shape, Array.from(tp.data)], [textProj.shape, textProj.values]);
    const ids = hf.read("vision_model.embeddings.position_ids");
    assert.equal(ids.dtype, "int64");
    assert.deepEqual(Array.from(ids.data), Array.from({ length: ids.data.length }, (_, i) => i));
  });
});

// ---------------------------------------------------------------------------------------------
// 4. MoCo v3 training checkpoint

Deno.test("MoCo v3 .pth.tar: zip and legacy agree; extras epoch/arch; no optimizer tensors", () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const zip = readAll(join(dir, "mocov3_resnet_ckpt.pth.tar"));
  const legacy = readAll(join(dir, "mocov3_resnet_ckpt.legacy.pth.tar"));
  assert.deepEqual([...legacy.keys()].sort(), [...zip.keys()].sort());
  for (const [name, t] of zip) assert.deepEqual(legacy.get(name), t, name);
  const keys = [...zip.keys()];
  for (const part of ["base_encoder", "momentum_encoder", "predictor"]) {
    assert.ok(keys.some((k) => k.startsWith(`module.${part}.`)), `no module.${part}.* keys`);
  }
  for (const k of keys) {
    assert.match(k, /^module\.(base_encoder|momentum_encoder|predictor)\./);
  }
  assert.ok(keys.includes("module.base_encoder.conv1.weight"));
  assert.ok(keys.includes("module.base_encoder.fc.4.running_mean"));
  assert.ok(!keys.includes("module.base_encoder.fc.4.weight"), "fc.4 BN has no affine");
  for (const file of ["mocov3_resnet_ckpt.pth.tar", "mocov3_resnet_ckpt.legacy.pth.tar"]) {
    withCheckpoint(join(dir, file), (sd) => {
      assert.equal(sd.extras.get("epoch"), 1000, file);
      assert.equal(sd.extras.get("arch"), "resnet50", file);
      assert.equal(sd.extras.get("weights_key"), "state_dict", file);
      assert.ok(
        ![...sd.entries.keys()].some((k) => /optimizer|scaler|param_groups/.test(k)),
        file,
      );
      // num_batches_tracked buffers are int64.
      const nbt = [...sd.entries.values()].find((i) => i.name.endsWith("num_batches_tracked"));
      if (nbt) {
        assert.equal(nbt.dtype, "int64");
        assert.equal(sd.read(nbt.name).dtype, "int64");
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// hand-written pickles and zips

const utf8 = new TextEncoder();

/** Pickle opcodes (protocol 2), by their byte. */
const OP = {
  PROTO: 0x80,
  STOP: 0x2e, // .
  MARK: 0x28, // (
  EMPTY_DICT: 0x7d, // }
  EMPTY_TUPLE: 0x29, // )
  TUPLE: 0x74, // t
  GLOBAL: 0x63, // c
  REDUCE: 0x52, // R
  BUILD: 0x62, // b
  BINUNICODE: 0x58, // X
  BININT1: 0x4b, // K
  BININT: 0x4a, // J
  BINFLOAT: 0x47, // G
  NEWFALSE: 0x89,
  NEWTRUE: 0x88,
  NONE: 0x4e, // N
  BININT2: 0x4d, // M
  EMPTY_LIST: 0x5d, // ]
  APPENDS: 0x65, // e
  BINPERSID: 0x51, // Q
  SETITEM: 0x73, // s
  SETITEMS: 0x75, // u
  NEWOBJ: 0x81,
} as const;

interface TensorSpec {
  readonly storage?: string;
  readonly key?: string;
  readonly numel?: number;
  readonly offset: number;
  readonly size: number[];
  readonly stride: number[];
  /** A legacy pid (six fields). */
  readonly legacy?: boolean;
  /** A legacy pid of a view of storage `key`: [view key, element offset, numel]. */
  readonly view?: [string, number, number];
}

/** Writes pickle opcodes by hand. */
class Pickle {
  readonly bytes: number[] = [OP.PROTO, 2];

  op(...codes: number[]): this {
    this.bytes.push(...codes);
    return this;
  }
  global(module: string, name: string): this {
    return this.op(OP.GLOBAL, ...utf8.encode(`${module}\n${name}\n`));
  }
  str(s: string): this {
    const b = utf8.encode(s);
    const n = b.length;
    return this.op(OP.BINUNICODE, n & 255, (n >> 8) & 255, (n >> 16) & 255, n >>> 24, ...b);
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(OP.BININT1, n);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, n, true);
    return this.op(OP.BININT, ...b);
  }
  float(x: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, false);
    return this.op(OP.BINFLOAT, ...b);
  }
  tuple(values: readonly number[]): this {
    this.op(OP.MARK);
    for (const v of values) Number.isInteger(v) ? this.int(v) : this.float(v);
    return this.op(OP.TUPLE);
  }
  /** An empty OrderedDict: GLOBAL collections.OrderedDict, (), REDUCE. */
  orderedDict(): this {
    return this.global("collections", "OrderedDict").op(OP.EMPTY_TUPLE, OP.REDUCE);
  }
  /** torch._utils._rebuild_tensor_v2(pid ('storage', torch.<cls>, key, 'cpu', numel), offset,
   * size, stride, False, OrderedDict()). The legacy format's pid has a sixth field: None, or
   * `view` (view key, element offset, numel) for a view of another storage. */
  tensor(t: TensorSpec): this {
    return this.global("torch._utils", "_rebuild_tensor_v2").tensorArgs(t).op(OP.REDUCE);
  }
  /** The argument tuple of `tensor` (a rebuild function's arguments). */
  tensorArgs(t: TensorSpec): this {
    this.op(OP.MARK).storage(t);
    this.int(t.offset).tuple(t.size).tuple(t.stride).op(OP.NEWFALSE).orderedDict();
    return this.op(OP.TUPLE);
  }
  /** The persistent id of `t`'s storage. */
  storage(t: TensorSpec): this {
    this.op(OP.MARK).str("storage").global("torch", t.storage ?? "FloatStorage")
      .str(t.key ?? "0").str("cpu").int(t.numel ?? 6);
    if (t.view) this.op(OP.MARK).str(t.view[0]).int(t.view[1]).int(t.view[2]).op(OP.TUPLE);
    else if (t.legacy) this.op(OP.NONE);
    return this.op(OP.TUPLE, OP.BINPERSID);
  }
  done(): Uint8Array {
    return Uint8Array.from([...this.bytes, OP.STOP]);
  }
}

/** Six float32 values 10, 11, ... 15 (storage '0'). */
const STORAGE = new Uint8Array(Float32Array.from([10, 11, 12, 13, 14, 15]).buffer);

/** OrderedDict {t: [3,2] stride (1,3) (the transpose of a [2,3] matrix), u: offset 2 size (2,)
 * stride (2,), w: offset 1 size (2,2) stride (3,1), c: the whole storage}. */
function viewsPickle(): Uint8Array {
  const p = new Pickle().orderedDict().op(OP.MARK);
  p.str("t").tensor({ offset: 0, size: [3, 2], stride: [1, 3] });
  p.str("u").tensor({ offset: 2, size: [2], stride: [2] });
  p.str("w").tensor({ offset: 1, size: [2, 2], stride: [3, 1] });
  p.str("c").tensor({ offset: 0, size: [6], stride: [1] });
  return p.op(OP.SETITEMS).done();
}

function torchZipFiles(pkl: Uint8Array, storage: Uint8Array = STORAGE): Record<string, Uint8Array> {
  return {
    "archive/data.pkl": pkl,
    "archive/data/0": storage,
    "archive/version": utf8.encode("3\n"),
  };
}

/** PyTorch's magic number pickle: PROTO 2, LONG1 of 10 bytes, STOP. */
const LEGACY_MAGIC = [
  0x80,
  2,
  0x8a,
  10,
  0x6c,
  0xfc,
  0x9c,
  0x46,
  0xf9,
  0x20,
  0x6a,
  0xa8,
  0x50,
  0x19,
  0x2e,
];

/** A legacy torch.save stream by hand: the magic number, protocol 1001, system information, the
 * `root` pickle, the list of storage keys, then each storage as an int64 element count (float32
 * elements) and its bytes. */
function legacyFile(
  root: Uint8Array,
  storages: ReadonlyArray<[key: string, bytes: Uint8Array]>,
  protocol = 1001,
): Uint8Array {
  const keys = new Pickle().op(OP.EMPTY_LIST, OP.MARK);
  for (const [k] of storages) keys.str(k);
  const parts: number[] = [
    ...LEGACY_MAGIC,
    ...new Pickle().op(OP.BININT2, protocol & 255, protocol >> 8).done(),
    ...new Pickle().op(OP.EMPTY_DICT).str("little_endian").op(OP.NEWTRUE, OP.SETITEM).done(),
    ...root,
    ...keys.op(OP.APPENDS).done(),
  ];
  for (const [, bytes] of storages) {
    const count = new Uint8Array(8);
    new DataView(count.buffer).setBigInt64(0, BigInt(bytes.length / 4), true);
    parts.push(...count, ...bytes);
  }
  return Uint8Array.from(parts);
}

function checkViews(sd: StateDict, label: string): void {
  assert.equal(sd.format, "torch-zip", label);
  assert.deepEqual([...sd.entries.keys()], ["t", "u", "w", "c"], label);
  assert.deepEqual(sd.entries.get("t"), { name: "t", dtype: "float32", shape: [3, 2] }, label);
  const t = sd.read("t");
  assert.deepEqual(t.shape, [3, 2], label);
  assert.deepEqual(Array.from(t.data), [10, 13, 11, 14, 12, 15], label);
  const tt = sd.read("t", "transposed");
  assert.deepEqual([tt.shape, Array.from(tt.data)], [[2, 3], [10, 11, 12, 13, 14, 15]], label);
  assert.deepEqual(Array.from(sd.read("u").data), [12, 14], label);
  assert.deepEqual(Array.from(sd.read("w").data), [11, 12, 14, 15], label);
  assert.deepEqual(Array.from(sd.read("c").data), [10, 11, 12, 13, 14, 15], label);
  assertCheckpointError(() => sd.read("nope"), sd.source, /no tensor 'nope'/);
  assertCheckpointError(() => sd.read("u", "transposed"), sd.source, /a matrix was expected/);
}

/** The same zip with its end records in ZIP64 form: a ZIP64 end record and locator before an
 * end-of-central-directory record whose count, size and offset say 0xFFFF / 0xFFFFFFFF. With
 * `entries`, every central directory entry's sizes and offset move into a ZIP64 extra field too,
 * of which `extraBytes` (24: all three) are written (fewer: a corrupt directory). */
function toZip64(zip: Uint8Array, entries = false, extraBytes = 24): Uint8Array {
  const v = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const eocd = zip.length - 22;
  assert.equal(v.getUint32(eocd, true), 0x06054b50, "fflate writes no comment");
  const count = v.getUint16(eocd + 10, true);
  let dirSize = v.getUint32(eocd + 12, true);
  const dirOffset = v.getUint32(eocd + 16, true);
  let dir = zip.slice(dirOffset, dirOffset + dirSize);
  if (entries) {
    const out: number[] = [];
    const dv = new DataView(dir.buffer);
    let at = 0;
    for (let k = 0; k < count; k++) {
      const nameLength = dv.getUint16(at + 28, true);
      const extraLength = dv.getUint16(at + 30, true);
      const commentLength = dv.getUint16(at + 32, true);
      const head = dir.slice(at, at + 46);
      const hv = new DataView(head.buffer);
      const compressed = hv.getUint32(20, true), size = hv.getUint32(24, true);
      const offset = hv.getUint32(42, true);
      for (const o of [20, 24, 42]) hv.setUint32(o, 0xffffffff, true);
      hv.setUint16(30, 4 + extraBytes, true);
      hv.setUint16(32, 0, true);
      const extra = new DataView(new ArrayBuffer(28));
      extra.setUint16(0, 0x0001, true);
      extra.setUint16(2, extraBytes, true);
      extra.setBigUint64(4, BigInt(size), true); // order: size, compressed size, offset
      extra.setBigUint64(12, BigInt(compressed), true);
      extra.setBigUint64(20, BigInt(offset), true);
      out.push(
        ...head,
        ...dir.subarray(at + 46, at + 46 + nameLength),
        ...new Uint8Array(extra.buffer, 0, 4 + extraBytes),
      );
      at += 46 + nameLength + extraLength + commentLength;
    }
    dir = Uint8Array.from(out);
    dirSize = dir.length;
  }
  const end = new DataView(new ArrayBuffer(56 + 20 + 22));
  // ZIP64 end of central directory record
  end.setUint32(0, 0x06064b50, true);
  end.setBigUint64(4, 44n, true);
  end.setUint16(12, 45, true);
  end.setUint16(14, 45, true);
  end.setBigUint64(24, BigInt(count), true);
  end.setBigUint64(32, BigInt(count), true);
  end.setBigUint64(40, BigInt(dirSize), true);
  end.setBigUint64(48, BigInt(dirOffset), true);
  // ZIP64 end of central directory locator
  end.setUint32(56, 0x07064b50, true);
  end.setBigUint64(64, BigInt(dirOffset + dirSize), true);
  end.setUint32(72, 1, true);
  // end of central directory record, every field overflowed
  end.setUint32(76, 0x06054b50, true);
  end.setUint16(84, 0xffff, true);
  end.setUint16(86, 0xffff, true);
  end.setUint32(88, 0xffffffff, true);
  end.setUint32(92, 0xffffffff, true);
  const out = new Uint8Array(dirOffset + dirSize + end.byteLength);
  out.set(zip.subarray(0, dirOffset));
  out.set(dir, dirOffset);
  out.set(new Uint8Array(end.buffer), dirOffset + dirSize);
  return out;
}

// ---------------------------------------------------------------------------------------------
// 5. synthetic torch zips

Deno.test("synthetic torch zip: offsets and strides honoured; stored, deflated and ZIP64 archives read the same", () => {
  const files = torchZipFiles(viewsPickle());
  const stored = zipSync(files, { level: 0 });
  const variants: Record<string, Uint8Array> = {
    stored,
    deflated: zipSync(files, { level: 6 }),
    zip64: toZip64(stored),
    "zip64-entries": toZip64(stored, true),
    "zip64-entries-deflated": toZip64(zipSync(files, { level: 6 }), true),
  };
  // The deflated archive really holds deflated entries.
  const deflatedZip = new ZipArchive(memoryByteSource("deflated", variants.deflated));
  assert.equal(deflatedZip.entries.get("archive/data.pkl")!.method, 8);
  assert.equal(deflatedZip.entries.get("archive/data/0")!.method, 8);
  assert.equal(
    new ZipArchive(memoryByteSource("s", stored)).entries.get("archive/data/0")!.method,
    0,
  );
  // And the ZIP64 archives are only readable through their ZIP64 records.
  const z64 = new DataView(variants["zip64-entries"].buffer);
  assert.equal(z64.getUint32(variants["zip64-entries"].length - 22, true), 0x06054b50);
  assert.equal(z64.getUint16(variants["zip64-entries"].length - 22 + 10, true), 0xffff);
  const zip64Entries = new ZipArchive(memoryByteSource("z", variants["zip64-entries"]));
  assert.deepEqual(
    Array.from(zip64Entries.read("archive/data/0")),
    Array.from(STORAGE),
  );

  withTempDir((dir) => {
    for (const [name, bytes] of Object.entries(variants)) {
      const path = join(dir, `${name}.pt`);
      Deno.writeFileSync(path, bytes);
      withCheckpoint(path, (sd) => checkViews(sd, name));
      // The same bytes through an in-memory source.
      const mem = openTorchZip(`${name} (memory)`, memoryByteSource(`${name} (memory)`, bytes));
      try {
        checkViews(mem, `${name} (memory)`);
      } finally {
        mem.close();
      }
    }
  });
});

Deno.test("synthetic torch zip: float16, float64 and int64 storages decode; reads after close refused", () => {
  const f16 = Uint8Array.from([0x00, 0x3c, 0x00, 0xc0, 0x00, 0x35]); // 1, -2, 0.3125
  const f64 = new Uint8Array(Float64Array.from([0.1, -3]).buffer);
  const i64 = new Uint8Array(BigInt64Array.from([-5n, 2n ** 40n, 7n]).buffer);
  const p = new Pickle().op(OP.EMPTY_DICT, OP.MARK);
  p.str("h").tensor({
    storage: "HalfStorage",
    key: "h",
    numel: 3,
    offset: 0,
    size: [3],
    stride: [1],
  });
  p.str("d").tensor({
    storage: "DoubleStorage",
    key: "d",
    numel: 2,
    offset: 0,
    size: [2],
    stride: [1],
  });
  p.str("l").tensor({
    storage: "LongStorage",
    key: "l",
    numel: 3,
    offset: 1,
    size: [2],
    stride: [1],
  });
  const bytes = zipSync({
    "m/data.pkl": p.op(OP.SETITEMS).done(),
    "m/data/h": f16,
    "m/data/d": f64,
    "m/data/l": i64,
  }, { level: 0 });
  withTempDir((dir) => {
    const path = join(dir, "dtypes.pt");
    Deno.writeFileSync(path, bytes);
    const sd = openCheckpoint(path);
    assert.deepEqual([...sd.entries.values()].map((i) => i.dtype), ["float16", "float64", "int64"]);
    assert.deepEqual(Array.from(sd.read("h").data), [1, -2, 0.3125]);
    assert.deepEqual(Array.from(sd.read("d").data), [Math.fround(0.1), -3]);
    const l = sd.read("l");
    assert.equal(l.dtype, "int64");
    assert.ok(l.data instanceof Float64Array);
    assert.deepEqual(Array.from(l.data), [2 ** 40, 7]);
    sd.close();
    assertCheckpointError(() => sd.read("h"), path, /after close/);
  });
});

Deno.test("synthetic legacy file: storages, views of storages, offsets and strides", () => {
  const root = new Pickle().orderedDict().op(OP.MARK);
  root.str("a").tensor({ key: "1", offset: 0, size: [2, 3], stride: [3, 1], legacy: true });
  root.str("t").tensor({ key: "1", offset: 0, size: [3, 2], stride: [1, 3], legacy: true });
  root.str("v").tensor({ key: "1", offset: 1, size: [2], stride: [1], view: ["1v", 2, 3] });
  root.str("b").tensor({ key: "2", numel: 2, offset: 1, size: [1], stride: [1], legacy: true });
  const bytes = legacyFile(root.op(OP.SETITEMS).done(), [
    ["1", STORAGE],
    ["2", new Uint8Array(Float32Array.from([7, 8]).buffer)],
  ]);
  withTempDir((dir) => {
    const path = join(dir, "legacy.pt");
    Deno.writeFileSync(path, bytes);
    withCheckpoint(path, (sd) => {
      assert.equal(sd.format, "torch-legacy");
      assert.deepEqual([...sd.entries.keys()], ["a", "t", "v", "b"]);
      assert.deepEqual(Array.from(sd.read("a").data), [10, 11, 12, 13, 14, 15]);
      assert.deepEqual(Array.from(sd.read("t").data), [10, 13, 11, 14, 12, 15]);
      assert.deepEqual(Array.from(sd.read("v").data), [13, 14]); // view from 12, offset 1
      assert.deepEqual(Array.from(sd.read("b").data), [8]);
    });
    const old = join(dir, "protocol.pt");
    Deno.writeFileSync(old, legacyFile(root.done(), [["1", STORAGE]], 1000));
    assertCheckpointError(() => openCheckpoint(old), old, /protocol 1000/);
  });
});

// ---------------------------------------------------------------------------------------------
// 6. bad input

Deno.test("shared checkpoints cut at 10%, 50%, 90% and one byte short: CheckpointError naming the file", () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  withTempDir((tmp) => {
    for (const file of Object.keys(SHARED_FORMATS)) {
      const bytes = Deno.readFileSync(join(dir, file));
      const cuts = [0.1, 0.5, 0.9].map((f) => Math.floor(bytes.length * f));
      cuts.push(bytes.length - 1);
      for (const cut of cuts) {
        const path = join(tmp, `cut${cut}.${file}`);
        Deno.writeFileSync(path, bytes.subarray(0, cut));
        const e = errorOf(path);
        assert.ok(
          e instanceof CheckpointError,
          `${file} cut to ${cut} of ${bytes.length} bytes: ${describeError(e)}`,
        );
        assert.ok(e.message.includes(path), `${file} cut to ${cut}: ${e.message}`);
      }
    }
  });
});

Deno.test("foreign and broken files: CheckpointError naming the file; plain-data foreign classes load", () => {
  withTempDir((dir) => {
    const write = (name: string, bytes: Uint8Array): string => {
      const path = join(dir, name);
      Deno.writeFileSync(path, bytes);
      return path;
    };
    const empty = write("empty.pt", new Uint8Array());
    assertCheckpointError(() => openCheckpoint(empty), empty, /empty/);

    const random = rng(7);
    const noise = write("noise.bin", Uint8Array.from({ length: 4096 }, () => random() * 256));
    assertCheckpointError(() => openCheckpoint(noise), noise, /not a checkpoint/);

    const missing = join(dir, "missing.pt");
    assertCheckpointError(() => openCheckpoint(missing), missing, /not found/);

    const noPkl = write(
      "nopkl.pt",
      zipSync({ "archive/data/0": STORAGE, "archive/version": utf8.encode("3\n") }),
    );
    assertCheckpointError(() => openCheckpoint(noPkl), noPkl, /without data\.pkl/);

    const noStorage = write("nostorage.pt", zipSync({ "archive/data.pkl": viewsPickle() }));
    assertCheckpointError(
      () => withCheckpoint(noStorage, (sd) => sd.read("t")),
      noStorage,
      /no entry 'archive\/data\/0'/,
    );

    const shortStorage = write(
      "shortstorage.pt",
      zipSync(torchZipFiles(viewsPickle(), STORAGE.subarray(0, 16)), { level: 0 }),
    );
    assertCheckpointError(
      () => withCheckpoint(shortStorage, (sd) => sd.read("c")),
      shortStorage,
      /tensor 'c'/,
    );

    // An unknown class holding a tensor: refused, naming the class and where it sits.
    const foreign = new Pickle().op(OP.EMPTY_DICT).str("model").global("mypkg", "MyModule")
      .op(OP.EMPTY_TUPLE, OP.REDUCE, OP.EMPTY_DICT, OP.MARK).str("weight")
      .tensor({ offset: 0, size: [6], stride: [1] }).op(OP.SETITEMS, OP.BUILD, OP.SETITEM).done();
    const foreignPath = write("foreign.pt", zipSync(torchZipFiles(foreign), { level: 0 }));
    assertCheckpointError(() => openCheckpoint(foreignPath), foreignPath, /mypkg\.MyModule/);
    assertCheckpointError(() => openCheckpoint(foreignPath), foreignPath, /'model'/);

    // An unknown class holding only plain data beside a state_dict: loads, the weights read.
    const namespace = new Pickle().op(OP.EMPTY_DICT, OP.MARK)
      .str("epoch").int(3)
      .str("args").global("argparse", "Namespace").op(OP.EMPTY_TUPLE, OP.REDUCE)
      .op(OP.EMPTY_DICT, OP.MARK).str("lr").float(0.5).str("arch").str("vit_base")
      .op(OP.SETITEMS, OP.BUILD)
      .str("state_dict").orderedDict().op(OP.MARK)
      .str("enc.w").tensor({ offset: 0, size: [2, 3], stride: [3, 1] })
      .op(OP.SETITEMS, OP.SETITEMS).done();
    const nsPath = write("namespace.pth.tar", zipSync(torchZipFiles(namespace), { level: 0 }));
    withCheckpoint(nsPath, (sd) => {
      assert.deepEqual([...sd.entries.keys()], ["enc.w"]);
      assert.deepEqual(Array.from(sd.read("enc.w").data), [10, 11, 12, 13, 14, 15]);
      assert.equal(sd.extras.get("epoch"), 3);
      assert.equal(sd.extras.get("weights_key"), "state_dict");
    });

    // A pickle with no tensors at all.
    const noTensors = write(
      "notensors.pt",
      zipSync(
        torchZipFiles(new Pickle().op(OP.EMPTY_DICT).str("epoch").int(1).op(OP.SETITEM).done()),
      ),
    );
    assertCheckpointError(() => openCheckpoint(noTensors), noTensors, /no tensors/);

    // A pickle cut short, a pickle whose tensor is built from no storage.
    const cutPickle = write(
      "cutpickle.pt",
      zipSync(torchZipFiles(viewsPickle().subarray(0, 60)), { level: 0 }),
    );
    assertCheckpointError(() => openCheckpoint(cutPickle), cutPickle, /unpickle/);
    const notStorage = new Pickle().op(OP.EMPTY_DICT).str("w")
      .global("torch._utils", "_rebuild_tensor_v2").op(OP.MARK).str("oops").int(0).tuple([2])
      .tuple([1]).op(OP.NEWFALSE).orderedDict().op(OP.TUPLE, OP.REDUCE, OP.SETITEM).done();
    const notStoragePath = write("notstorage.pt", zipSync(torchZipFiles(notStorage)));
    assertCheckpointError(() => openCheckpoint(notStoragePath), notStoragePath, /not a storage/);

    // safetensors: a header that is not JSON; a tensor whose data_offsets pass the end.
    const safetensors = (json: string, dataBytes = 0): Uint8Array => {
      const h = utf8.encode(json);
      const out = new Uint8Array(8 + h.length + dataBytes);
      new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
      out.set(h, 8);
      return out;
    };
    const badJson = write(
      "badjson.safetensors",
      safetensors('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, oops', 8),
    );
    assertCheckpointError(() => openCheckpoint(badJson), badJson, /not valid JSON/);
    const past = write(
      "past.safetensors",
      safetensors('{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}', 8),
    );
    assertCheckpointError(() => openCheckpoint(past), past, /tensor 'a'.*past the end/);
    const badDtype = write(
      "baddtype.safetensors",
      safetensors('{"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}', 2),
    );
    assertCheckpointError(() => openCheckpoint(badDtype), badDtype, /unsupported dtype/);
    const badSpan = write(
      "badspan.safetensors",
      safetensors('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 12),
    );
    assertCheckpointError(() => openCheckpoint(badSpan), badSpan, /data_offsets span/);
    const notObject = write("array.safetensors", safetensors("[1,2]"));
    assertCheckpointError(() => openCheckpoint(notObject), notObject);
    const nullMeta = write(
      "nullmeta.safetensors",
      safetensors('{"__metadata__":null,"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4),
    );
    const nullMetaError = errorOf(nullMeta);
    assert.ok(
      nullMetaError === undefined || nullMetaError instanceof CheckpointError,
      describeError(nullMetaError),
    );
  });
});

Deno.test("a ZIP64 extra field shorter than the fields it should hold: CheckpointError", () => {
  const stored = zipSync(torchZipFiles(viewsPickle()), { level: 0 });
  withTempDir((dir) => {
    for (const extraBytes of [0, 8, 16]) {
      const path = join(dir, `zip64-extra-${extraBytes}.pt`);
      Deno.writeFileSync(path, toZip64(stored, true, extraBytes));
      const e = errorOf(path);
      assert.ok(e instanceof CheckpointError, `${extraBytes} bytes: ${describeError(e)}`);
      assert.ok(e.message.includes(path), e.message);
    }
  });
});

Deno.test("malformed legacy storage views: CheckpointError, never a silent read of other bytes", () => {
  withTempDir((dir) => {
    for (const [label, view] of Object.entries({ negative: -3, past: 9 })) {
      const root = new Pickle().op(OP.EMPTY_DICT).str("v")
        .tensor({ key: "1", offset: 0, size: [2], stride: [1], view: ["1v", view, 2] })
        .op(OP.SETITEM).done();
      const path = join(dir, `legacy-view-${label}.pt`);
      Deno.writeFileSync(path, legacyFile(root, [["1", STORAGE]]));
      const e = errorOf(path);
      assert.ok(e instanceof CheckpointError, `${label} view offset: ${describeError(e)}`);
      assert.ok(e.message.includes(path), e.message);
    }
  });
});

Deno.test("malformed tensor views in a pickle: CheckpointError, never RangeError", () => {
  // Shapes, strides and offsets a corrupt pickle may hold; each must be refused (or read) cleanly.
  const cases: Record<string, { offset: number; size: number[]; stride: number[] }> = {
    "negative size": { offset: 0, size: [-1], stride: [1] },
    "fractional size": { offset: 0, size: [2.5], stride: [1] },
    "huge size, zero stride": { offset: 0, size: [2 ** 31 - 1, 2 ** 31 - 1], stride: [0, 0] },
    "negative stride": { offset: 0, size: [3], stride: [-1] },
    "negative offset": { offset: -2, size: [2], stride: [1] },
    "offset past storage": { offset: 5, size: [2], stride: [1] },
    "stride past storage": { offset: 0, size: [2, 2], stride: [5, 1] },
    "rank mismatch": { offset: 0, size: [2, 3], stride: [1] },
  };
  withTempDir((dir) => {
    for (const [label, view] of Object.entries(cases)) {
      const pkl = new Pickle().op(OP.EMPTY_DICT).str("x").tensor(view).op(OP.SETITEM).done();
      for (const level of [0, 6] as const) {
        const path = join(dir, `${label.replaceAll(/\W+/g, "_")}.${level}.pt`);
        Deno.writeFileSync(path, zipSync(torchZipFiles(pkl), { level }));
        const e = errorOf(path);
        assert.ok(e instanceof CheckpointError, `${label} (level ${level}): ${describeError(e)}`);
        assert.ok(e.message.includes(path), `${label}: ${e.message}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 7. zip container faults, TorchScript trees, pickle forms, legacy streams, sniffing, decoding

/** `zip` with central directory entry `name` changed by `patch` (its DataView and the entry's
 * offset in it). fflate writes no archive comment, so the end record is the last 22 bytes. */
function patchCentralEntry(
  zip: Uint8Array,
  name: string,
  patch: (v: DataView, at: number) => void,
): Uint8Array {
  const out = zip.slice();
  const v = new DataView(out.buffer);
  let at = v.getUint32(out.length - 22 + 16, true);
  for (let k = 0; k < v.getUint16(out.length - 22 + 10, true); k++) {
    const nameLength = v.getUint16(at + 28, true);
    const entry = new TextDecoder().decode(out.subarray(at + 46, at + 46 + nameLength));
    if (entry === name) {
      patch(v, at);
      return out;
    }
    at += 46 + nameLength + v.getUint16(at + 30, true) + v.getUint16(at + 32, true);
  }
  throw new Error(`no entry ${name}`);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
}

Deno.test("zip faults: unsupported method, encrypted entry, corrupt directory and headers name the file and entry", () => {
  const stored = zipSync(torchZipFiles(viewsPickle()), { level: 0 });
  const dirOffset = new DataView(stored.buffer).getUint32(stored.length - 22 + 16, true);
  withTempDir((dir) => {
    const write = (name: string, bytes: Uint8Array): string => {
      const path = join(dir, name);
      Deno.writeFileSync(path, bytes);
      return path;
    };
    // A storage compressed with bzip2 (method 12): the file opens, reading that tensor fails.
    const bzip = write(
      "bzip2.pt",
      patchCentralEntry(stored, "archive/data/0", (v, at) => v.setUint16(at + 10, 12, true)),
    );
    withCheckpoint(bzip, (sd) => {
      assert.deepEqual([...sd.entries.keys()], ["t", "u", "w", "c"]);
      assertCheckpointError(() => sd.read("c"), bzip, /'archive\/data\/0'.*compression method 12/);
    });
    const encrypted = write(
      "encrypted.pt",
      patchCentralEntry(stored, "archive/data.pkl", (v, at) => v.setUint16(at + 8, 1, true)),
    );
    assertCheckpointError(
      () => openCheckpoint(encrypted),
      encrypted,
      /'archive\/data\.pkl' is encrypted/,
    );
    // The directory's first entry signature broken; the end record pointing past the file; no
    // end record at all; a local header that is not one.
    const badSignature = stored.slice();
    badSignature[dirOffset] ^= 0xff;
    const badDir = write("baddir.pt", badSignature);
    assertCheckpointError(() => openCheckpoint(badDir), badDir, /central directory entry 0/);
    const pastEnd = stored.slice();
    new DataView(pastEnd.buffer).setUint32(pastEnd.length - 22 + 16, pastEnd.length, true);
    const past = write("pastend.pt", pastEnd);
    assertCheckpointError(() => openCheckpoint(past), past, /central directory lies past/);
    const noEnd = write("noend.pt", stored.subarray(0, stored.length - 22));
    assertCheckpointError(() => openCheckpoint(noEnd), noEnd, /no end-of-central-directory/);
    const badLocal = write(
      "badlocal.pt",
      patchCentralEntry(stored, "archive/data.pkl", (v, at) => v.setUint32(at + 42, 1, true)),
    );
    assertCheckpointError(
      () => openCheckpoint(badLocal),
      badLocal,
      /'archive\/data\.pkl' has no local header/,
    );
    // A ZIP64 end record whose locator is missing.
    const zip64 = toZip64(stored);
    const noLocator = zip64.slice();
    noLocator.fill(0, noLocator.length - 42, noLocator.length - 22);
    const lost = write("nolocator.pt", noLocator);
    assertCheckpointError(() => openCheckpoint(lost), lost, /ZIP64 locator/);
    // Saved on a big-endian machine.
    const big = write(
      "bigendian.pt",
      zipSync({ ...torchZipFiles(viewsPickle()), "archive/byteorder": utf8.encode("big") }),
    );
    assertCheckpointError(() => openCheckpoint(big), big, /big-endian/);
    const little = write(
      "littleendian.pt",
      zipSync({ ...torchZipFiles(viewsPickle()), "archive/byteorder": utf8.encode("little") }),
    );
    withCheckpoint(little, (sd) => checkViews(sd, "byteorder little"));
  });
});

/** A TorchScript module object: `__torch__.<cls>` built by NEWOBJ, its attributes set by BUILD
 * from a dict; `attrs` writes the dict's items. */
function scriptModule(p: Pickle, cls: string, attrs: (p: Pickle) => void): Pickle {
  p.global(`__torch__.${cls.split(".").slice(0, -1).join(".") || "model"}`, cls.split(".").at(-1)!)
    .op(OP.EMPTY_TUPLE, OP.NEWOBJ, OP.EMPTY_DICT, OP.MARK);
  attrs(p);
  return p.op(OP.SETITEMS, OP.BUILD);
}

Deno.test("TorchScript module trees flatten to state_dict names; non-tensor attributes skipped", () => {
  const p = new Pickle();
  scriptModule(p, "CLIP", (p) => {
    p.str("training").op(OP.NEWFALSE);
    p.str("visual");
    scriptModule(p, "Visual", (p) => {
      p.str("training").op(OP.NEWFALSE);
      p.str("proj").tensor({ offset: 0, size: [2, 3], stride: [3, 1] });
      p.str("input_resolution").tensor({
        storage: "LongStorage",
        key: "r",
        numel: 1,
        offset: 0,
        size: [],
        stride: [],
      });
    });
    p.str("resblocks");
    scriptModule(p, "torch.nn.modules.container.Sequential", (p) => {
      p.str("training").op(OP.NEWFALSE);
      p.str("0");
      scriptModule(p, "torch.nn.modules.linear.Linear", (p) => {
        p.str("training").op(OP.NEWFALSE);
        p.str("weight").tensor({ offset: 0, size: [3, 2], stride: [1, 3] });
        p.str("bias").tensor({ offset: 4, size: [2], stride: [1] });
      });
    });
    p.str("logit_scale").tensor({ offset: 5, size: [], stride: [] });
    p.str("note").str("not a tensor");
  });
  const files = {
    ...torchZipFiles(p.done()),
    "archive/data/r": new Uint8Array(BigInt64Array.of(224n).buffer),
    "archive/constants.pkl": new Pickle().op(OP.EMPTY_TUPLE).done(),
    "archive/code/__torch__/model.py": utf8.encode("class CLIP(Module): ...\n"),
  };
  withTempDir((dir) => {
    const path = join(dir, "tiny.jit.pt");
    Deno.writeFileSync(path, zipSync(files, { level: 0 }));
    withCheckpoint(path, (sd) => {
      assert.equal(sd.format, "torchscript");
      assert.deepEqual([...sd.entries.keys()].sort(), [
        "logit_scale",
        "resblocks.0.bias",
        "resblocks.0.weight",
        "visual.input_resolution",
        "visual.proj",
      ]);
      assert.deepEqual(Array.from(sd.read("resblocks.0.weight").data), [10, 13, 11, 14, 12, 15]);
      assert.deepEqual(Array.from(sd.read("resblocks.0.bias").data), [14, 15]);
      assert.deepEqual(sd.read("logit_scale").shape, []);
      assert.deepEqual(Array.from(sd.read("logit_scale").data), [15]);
      const r = sd.read("visual.input_resolution");
      assert.deepEqual([r.dtype, Array.from(r.data)], ["int64", [224]]);
    });
  });
});

Deno.test("pickle forms: NEWOBJ of registered globals, tensor subclasses, foreign rebuilds of storages", () => {
  withTempDir((dir) => {
    const write = (name: string, pkl: Uint8Array): string => {
      const path = join(dir, name);
      Deno.writeFileSync(path, zipSync(torchZipFiles(pkl), { level: 0 }));
      return path;
    };
    // OrderedDict built by NEWOBJ; a tensor with Python state (_rebuild_from_type_v2); a
    // Parameter (_rebuild_parameter); a dtype global beside them (plain data, skipped).
    const p = new Pickle().global("collections", "OrderedDict").op(OP.EMPTY_TUPLE, OP.NEWOBJ)
      .op(OP.MARK).str("sub").global("torch._tensor", "_rebuild_from_type_v2").op(OP.MARK)
      .global("torch._utils", "_rebuild_tensor_v2").global("torch", "Tensor")
      .tensorArgs({ offset: 1, size: [2], stride: [2] }).op(OP.EMPTY_DICT, OP.TUPLE, OP.REDUCE)
      .str("param").global("torch._utils", "_rebuild_parameter").op(OP.MARK)
      .tensor({ offset: 0, size: [3], stride: [1] }).op(OP.NEWTRUE).orderedDict()
      .op(OP.TUPLE, OP.REDUCE)
      .str("dtype").global("torch", "float16")
      .op(OP.SETITEMS).done();
    withCheckpoint(write("forms.pt", p), (sd) => {
      assert.deepEqual([...sd.entries.keys()], ["sub", "param"]);
      assert.deepEqual(Array.from(sd.read("sub").data), [11, 13]);
      assert.deepEqual(Array.from(sd.read("param").data), [10, 11, 12]);
    });
    // A quantized tensor (an unknown rebuild function given a storage): refused, named.
    const q = new Pickle().op(OP.EMPTY_DICT).str("state_dict").op(OP.EMPTY_DICT).str("conv.w")
      .global("torch._utils", "_rebuild_qtensor").tensorArgs({ offset: 0, size: [6], stride: [1] })
      .op(OP.REDUCE, OP.SETITEM, OP.SETITEM).done();
    const qPath = write("qtensor.pt", q);
    assertCheckpointError(
      () => openCheckpoint(qPath),
      qPath,
      /'state_dict\.conv\.w' is a torch\._utils\._rebuild_qtensor holding tensors/,
    );
  });
});

Deno.test("legacy streams: protocol 4 magic, pickles longer than the first read, unused storages, cuts", () => {
  // A root pickle of ~1.5 MB (a long string beside the tensor): parsed from a growing prefix.
  const note = "n".repeat(1_500_000);
  const head = new Pickle().op(OP.EMPTY_DICT, OP.MARK).str("w")
    .tensor({ key: "1", offset: 0, size: [6], stride: [1], legacy: true }).str("note");
  const noteBytes = utf8.encode(note);
  const unicodeHead = new Uint8Array(5);
  unicodeHead[0] = OP.BINUNICODE;
  new DataView(unicodeHead.buffer).setUint32(1, noteBytes.length, true);
  const root = concat(
    Uint8Array.from(head.bytes),
    unicodeHead,
    noteBytes,
    Uint8Array.of(OP.SETITEMS, OP.STOP),
  );
  const bytes = legacyFile(root, [["1", STORAGE]]);
  // The same with the magic number pickled at protocol 4 (PROTO 4, FRAME of 13 bytes).
  const frame = new Uint8Array(11);
  frame.set([0x80, 4, 0x95, 13]);
  const protocol4 = concat(frame, bytes.subarray(2));
  withTempDir((dir) => {
    for (const [label, file] of Object.entries({ protocol2: bytes, protocol4 })) {
      const path = join(dir, `${label}.pt`);
      Deno.writeFileSync(path, file);
      withCheckpoint(path, (sd) => {
        assert.equal(sd.format, "torch-legacy", label);
        assert.deepEqual([...sd.entries.keys()], ["w"], label);
        assert.equal(sd.extras.get("note"), note, label);
        assert.deepEqual(Array.from(sd.read("w").data), [10, 11, 12, 13, 14, 15], label);
      });
    }
    // Cut inside the long pickle, inside a storage's count, inside its bytes.
    for (const cut of [1_200_000, bytes.length - 30, bytes.length - 4]) {
      const path = join(dir, `cut${cut}.pt`);
      Deno.writeFileSync(path, bytes.subarray(0, cut));
      const e = errorOf(path);
      assert.ok(e instanceof CheckpointError, `cut at ${cut}: ${describeError(e)}`);
      assert.ok(e.message.includes(path), e.message);
    }
    // A storage listed that no tensor uses: its element size, so the next one's place, unknown.
    const unused = join(dir, "unused.pt");
    const small = new Pickle().op(OP.EMPTY_DICT).str("w")
      .tensor({ key: "1", offset: 0, size: [6], stride: [1], legacy: true }).op(OP.SETITEM).done();
    Deno.writeFileSync(unused, legacyFile(small, [["9", STORAGE], ["1", STORAGE]]));
    assertCheckpointError(() => openCheckpoint(unused), unused, /storage '9' is listed/);
  });
});

Deno.test("checkpointKind and openCheckpoint sniff contents: ONNX, tar, pickles, checkpoints", () => {
  withTempDir((dir) => {
    const write = (name: string, bytes: Uint8Array): string => {
      const path = join(dir, name);
      Deno.writeFileSync(path, bytes);
      return path;
    };
    const random = rng(11);
    const noise = Uint8Array.from({ length: 600 }, () => 1 + random() * 200);
    assert.equal(checkpointKind(write("noise.onnx", noise)), "onnx"); // by extension
    // ModelProto: ir_version 8, then producer_name "pytorch".
    const onnx = Uint8Array.from([0x08, 0x08, 0x12, 0x07, ...utf8.encode("pytorch"), 0x3a, 0x00]);
    const onnxPath = write("model.bin", onnx);
    assert.equal(checkpointKind(onnxPath), "onnx");
    assertCheckpointError(() => openCheckpoint(onnxPath), onnxPath, /ONNX/);
    assert.equal(checkpointKind(write("noise.bin", noise)), "unknown");
    assert.equal(checkpointKind(write("empty.pt", new Uint8Array())), "unknown");
    const tar = new Uint8Array(1024);
    tar.set(utf8.encode("archive/data.pkl"), 0);
    tar.set(utf8.encode("ustar"), 257);
    const tarPath = write("old.pt", tar);
    assert.equal(checkpointKind(tarPath), "unknown");
    assertCheckpointError(() => openCheckpoint(tarPath), tarPath, /tar archive/);
    const pickle = write("plain.pkl", new Pickle().op(OP.EMPTY_DICT).done());
    assertCheckpointError(() => openCheckpoint(pickle), pickle, /pickle but not a PyTorch/);
    const zip = write("views.pt", zipSync(torchZipFiles(viewsPickle())));
    assert.equal(checkpointKind(zip), "checkpoint");
    const legacy = write(
      "legacy.bin",
      legacyFile(
        new Pickle().op(OP.EMPTY_DICT).str("w")
          .tensor({ key: "1", offset: 0, size: [6], stride: [1], legacy: true }).op(OP.SETITEM)
          .done(),
        [["1", STORAGE]],
      ),
    );
    assert.equal(checkpointKind(legacy), "checkpoint");
    const missing = join(dir, "missing.pt");
    assertCheckpointError(() => checkpointKind(missing), missing, /not found/);
  });
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  for (const file of Object.keys(SHARED_FORMATS)) {
    assert.equal(checkpointKind(join(dir, file)), "checkpoint", file);
  }
});

Deno.test("decodeDense: permuted dense layouts in chunks equal decodeTensor; other layouts declined", () => {
  const random = rng(5);
  const cases: Array<{ dtype: WeightDType; base: number[]; perm: number[] }> = [
    { dtype: "float32", base: [3, 4, 5], perm: [0, 1, 2] },
    { dtype: "float32", base: [3, 4, 5], perm: [2, 0, 1] },
    { dtype: "float16", base: [4, 6], perm: [1, 0] },
    { dtype: "bfloat16", base: [2, 3, 1, 4], perm: [3, 1, 2, 0] },
    { dtype: "int64", base: [5, 3], perm: [1, 0] },
    { dtype: "uint8", base: [7], perm: [0] },
    // More than one 4 MiB chunk, transposed.
    { dtype: "float16", base: [1200, 1900], perm: [1, 0] },
    { dtype: "float32", base: [1100, 1000], perm: [0, 1] },
  ];
  for (const { dtype, base, perm } of cases) {
    const count = base.reduce((a, b) => a * b, 1);
    const bytes = new Uint8Array(count * WEIGHT_DTYPE_BYTES[dtype]);
    for (let i = 0; i < bytes.length; i++) bytes[i] = random() * 256;
    // Finite floats (NaN compares unequal) and int64 within 2^53: clear each element's top bits.
    const width = WEIGHT_DTYPE_BYTES[dtype];
    if (dtype.startsWith("float") || dtype === "bfloat16") {
      for (let i = width - 1; i < bytes.length; i += width) bytes[i] &= 0x3f;
    }
    if (dtype === "int64") { for (let i = 7; i < bytes.length; i += 8) bytes[i] = 0; }
    const baseStrides = base.map((_, d) => base.slice(d + 1).reduce((a, b) => a * b, 1));
    const shape = perm.map((d) => base[d]);
    const strides = perm.map((d) => baseStrides[d]);
    const label = `${dtype} [${base}] perm [${perm}]`;
    // float32 in storage order is read straight into the output, in one read; the rest in chunks.
    const direct = dtype === "float32" && perm.every((d, i) => d === i);
    let fills = 0;
    const dense = decodeDense(
      (at, target) => {
        assert.ok(direct || target.length <= 4 << 20, `${label}: a ${target.length}-byte read`);
        target.set(bytes.subarray(at, at + target.length));
        fills++;
      },
      dtype,
      shape,
      strides,
      label,
    );
    assert.ok(dense, label);
    const want = decodeTensor(bytes, dtype, shape, label, { offset: 0, strides });
    assert.deepEqual(dense.shape, want.shape, label);
    assert.equal(dense.dtype, want.dtype, label);
    assert.ok(
      dense.data.length === want.data.length && dense.data.every((x, i) => x === want.data[i]),
      label,
    );
    if (direct) assert.equal(fills, 1, label);
    else if (bytes.length > 4 << 20) assert.ok(fills > 1, label);
  }
  const none = () => {
    throw new Error("not read");
  };
  // Gaps, overlaps and broadcasts are not dense: left to decodeTensor.
  assert.equal(decodeDense(none, "float32", [2, 2], [3, 1], "gap"), undefined);
  assert.equal(decodeDense(none, "float32", [3, 2], [1, 1], "overlap"), undefined);
  assert.equal(decodeDense(none, "float32", [4, 2], [0, 1], "broadcast"), undefined);
});

// ---------------------------------------------------------------------------------------------
// seeded mini-fuzz

/** Where the structure (not the tensor bytes) of a small shared file lies: the zip's data.pkl
 * and its directory; a legacy file's first pickles; a safetensors header. */
function structureRanges(bytes: Uint8Array): Array<[number, number]> {
  const n = bytes.length;
  const tail: [number, number] = [Math.max(0, n - 4096), n];
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) {
    const zip = new ZipArchive(memoryByteSource("fuzz", bytes));
    const pkl = [...zip.entries.keys()].find((k) => k.endsWith("data.pkl"))!;
    const { offset, length } = zip.dataRange(pkl);
    return [[offset, offset + length], tail];
  }
  if (bytes[0] === 0x80) return [[0, Math.min(n, 8192)]];
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return [[0, Math.min(n, 8 + headerLength)]];
}

Deno.test("seeded fuzz: byte flips and cuts of the small shared files give CheckpointError or a clean read", () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const files = [
    "clip_vit_ckpt.jit.pt",
    "clip_vit_ckpt.state_dict.pt",
    "clip_vit_ckpt.legacy.pt",
    "clip_vit_ckpt.hf.safetensors",
  ].map((f) => {
    const bytes = Deno.readFileSync(join(dir, f));
    return { file: f, bytes, ranges: structureRanges(bytes) };
  });
  const random = rng(20240611);
  const pick = (n: number) => Math.floor(random() * n);
  const CASES = 200;
  let refused = 0;
  withTempDir((tmp) => {
    for (let k = 0; k < CASES; k++) {
      const { file, bytes, ranges } = files[k % files.length];
      let copy: Uint8Array;
      let what: string;
      if (random() < 0.2) {
        const cut = pick(bytes.length);
        copy = bytes.slice(0, cut);
        what = `cut to ${cut}`;
      } else {
        copy = bytes.slice();
        const flips = 1 + pick(6);
        const at: number[] = [];
        for (let f = 0; f < flips; f++) {
          // Mostly into the structure (pickles, directories, headers), sometimes anywhere.
          const [lo, hi] = random() < 0.85 ? ranges[pick(ranges.length)] : [0, copy.length];
          const i = lo + pick(hi - lo);
          copy[i] = random() < 0.5 ? copy[i] ^ (1 << pick(8)) : pick(256);
          at.push(i);
        }
        what = `bytes changed at ${at.join(",")}`;
      }
      const path = join(tmp, `case${k}.${file}`);
      Deno.writeFileSync(path, copy);
      const e = errorOf(path);
      Deno.removeSync(path);
      if (e === undefined) continue;
      refused++;
      assert.ok(
        e instanceof EngineError,
        `fuzz case ${k} (${file}, ${what}): ${describeError(e)}`,
      );
      if (e instanceof CheckpointError) {
        assert.ok(e.message.includes(path), `fuzz case ${k}: message names no file: ${e.message}`);
      }
    }
  });
  assert.ok(refused >= CASES / 5, `only ${refused} of ${CASES} corrupted files refused`);
});
