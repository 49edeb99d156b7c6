/** Opens any checkpoint file by what its first bytes say it is, not by its extension. */
import { extname } from "node:path";
import { type ByteSource, openByteSource } from "./file_source.ts";
import { looksLikeSafetensors, openSafetensors } from "./safetensors.ts";
import { CheckpointError, type StateDict } from "./state_dict.ts";
import { looksLikeLegacyTorch, openTorchLegacy, openTorchZip } from "./torch.ts";
import { looksLikeZip } from "./zip.ts";

/** Bytes sniffed: enough for a legacy magic number behind a protocol-4 FRAME (24) and a tar
 * header's `ustar` (at 257). */
const HEAD_BYTES = 264;

/** A checkpoint as a StateDict: TorchScript or torch.save zip archives, legacy torch.save
 * streams, safetensors. Anything else is refused with what it looks like. */
export function openCheckpoint(path: string): StateDict {
  const source = openByteSource(path);
  let head: Uint8Array;
  try {
    head = readHead(source);
  } catch (e) {
    source.close();
    throw e;
  }
  if (looksLikeZip(head)) return openTorchZip(path, source);
  if (looksLikeLegacyTorch(head)) return openTorchLegacy(path, source);
  if (looksLikeSafetensors(head, source.size)) return openSafetensors(path, source);
  source.close();
  throw new CheckpointError(`${path}: ${unknownFileReason(head, path)}`);
}

/** What a model file is, to route it: an ONNX graph (by its `.onnx` extension, or an ONNX
 * protobuf's first bytes), a checkpoint `openCheckpoint` reads, or neither. Reads at most the
 * first bytes; throws CheckpointError when the file cannot be read. */
export function checkpointKind(path: string): "onnx" | "checkpoint" | "unknown" {
  if (extname(path).toLowerCase() === ".onnx") return "onnx";
  const source = openByteSource(path);
  try {
    const head = readHead(source);
    if (
      looksLikeZip(head) || looksLikeLegacyTorch(head) || looksLikeSafetensors(head, source.size)
    ) {
      return "checkpoint";
    }
    return looksLikeOnnx(head) ? "onnx" : "unknown";
  } finally {
    source.close();
  }
}

function readHead(source: ByteSource): Uint8Array {
  return source.read(0, Math.min(HEAD_BYTES, source.size), "the file header");
}

/** An ONNX ModelProto starts with field 1 (`ir_version`, a small varint) followed by another
 * field that is length-delimited (producer name, graph, opset imports...). */
function looksLikeOnnx(head: Uint8Array): boolean {
  return head.length >= 3 && head[0] === 0x08 && head[1] > 0 && head[1] < 0x80 &&
    (head[2] & 7) === 2;
}

function unknownFileReason(head: Uint8Array, path: string): string {
  if (head.length === 0) return "the file is empty";
  if (extname(path).toLowerCase() === ".onnx" || looksLikeOnnx(head)) {
    return "looks like an ONNX model; give it as ONNX (a .onnx file name)";
  }
  if (head[0] === 0x80) {
    return "a Python pickle but not a PyTorch checkpoint (no torch.save magic number)";
  }
  if (head.length >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === "ustar") {
    return "a tar archive (PyTorch < 0.4's torch.save format, not read; re-save it with a " +
      "current PyTorch)";
  }
  return "not a checkpoint the engine reads (expected a TorchScript or torch.save archive, a " +
    "legacy torch.save file, or safetensors)";
}
