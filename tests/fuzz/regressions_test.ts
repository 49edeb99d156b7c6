/** The crash classes the loader fuzzer found, one directed case each (the fuzzer's default seed
 * need not hit them again): every one must be one EngineError naming the file, refused before any
 * large allocation, with the file's bytes escaped in the message. */
import { ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import * as fflate from "fflate";
import { cpuTensor } from "../../src/util/tensor.ts";
import { EngineError } from "../../src/util/errors.ts";
import { OPS, parseModel, readTensorFile } from "../../src/onnx/mod.ts";
import { decodeNpy, encodeNpy, npyArray } from "../../src/util/npy.ts";
import { decodeNpz, npzGet } from "../../src/util/npz.ts";
import { openCheckpoint } from "../../src/models/checkpoint/open.ts";
import { CheckpointError } from "../../src/models/checkpoint/state_dict.ts";
import { printable } from "../../src/util/text.ts";
import { decodeImage } from "../../src/data/decode.ts";
import { A, encodeModel, init, node, onnx, T, vi } from "../onnx/_proto.ts";

/** Asserts `fn` throws an EngineError whose message matches `pattern` and holds no raw control
 * characters. */
function throwsClear(fn: () => unknown, pattern: RegExp): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof EngineError, `not an EngineError: ${e}`);
    ok(pattern.test(e.message), `message ${JSON.stringify(e.message)} does not match ${pattern}`);
    // deno-lint-ignore no-control-regex
    ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(e.message), JSON.stringify(e.message));
    return true;
  });
}

function withTempDir(fn: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "fuzz_regress_" });
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("regression: ONNX initializer dims claiming 2^40 elements are refused, not allocated", () => {
  for (const dims of [[2 ** 40], [1e6, 1e6], [2 ** 53, 2 ** 53]]) {
    const w = init("w", cpuTensor("float32", [2], [1, 2]));
    w.dims = dims;
    const bytes = encodeModel({
      nodes: [node("Add", ["x", "w"], ["y"])],
      inputs: [vi("x", "float32", [2])],
      outputs: [vi("y", "float32", [2])],
      initializers: [w],
    });
    throwsClear(
      () => parseModel(bytes, { source: "big.onnx", ops: OPS }),
      /^big\.onnx: tensor 'w': (raw data has 8 bytes but \[.*\] float32 needs|invalid dims)/,
    );
  }
  // Typed values rather than raw data, and dims past 2^53 (not exact as numbers).
  const typed = { name: "w", dataType: T.FLOAT, dims: [2 ** 40], floatData: [1, 2] };
  const bytes = encodeModel({
    nodes: [node("Add", ["x", "w"], ["y"])],
    inputs: [vi("x", "float32", [2])],
    outputs: [vi("y", "float32", [2])],
    initializers: [typed],
  });
  throwsClear(() => parseModel(bytes, { source: "t.onnx", ops: OPS }), /has 2 values but dims/);
  typed.dims = [0, 2 ** 55];
  const huge = encodeModel({
    nodes: [node("Add", ["x", "w"], ["y"])],
    inputs: [vi("x", "float32", [2])],
    outputs: [vi("y", "float32", [2])],
    initializers: [typed],
  });
  throwsClear(() => parseModel(huge, { source: "t.onnx", ops: OPS }), /invalid dims/);
});

Deno.test("regression: an ONNX attribute of type TENSOR without a tensor is a clear error", () => {
  const bytes = encodeModel({
    nodes: [node("Constant", [], ["y"], [{ name: "value", type: A.TENSOR }], "c")],
    outputs: [vi("y", "float32", [1])],
  });
  throwsClear(
    () => parseModel(bytes, { source: "attr.onnx", ops: OPS }),
    /^attr\.onnx: .*'c'.*attribute 'value': has type TENSOR but holds no tensor/,
  );
});

Deno.test("regression: names read from an ONNX file are escaped in errors", () => {
  const bytes = encodeModel({
    nodes: [node("Relu", ["x"], ["y"])],
    inputs: [vi("x", "float32", [2])],
    outputs: [vi("\n\u001b[31mout", "float32", [2])],
  });
  throwsClear(
    () => parseModel(bytes, { source: "n.onnx", ops: OPS }),
    /graph output '\\n\\x1b\[31mout' is not produced/,
  );
});

Deno.test("regression: a missing or corrupt TensorProto file is an EngineError", () => {
  withTempDir((dir) => {
    throwsClear(
      () => readTensorFile(join(dir, "nope.pb")),
      /cannot read .*nope\.pb: file not found/,
    );
    const t = onnx.TensorProto.encode({ name: "x", dataType: T.FLOAT, dims: [0, 2 ** 55] })
      .finish();
    Deno.writeFileSync(join(dir, "x.pb"), t);
    throwsClear(() => readTensorFile(join(dir, "x.pb")), /x\.pb: .*invalid dims/);
  });
});

Deno.test("regression: npy/npz messages escape header bytes and member names", () => {
  const npy = encodeNpy(npyArray("float32", [2], [1, 2]));
  const text = new TextDecoder().decode(npy.subarray(10, 64)).replace("<f4", "\u0085f4");
  const bad = npy.slice();
  bad.set(new TextEncoder().encode(text).subarray(0, 54), 10);
  throwsClear(() => decodeNpy(bad, "a.npy"), /^a\.npy: (unsupported|malformed)/);

  const zip = fflate.zipSync({ "x\u0001y.npy": [new Uint8Array(4), { level: 0 }] });
  throwsClear(() => decodeNpz(zip, "z.npz"), /^z\.npz:x\\x01y\.npy: not a \.npy file/);
  throwsClear(
    () => npzGet(new Map([["a\u0000", npyArray("float32", [0])]]), "b", "z.npz"),
    /no array 'b' \(has: a\\x00\)/,
  );
});

Deno.test("regression: an npz member claiming a huge inflated size is refused first", () => {
  const zip = fflate.zipSync({ "a.npy": [new Uint8Array(100), { level: 6 }] });
  // The central directory's uncompressed size: 4 GiB - 1.
  const view = new DataView(zip.buffer);
  for (let i = zip.length - 22; i >= 0; i--) {
    if (view.getUint32(i, true) === 0x02014b50) {
      view.setUint32(i + 24, 0xffffffff, true);
      break;
    }
  }
  throwsClear(() => decodeNpz(zip, "big.npz"), /^big\.npz: member 'a\.npy' claims 4294967295/);
});

/** A safetensors file with `header` and `data`. */
function safetensors(header: unknown, data = new Uint8Array(16)): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

Deno.test("regression: safetensors dtypes of Object's keys and unsafe dims are refused", () => {
  withTempDir((dir) => {
    const path = join(dir, "m.safetensors");
    const cases: [unknown, RegExp][] = [
      [{ a: { dtype: "constructor", shape: [2], data_offsets: [0, 8] } }, /unsupported dtype/],
      [{ a: { dtype: "__proto__", shape: [2], data_offsets: [0, 8] } }, /unsupported dtype/],
      [{ a: { dtype: "F32", shape: [1e300, 0], data_offsets: [0, 0] } }, /malformed shape/],
      [
        { "a\n\u001b[2J": { dtype: "F32", shape: [5], data_offsets: [0, 8] } },
        /tensor 'a\\n\\x1b\[2J': data_offsets span 8 bytes/,
      ],
    ];
    for (const [header, pattern] of cases) {
      Deno.writeFileSync(path, safetensors(header));
      throwsClear(() => openCheckpoint(path).close(), pattern);
    }
  });
});

Deno.test("regression: CheckpointError escapes control characters and keeps list lines", () => {
  const e = new CheckpointError("f.pt: storage 'a\u0000b\nc' bad\n  - item");
  ok(e.message === "f.pt: storage 'a\\x00b\\nc' bad\n  - item", JSON.stringify(e.message));
  ok(printable("tab\there\u009b") === "tab\\x09here\\x9b");
});

Deno.test("regression: a PNG of zero width, and one truncated in a chunk of odd bytes, are clear errors", async () => {
  const base = Deno.readFileSync(new URL("../data/pil_modes/rgb8.png", import.meta.url));
  // IHDR's width is the 4 bytes after the signature (8), the chunk length (4) and type (4).
  const zero = base.slice();
  zero.set([0, 0, 0, 0], 16);
  await rejects(
    decodeImage(zero, "zero.png"),
    (e: Error) =>
      e instanceof EngineError && /zero\.png: .*0x7 pixels: a zero size is invalid/.test(e.message),
  );
  // A chunk whose type bytes are control characters, cut short: the type is escaped.
  const odd = new Uint8Array([...base.slice(0, 33), 0, 0, 0, 99, 1, 2, 3, 4, 9]);
  await rejects(decodeImage(odd, "odd.png"), (e: Error) => {
    ok(e instanceof EngineError && e.message.includes("odd.png"), e.message);
    ok(printable(e.message) === e.message, e.message); // no raw control bytes
    return true;
  });
});
