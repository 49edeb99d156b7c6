import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { join } from "node:path";
import * as fflate from "fflate";
import {
  decodeNpy,
  encodeNpy,
  int64ToNumbers,
  npyArray,
  type NpyDType,
  readNpy,
  writeNpy,
} from "../../src/util/npy.ts";
import { decodeNpz, encodeNpz, readNpz, writeNpz } from "../../src/util/npz.ts";
import { IN_CI } from "../helpers.ts";

const DTYPES: NpyDType[] = [
  "float16",
  "float32",
  "float64",
  "int8",
  "int16",
  "int32",
  "int64",
  "uint8",
  "uint16",
  "uint32",
  "bool",
];

function sample(dtype: NpyDType, n: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    if (dtype === "bool") return i % 3 === 0 ? 1 : 0;
    if (dtype.startsWith("uint")) return (i * 37) % 200;
    if (dtype.startsWith("int")) return ((i * 37) % 200) - 100;
    return (i - n / 2) * 0.375;
  });
}

Deno.test("npy: every dtype round-trips, header padded to 64 bytes", () => {
  for (const dtype of DTYPES) {
    for (const shape of [[], [1], [7], [2, 3], [2, 1, 5], [0, 4]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const a = npyArray(dtype, shape, sample(dtype, n));
      const bytes = encodeNpy(a);
      const headerLen = new DataView(bytes.buffer).getUint16(8, true);
      assertEquals((10 + headerLen) % 64, 0);
      const back = decodeNpy(bytes);
      assertEquals(back.dtype, dtype);
      assertEquals([...back.shape], shape);
      assertEquals(Array.from(back.data, Number), Array.from(a.data, Number));
    }
  }
});

Deno.test("npy: int64 beyond 2^53 is exact in BigInt64Array and refused as numbers", () => {
  const a = npyArray("int64", [2], [2n ** 60n, -3n]);
  const back = decodeNpy(encodeNpy(a));
  assertEquals((back.data as BigInt64Array)[0], 2n ** 60n);
  throws(() => int64ToNumbers(back), /too large/);
});

/** A .npy file as numpy would write it, with a given header dict and raw body. */
function handMade(dict: string, body: Uint8Array): Uint8Array {
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const out = new Uint8Array(total + body.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, total - 10, true);
  const text = dict.padEnd(total - 11, " ") + "\n";
  for (let i = 0; i < text.length; i++) out[10 + i] = text.charCodeAt(i);
  out.set(body, total);
  return out;
}

Deno.test("npy: reads Fortran order and big-endian data", () => {
  // [[1, 2, 3], [4, 5, 6]] stored column-major: 1 4 2 5 3 6
  const fortran = new Float32Array([1, 4, 2, 5, 3, 6]);
  const f = decodeNpy(
    handMade(
      "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
      new Uint8Array(fortran.buffer),
    ),
  );
  assertEquals(Array.from(f.data as Float32Array), [1, 2, 3, 4, 5, 6]);
  const be = new Uint8Array(16);
  const dv = new DataView(be.buffer);
  dv.setFloat64(0, 1.5, false);
  dv.setFloat64(8, -2.25, false);
  const b = decodeNpy(handMade("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", be));
  assertEquals(Array.from(b.data as Float64Array), [1.5, -2.25]);
});

Deno.test("npy: malformed files are clear errors", () => {
  throws(() => decodeNpy(new Uint8Array(20), "x.npy"), /x\.npy: not a \.npy file/);
  throws(
    () =>
      decodeNpy(
        handMade("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8)),
        "c.npy",
      ),
    /unsupported npy dtype '<c8'/,
  );
  throws(
    () =>
      decodeNpy(
        handMade("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", new Uint8Array(8)),
        "t.npy",
      ),
    /truncated/,
  );
});

Deno.test("npz: stored and deflated archives round-trip; members are <key>.npy", () => {
  const arrays = {
    w: npyArray("float32", [3, 2], [1, 2, 3, 4, 5, 6]),
    labels: npyArray("int64", [3], [0, 2, 1]),
  };
  for (const compress of [false, true]) {
    const bytes = encodeNpz(arrays, { compress });
    assertEquals(Object.keys(fflate.unzipSync(bytes)).sort(), ["labels.npy", "w.npy"]);
    const back = decodeNpz(bytes);
    assertEquals(Array.from(back.get("w")!.data as Float32Array), [1, 2, 3, 4, 5, 6]);
    assertEquals(Array.from(back.get("labels")!.data, Number), [0, 2, 1]);
  }
  throws(() => decodeNpz(new Uint8Array([1, 2, 3]), "bad.npz"), /bad\.npz: not a readable zip/);
});

function havePythonNumpy(): boolean {
  try {
    const r = new Deno.Command("/usr/bin/python3", { args: ["-c", "import numpy"] }).outputSync();
    return r.success;
  } catch {
    return false;
  }
}

Deno.test("npy/npz: numpy reads what we write and we read what numpy writes", () => {
  if (!havePythonNumpy()) {
    const msg = "python3 with numpy not installed (apt-get install python3-numpy)";
    if (IN_CI) throw new Error(`${msg}; CI requires it`);
    console.warn(`SKIP: ${msg}`);
    return;
  }
  const dir = Deno.makeTempDirSync({ prefix: "amu_npy_" });
  try {
    writeNpy(join(dir, "a.npy"), npyArray("float32", [2, 3], [1, 2, 3, 4, 5, 6.5]));
    writeNpz(join(dir, "b.npz"), {
      x: npyArray("int64", [2, 2], [1, -2, 3, 2 ** 40]),
      y: npyArray("float64", [3], [0.1, 0.2, 0.3]),
    });
    const script = `
import numpy as np, sys
d = sys.argv[1]
a = np.load(d + "/a.npy")
assert a.dtype == np.float32 and a.shape == (2, 3) and a[1, 2] == 6.5, a
b = np.load(d + "/b.npz")
assert b["x"].dtype == np.int64 and b["x"][1, 1] == 2**40 and b["y"][2] == 0.3
np.save(d + "/c.npy", np.arange(12, dtype=np.float64).reshape(3, 4).T)  # Fortran-ordered view
np.savez_compressed(d + "/d.npz", p=np.array([[7, 8]], dtype=np.int64), q=np.float32(2.5))
np.save(d + "/e.npy", np.array([True, False, True]))
`;
    const r = new Deno.Command("/usr/bin/python3", { args: ["-c", script, dir] }).outputSync();
    if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
    const c = readNpy(join(dir, "c.npy"));
    assertEquals([...c.shape], [4, 3]);
    assertEquals(Array.from(c.data as Float64Array), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    const d = readNpz(join(dir, "d.npz"));
    assertEquals(Array.from(d.get("p")!.data, Number), [7, 8]);
    assertEquals([...d.get("q")!.shape], []);
    assertEquals(Array.from(d.get("q")!.data as Float32Array), [2.5]);
    assertEquals(Array.from(readNpy(join(dir, "e.npy")).data as Uint8Array), [1, 0, 1]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
