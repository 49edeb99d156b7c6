/** Opens any checkpoint file by what its first bytes say it is, not by its extension. */
import { extname } from "node:path";
import { openByteSource } from "./file_source.ts";
import { looksLikeSafetensors, openSafetensors } from "./safetensors.ts";
import { CheckpointError, type StateDict } from "./state_dict.ts";
import { looksLikeLegacyTorch, openTorchLegacy, openTorchZip } from "./torch.ts";
import { looksLikeZip } from "./zip.ts";

/** A checkpoint as a StateDict: TorchScript or torch.save zip archives, legacy torch.save
 * streams, safetensors. Anything else is refused with what it looks like. */
export function openCheckpoint(path: string): StateDict {
  const source = openByteSource(path);
  let head: Uint8Array;
  try {
    head = source.read(0, Math.min(16, source.size), "the file header");
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

function unknownFileReason(head: Uint8Array, path: string): string {
  if (head.length === 0) return "the file is empty";
  if (head[0] === 0x80) {
    return "a Python pickle but not a PyTorch checkpoint (no torch.save magic number)";
  }
  if (extname(path).toLowerCase() === ".onnx" || head[0] === 0x08) {
    return "looks like an ONNX model; give it as ONNX (a .onnx file name)";
  }
  return "not a checkpoint the engine reads (expected a TorchScript or torch.save archive, a " +
    "legacy torch.save file, or safetensors)";
}
