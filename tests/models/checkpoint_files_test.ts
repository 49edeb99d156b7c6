/** Checkpoint readers on their own (no GPU): the shared files in every format agree with each
 * other value for value; views with offsets and strides, deflated entries and ZIP64 records are
 * read; truncated, corrupt and foreign files give one CheckpointError naming the file, never
 * anything else (a seeded fuzz over byte flips and cuts). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import { EngineError, roundToF16 } from "../../src/gpu/mod.ts";
import { openCheckpoint } from "../../src/models/checkpoint/open.ts";
import { CheckpointError, type StateDict } from "../../src/models/checkpoint/state_dict.ts";
import { rng, sharedPath } from "../helpers.ts";

function withCheckpoint<T>(path: string, f: (sd: StateDict) => T): T {
  const sd = openCheckpoint(path);
  try {
    return f(sd);
  } finally {
    sd.close();
  }
}

function allValues(path: string): Map<string, number[]> {
  return withCheckpoint(
    path,
    (sd) => new Map([...sd.entries.keys()].map((k) => [k, Array.from(sd.read(k).data)])),
  );
}

Deno.test("shared checkpoints: formats detected; zip, legacy, TorchScript and safetensors agree", () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const formats: Record<string, string> = {
    "clip_vit_ckpt.jit.pt": "torchscript",
    "clip_vit_ckpt.state_dict.pt": "torch-zip",
    "clip_vit_ckpt.legacy.pt": "torch-legacy",
    "clip_vit_ckpt.hf.safetensors": "safetensors",
    "clip_rn_ckpt.jit.pt": "torchscript",
    "mocov3_resnet_ckpt.pth.tar": "torch-zip",
    "mocov3_resnet_ckpt.legacy.pth.tar": "torch-legacy",
  };
  for (const [file, format] of Object.entries(formats)) {
    assert.equal(withCheckpoint(join(dir, file), (sd) => sd.format), format, file);
  }
  const zip = allValues(join(dir, "clip_vit_ckpt.state_dict.pt"));
  assert.deepEqual(allValues(join(dir, "clip_vit_ckpt.legacy.pt")), zip);
  withCheckpoint(join(dir, "clip_vit_ckpt.jit.pt"), (jit) => {
    const buffers = ["input_resolution", "context_length", "vocab_size"];
    assert.deepEqual(
      [...jit.entries.keys()].filter((k) => !zip.has(k)).sort(),
      [...buffers].sort(),
    );
    assert.deepEqual(buffers.map((b) => jit.read(b).data[0]), [32, 16, 512]);
    for (const [k, values] of zip) {
      const info = jit.entries.get(k)!;
      const want = info.dtype === "float16" ? values.map(roundToF16) : values;
      assert.deepEqual(Array.from(jit.read(k).data), want, k);
    }
    assert.equal(jit.entries.get("visual.conv1.weight")!.dtype, "float16");
    assert.equal(jit.entries.get("visual.positional_embedding")!.dtype, "float32");
  });
  withCheckpoint(join(dir, "clip_vit_ckpt.hf.safetensors"), (hf) => {
    const inProj = zip.get("visual.transformer.resblocks.0.attn.in_proj_weight")!;
    const q = Array.from(hf.read("vision_model.encoder.layers.0.self_attn.q_proj.weight").data);
    assert.deepEqual(q, inProj.slice(0, inProj.length / 3));
    const proj = zip.get("visual.proj")!; // [64, 32]
    const t = hf.read("visual_projection.weight"); // [32, 64]
    assert.deepEqual(t.shape, [32, 64]);
    assert.equal(t.data[5 * 64 + 7], proj[7 * 32 + 5]);
  });
  const moco = allValues(join(dir, "mocov3_resnet_ckpt.pth.tar"));
  assert.deepEqual(allValues(join(dir, "mocov3_resnet_ckpt.legacy.pth.tar")), moco);
  assert.ok(
    [...moco.keys()].every((k) => /^module\.(base_encoder|momentum_encoder|predictor)\./.test(k)),
  );
  withCheckpoint(join(dir, "mocov3_resnet_ckpt.pth.tar"), (sd) => {
    assert.equal(sd.extras.get("epoch"), 1000);
    assert.equal(sd.extras.get("arch"), "resnet50");
  });
});

// ---- hand-written pickles ----

const enc = new TextEncoder();

/** Pickle opcodes, enough to write a torch state_dict by hand. */
class PickleWriter {
  bytes: number[] = [0x80, 0x02];
  op(code: string) {
    this.bytes.push(code.charCodeAt(0));
    return this;
  }
  global(module: string, name: string) {
    this.op("c");
    this.bytes.push(...enc.encode(`${module}\n${name}\n`));
    return this;
  }
  str(s: string) {
    const b = enc.encode(s);
    this.op("X");
    this.bytes.push(b.length & 255, (b.length >> 8) & 255, 0, 0, ...b);
    return this;
  }
  int(n: number) {
    this.op("K");
    this.bytes.push(n);
    return this;
  }
  tuple(...ns: number[]) {
    this.op("(");
    for (const n of ns) this.int(n);
    return this.op("t");
  }
  /** _rebuild_tensor_v2(storage '0' of `n` floats, offset, size, stride, False, OrderedDict()). */
  tensor(storageClass: string, n: number, offset: number, size: number[], stride: number[]) {
    this.global("torch._utils", "_rebuild_tensor_v2").op("(");
    this.op("(").str("storage").global("torch", storageClass).str("0").str("cpu").int(n).op("t")
      .op("Q");
    this.int(offset).tuple(...size).tuple(...stride).op("\x89");
    this.global("collections", "OrderedDict").op(")").op("R");
    return this.op("t").op("R");
  }
  done(): Uint8Array {
    this.op(".");
    return Uint8Array.from(this.bytes);
  }
}

/** A state_dict {t: a transposed [3,2] view, u: a strided view from offset 2} over 6 floats. */
function viewsPickle(): Uint8Array {
  const w = new PickleWriter();
  w.global("collections", "OrderedDict").op(")").op("R").op("(");
  w.str("t").tensor("FloatStorage", 6, 0, [3, 2], [1, 3]);
  w.str("u").tensor("FloatStorage", 6, 2, [2], [2]);
  return w.op("u").done();
}

function storageBytes(): Uint8Array {
  return new Uint8Array(Float32Array.from([0, 1, 2, 3, 4, 5]).buffer);
}

/** Rewrites a zip's end records (and every central entry's sizes and offset) in ZIP64 form. */
function toZip64(zip: Uint8Array): Uint8Array {
  const v = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const eocd = zip.length - 22;
  const count = v.getUint16(eocd + 10, true);
  const cdOffset = v.getUint32(eocd + 16, true);
  const entries: number[] = [];
  let at = cdOffset;
  for (let k = 0; k < count; k++) {
    const nameLen = v.getUint16(at + 28, true), extraLen = v.getUint16(at + 30, true);
    const commentLen = v.getUint16(at + 32, true);
    const head = Array.from(zip.subarray(at, at + 46));
    const hv = new DataView(Uint8Array.from(head).buffer);
    const [compressed, size, offset] = [20, 24, 42].map((o) => v.getUint32(at + o, true));
    for (const o of [20, 24, 42]) hv.setUint32(o, 0xffffffff, true);
    hv.setUint16(30, 28, true);
    hv.setUint16(32, 0, true);
    const extra = new DataView(new ArrayBuffer(28));
    extra.setUint16(0, 1, true);
    extra.setUint16(2, 24, true);
    extra.setBigUint64(4, BigInt(size), true);
    extra.setBigUint64(12, BigInt(compressed), true);
    extra.setBigUint64(20, BigInt(offset), true);
    entries.push(
      ...new Uint8Array(hv.buffer),
      ...zip.subarray(at + 46, at + 46 + nameLen),
      ...new Uint8Array(extra.buffer),
    );
    at += 46 + nameLen + extraLen + commentLen;
  }
  const record = new DataView(new ArrayBuffer(56 + 20 + 22));
  record.setUint32(0, 0x06064b50, true);
  record.setBigUint64(4, 44n, true);
  record.setUint16(12, 45, true);
  record.setUint16(14, 45, true);
  record.setBigUint64(24, BigInt(count), true);
  record.setBigUint64(32, BigInt(count), true);
  record.setBigUint64(40, BigInt(entries.length), true);
  record.setBigUint64(48, BigInt(cdOffset), true);
  record.setUint32(56, 0x07064b50, true);
  record.setBigUint64(64, BigInt(cdOffset + entries.length), true);
  record.setUint32(72, 1, true);
  record.setUint32(76, 0x06054b50, true);
  record.setUint16(84, 0xffff, true);
  record.setUint16(86, 0xffff, true);
  record.setUint32(88, 0xffffffff, true);
  record.setUint32(92, 0xffffffff, true);
  return Uint8Array.from([
    ...zip.subarray(0, cdOffset),
    ...entries,
    ...new Uint8Array(record.buffer),
  ]);
}

Deno.test("torch zip archives: views with offsets and strides; deflated entries; ZIP64 records", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const files = {
      "archive/data.pkl": viewsPickle(),
      "archive/data/0": storageBytes(),
      "archive/version": enc.encode("3\n"),
    };
    const variants: Record<string, Uint8Array> = {
      stored: zipSync(files, { level: 0 }),
      deflated: zipSync(files, { level: 6 }),
      zip64: toZip64(zipSync(files, { level: 0 })),
    };
    for (const [name, bytes] of Object.entries(variants)) {
      const path = join(dir, `${name}.pt`);
      Deno.writeFileSync(path, bytes);
      withCheckpoint(path, (sd) => {
        assert.equal(sd.format, "torch-zip", name);
        assert.deepEqual(sd.entries.get("t")!.shape, [3, 2]);
        assert.deepEqual(Array.from(sd.read("t").data), [0, 3, 1, 4, 2, 5], name);
        assert.deepEqual(Array.from(sd.read("u").data), [2, 4], name);
      });
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

function assertCheckpointError(f: () => unknown, pattern: RegExp) {
  assert.throws(f, (e: Error) => e instanceof CheckpointError && pattern.test(e.message));
}

Deno.test("foreign and broken files: one CheckpointError naming the file", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const write = (name: string, bytes: Uint8Array) => {
      const p = join(dir, name);
      Deno.writeFileSync(p, bytes);
      return p;
    };
    assertCheckpointError(
      () => openCheckpoint(write("empty.pt", new Uint8Array())),
      /empty\.pt: the file is empty/,
    );
    assertCheckpointError(
      () =>
        openCheckpoint(
          write("noise.pt", Uint8Array.from({ length: 999 }, (_, i) => (i * 37) % 256)),
        ),
      /noise\.pt: not a checkpoint/,
    );
    assertCheckpointError(
      () => openCheckpoint(write("plain.zip", zipSync({ "a.txt": enc.encode("hi") }))),
      /plain\.zip: a zip archive without data\.pkl/,
    );
    // An unknown class holding tensors is refused by name; one holding plain data is kept aside.
    const foreign = new PickleWriter();
    foreign.global("collections", "OrderedDict").op(")").op("R").op("(");
    foreign.str("model").global("mypkg", "MyModule").op(")").op("R");
    foreign.op("}").op("(").str("w").tensor("FloatStorage", 6, 0, [6], [1]).op("u").op("b");
    const bad = write(
      "foreign.pt",
      zipSync({ "a/data.pkl": foreign.op("u").done(), "a/data/0": storageBytes() }, { level: 0 }),
    );
    assertCheckpointError(
      () => openCheckpoint(bad),
      /foreign\.pt: 'model' is a mypkg\.MyModule holding tensors/,
    );
    const plain = new PickleWriter();
    plain.op("}").op("(").str("args").global("argparse", "Namespace").op(")").op("R");
    plain.op("}").op("(").str("lr").int(3).op("u").op("b");
    plain.str("state_dict").op("}").op("(").str("w").tensor("FloatStorage", 6, 0, [6], [1]).op("u");
    const ok = write(
      "namespace.pt",
      zipSync({ "a/data.pkl": plain.op("u").done(), "a/data/0": storageBytes() }, { level: 0 }),
    );
    withCheckpoint(ok, (sd) => assert.deepEqual([...sd.entries.keys()], ["w"]));
    // safetensors: a broken header, a tensor past the end.
    const header = (json: string, pad = 0) => {
      const h = enc.encode(json);
      const out = new Uint8Array(8 + h.length + pad);
      new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
      out.set(h, 8);
      return out;
    };
    assertCheckpointError(
      () =>
        openCheckpoint(
          write(
            "bad.safetensors",
            header('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]} ,,'),
          ),
        ),
      /bad\.safetensors: safetensors header is not valid JSON/,
    );
    assertCheckpointError(
      () =>
        openCheckpoint(
          write(
            "short.safetensors",
            header('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 4),
          ),
        ),
      /short\.safetensors: tensor 'a' lies past the end of the file/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Opens a file and reads every tensor; returns the error, if any. */
function tryReadAll(path: string): unknown {
  try {
    withCheckpoint(path, (sd) => {
      for (const k of sd.entries.keys()) sd.read(k);
    });
    return undefined;
  } catch (e) {
    return e;
  }
}

Deno.test("truncated and byte-flipped checkpoints (seeded fuzz): CheckpointError or a clean read, nothing else", () => {
  const dir = sharedPath("checkpoints");
  if (!dir) return;
  const tmp = Deno.makeTempDirSync();
  try {
    const random = rng(14);
    const files = [
      "clip_vit_ckpt.jit.pt",
      "clip_vit_ckpt.state_dict.pt",
      "clip_vit_ckpt.legacy.pt",
      "clip_vit_ckpt.hf.safetensors",
      "mocov3_resnet_ckpt.legacy.pth.tar",
    ];
    let refused = 0, cases = 0;
    for (const file of files) {
      const bytes = Deno.readFileSync(join(dir, file));
      const cuts = [0.1, 0.5, 0.9].map((f) => Math.floor(bytes.length * f)).concat(
        bytes.length - 1,
      );
      for (const cut of cuts) {
        const p = join(tmp, `cut-${cut}-${file}`);
        Deno.writeFileSync(p, bytes.subarray(0, cut));
        const e = tryReadAll(p);
        cases++;
        assert.ok(e instanceof CheckpointError, `${file} cut at ${cut}: ${e}`);
        assert.ok((e as Error).message.includes(p), (e as Error).message);
        refused++;
      }
      for (let k = 0; k < 30; k++) {
        const copy = bytes.slice();
        const flips = 1 + Math.floor(random() * 8);
        // Flips land in the first and last 4 KiB (headers, pickles, directories) as often as
        // in the tensor data.
        for (let f = 0; f < flips; f++) {
          const region = random();
          const at = region < 0.4
            ? Math.floor(random() * Math.min(4096, copy.length))
            : region < 0.8
            ? copy.length - 1 - Math.floor(random() * Math.min(4096, copy.length))
            : Math.floor(random() * copy.length);
          copy[at] ^= 1 << Math.floor(random() * 8);
        }
        const p = join(tmp, `flip-${k}-${file}`);
        Deno.writeFileSync(p, copy);
        const e = tryReadAll(p);
        cases++;
        if (e === undefined) continue;
        refused++;
        assert.ok(e instanceof EngineError, `${file} flip case ${k}: ${(e as Error)?.stack ?? e}`);
      }
    }
    assert.ok(refused > cases / 4, `${refused} of ${cases} refused`);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
