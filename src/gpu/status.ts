/** Status words: how a kernel reports input it cannot compute (an index outside its table, say)
 * without stopping the GPU. Each checking node of a plan owns one slot of STATUS_WORDS u32 words
 * in a small storage buffer that the plan clears before each run and reads back with the
 * results: word 0 is a flag (non-zero: something was wrong), word 1 one offending value. The
 * kernel still writes a defined output (a clamped read), so nothing reads outside a buffer, and
 * the host raises the error naming the node. */

import type { Gpu } from "./device.ts";
import type { ResourceOwner } from "./dispatch.ts";

/** u32 words per slot (layout above; the shaders index `slot * 2u`). */
export const STATUS_WORDS = 2;

/** Where one kernel writes its status: the buffer (bound as `array<atomic<u32>>`) and its slot. */
export interface StatusSlot {
  readonly buffer: GPUBuffer;
  readonly slot: number;
}

/** `status`, or where none is given (kernels used outside a plan, callers whose indices are
 * valid by construction) a private slot nobody reads. */
export function statusOrSink(
  gpu: Gpu,
  owner: ResourceOwner,
  status: StatusSlot | undefined,
  label: string,
): StatusSlot {
  if (status) return status;
  const buffer = owner.own(gpu.device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.STORAGE,
    label: `${label} status (unread)`,
  }));
  return { buffer, slot: 0 };
}

/** The flagged slots in words read back from a status buffer, with their offending values. */
export function flaggedSlots(words: Uint32Array): { slot: number; value: number }[] {
  const out: { slot: number; value: number }[] = [];
  for (let s = 0; s * STATUS_WORDS < words.length; s++) {
    if (words[s * STATUS_WORDS] !== 0) {
      out.push({ slot: s, value: words[s * STATUS_WORDS + 1] | 0 });
    }
  }
  return out;
}
