/** Scaled dot-product attention on the fused kernel of src/kernels/attention.ts:
 *  - `engine.Attention`, what the load-time fusion (src/onnx/fuse.ts) makes of an exported
 *    attention: MatMul(Tq(q), Tk(k)) -> scale -> Add mask? -> Softmax(-1) -> MatMul(., Tv(v)) ->
 *    Tout, where each T is an optional Transpose given as a `*_perm` attribute, so the head
 *    split and merge transposes are read and written in place instead of copied;
 *  - ONNX `Attention` (opset 23): 3-D or 4-D Q/K/V, grouped-query heads, float (additive) or
 *    bool (visible keys) masks, is_causal, scale, softcap; masks shorter than the keys,
 *    past/present keys, nonpad_kv_seqlen and the extra outputs are reported as unsupported.
 * A mask that is a constant causal pattern (0 on and below a diagonal, -inf above) is not read:
 * the kernel skips the hidden keys instead. */
import { type CpuTensor, cpuTensor, type DType, shapeString, sizeOf } from "../../util/tensor.ts";
import { type GpuTensor } from "../../gpu/mod.ts";
import { prepareAttention, type Strides4 } from "../../kernels/attention.ts";
import { attentionRef } from "../../kernels/attention_ref.ts";
import { UnsupportedFeatureError } from "../graph.ts";
import {
  attrFloat,
  attrInt,
  attrInts,
  ENGINE_DOMAIN,
  NodeError,
  type OnnxNode,
  type OpContext,
  type OpImpl,
  type TensorInfo,
} from "../types.ts";
import { checkFloat, onNode, required, type Shaped } from "./common.ts";

/** How the kernel sees one node's operands: logical [batch, heads, rows, cols] strides of each
 * input, the output tensor's shape and the logical output's strides within it. */
interface AttentionSpec {
  readonly batch: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly sq: number;
  readonly sk: number;
  readonly dqk: number;
  readonly dv: number;
  readonly q: Strides4;
  readonly k: Strides4;
  readonly v: Strides4;
  readonly out: Strides4;
  readonly outShape: readonly number[];
  readonly mask?: Strides4;
  readonly scale: number;
  /** Causal masking from an attribute (ONNX is_causal). */
  readonly causal: boolean;
  /** Rows that see no key give 0 (ONNX Attention), not NaN (the decomposed Softmax). */
  readonly emptyRowsZero: boolean;
  /** ONNX softcap (0: none). */
  readonly softcap: number;
  readonly dtype: DType;
}

/** A strided view of a contiguous tensor. */
interface View {
  shape: number[];
  strides: number[];
}

function contiguous(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  for (let i = shape.length - 1, step = 1; i >= 0; i--) {
    st[i] = step;
    step *= shape[i];
  }
  return st;
}

function permuted(node: OnnxNode, shape: readonly number[], perm: number[] | undefined): View {
  const strides = contiguous(shape);
  if (!perm) return { shape: [...shape], strides };
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== shape.length || sorted.some((p, i) => p !== i)) {
    throw new NodeError(
      node,
      `perm [${perm}] does not fit an input of shape ${shapeString(shape)}`,
    );
  }
  return { shape: perm.map((p) => shape[p]), strides: perm.map((p) => strides[p]) };
}

/** The view padded to rank 4 with leading size-1 axes. */
function rank4(node: OnnxNode, v: View, what: string): View {
  if (v.shape.length < 2 || v.shape.length > 4) {
    throw new NodeError(node, `${what} has rank ${v.shape.length}; attention takes ranks 2 to 4`);
  }
  const pad = 4 - v.shape.length;
  return {
    shape: [...new Array(pad).fill(1), ...v.shape],
    strides: [...new Array(pad).fill(0), ...v.strides],
  };
}

/** Mask strides along (b, h, i, j) of scores [batch, heads, sq, sk] (0 along broadcast axes). */
function maskStrides(
  node: OnnxNode,
  mask: Shaped,
  scores: readonly number[],
): Strides4 {
  if (mask.dtype !== "bool") checkFloat(node, mask, "the mask");
  const v = rank4(node, { shape: [...mask.shape], strides: contiguous(mask.shape) }, "the mask");
  if (mask.shape.length > 4) throw new NodeError(node, `mask rank ${mask.shape.length} > 4`);
  const st = v.shape.map((d, i) => {
    if (d !== 1 && d !== scores[i]) {
      throw new NodeError(
        node,
        `mask ${shapeString(mask.shape)} does not broadcast to the scores ${shapeString(scores)}`,
      );
    }
    return d === 1 ? 0 : v.strides[i];
  });
  return st as unknown as Strides4;
}

function permAttr(node: OnnxNode, name: string): number[] | undefined {
  return node.attrs.has(name) ? attrInts(node, name) : undefined;
}

/** engine.Attention: out = Tout(softmax(scale * Tq(q) @ Tk(k) + mask) @ Tv(v)). */
function engineSpec(node: OnnxNode, inputs: readonly (Shaped | undefined)[]): AttentionSpec {
  const [q, k, v] = [0, 1, 2].map((i) => required(node, inputs, i, ["q", "k", "v"][i]));
  for (const [t, what] of [[q, "q"], [k, "k"], [v, "v"]] as const) checkFloat(node, t, what);
  if (q.dtype !== k.dtype || q.dtype !== v.dtype) {
    throw new NodeError(node, `q, k and v have different dtypes`);
  }
  const qv = permuted(node, q.shape, permAttr(node, "q_perm"));
  const kv = permuted(node, k.shape, permAttr(node, "k_perm"));
  const vv = permuted(node, v.shape, permAttr(node, "v_perm"));
  const rank = Math.max(qv.shape.length, kv.shape.length, vv.shape.length);
  const [q4, kt4, v4] = [rank4(node, qv, "q"), rank4(node, kv, "k"), rank4(node, vv, "v")];
  const [sq, dqk] = [q4.shape[2], q4.shape[3]];
  const [sk, dv] = [v4.shape[2], v4.shape[3]];
  if (kt4.shape[2] !== dqk || kt4.shape[3] !== sk) {
    throw new NodeError(
      node,
      `q [.., ${sq}, ${dqk}] @ k^T ${shapeString(kv.shape)} @ v ${shapeString(vv.shape)} ` +
        `do not chain`,
    );
  }
  // numpy matmul broadcasting over the two batch axes.
  const batchDims = [0, 1].map((a) => {
    const sizes = [q4.shape[a], kt4.shape[a], v4.shape[a]];
    const n = Math.max(...sizes);
    if (sizes.some((s) => s !== 1 && s !== n)) {
      throw new NodeError(node, `batch axes of q, k, v do not broadcast`);
    }
    return n;
  });
  const bst = (view: View, a: number) => (view.shape[a] === 1 ? 0 : view.strides[a]);
  const logical = [batchDims[0], batchDims[1], sq, dv].slice(4 - rank);
  const outPerm = permAttr(node, "out_perm") ?? logical.map((_, i) => i);
  const out = permuted(node, logical, outPerm);
  // The output tensor is `out.shape`, contiguous; logical axis outPerm[i] walks its axis i.
  const outStrides = contiguous(out.shape);
  const logicalStrides = new Array<number>(rank);
  outPerm.forEach((a, i) => logicalStrides[a] = outStrides[i]);
  const o4 = rank4(node, { shape: logical, strides: logicalStrides }, "the output");
  const scores = [batchDims[0], batchDims[1], sq, sk];
  const mask = inputs[3];
  return {
    batch: batchDims[0],
    heads: batchDims[1],
    kvHeads: batchDims[1],
    sq,
    sk,
    dqk,
    dv,
    q: [bst(q4, 0), bst(q4, 1), q4.strides[2], q4.strides[3]],
    k: [bst(kt4, 0), bst(kt4, 1), kt4.strides[3], kt4.strides[2]],
    v: [bst(v4, 0), bst(v4, 1), v4.strides[2], v4.strides[3]],
    out: [o4.strides[0], o4.strides[1], o4.strides[2], o4.strides[3]],
    outShape: out.shape,
    mask: mask ? maskStrides(node, mask, scores) : undefined,
    scale: attrFloat(node, "scale", 1),
    causal: false,
    emptyRowsZero: false,
    softcap: 0,
    dtype: q.dtype,
  };
}

/** ONNX Attention (opset 23). */
function onnxSpec(node: OnnxNode, inputs: readonly (Shaped | undefined)[]): AttentionSpec {
  const [q, k, v] = [0, 1, 2].map((i) => required(node, inputs, i, ["Q", "K", "V"][i]));
  for (const [t, what] of [[q, "Q"], [k, "K"], [v, "V"]] as const) checkFloat(node, t, what);
  if (q.dtype !== k.dtype || q.dtype !== v.dtype) {
    throw new NodeError(node, `Q, K and V have different dtypes`);
  }
  const unsupported = (what: string) => {
    throw new UnsupportedFeatureError(node, `${what} is not supported`);
  };
  if (inputs[4] || inputs[5]) unsupported("past_key / past_value");
  if (inputs[6]) unsupported("nonpad_kv_seqlen");
  if (node.outputs.slice(1).some((o) => o !== "")) {
    unsupported("outputs besides Y (present_key, present_value, qk_matmul_output)");
  }
  const rank = q.shape.length;
  if (rank !== 3 && rank !== 4) throw new NodeError(node, `Q has rank ${rank}; expected 3 or 4`);
  if (k.shape.length !== rank || v.shape.length !== rank) {
    throw new NodeError(node, `Q, K and V must have the same rank`);
  }
  const batch = q.shape[0];
  let heads: number, kvHeads: number, sq: number, sk: number, dqk: number, dv: number;
  if (rank === 4) {
    [heads, sq, dqk] = [q.shape[1], q.shape[2], q.shape[3]];
    [kvHeads, sk] = [k.shape[1], k.shape[2]];
    dv = v.shape[3];
    if (k.shape[3] !== dqk || v.shape[1] !== kvHeads || v.shape[2] !== sk) {
      throw new NodeError(node, `K ${shapeString(k.shape)} / V ${shapeString(v.shape)} mismatch`);
    }
  } else {
    heads = attrInt(node, "q_num_heads", 0);
    kvHeads = attrInt(node, "kv_num_heads", 0);
    if (heads < 1 || kvHeads < 1) {
      throw new NodeError(node, `3-D inputs need q_num_heads and kv_num_heads`);
    }
    [sq, sk] = [q.shape[1], k.shape[1]];
    dqk = q.shape[2] / heads;
    dv = v.shape[2] / kvHeads;
    if (
      !Number.isInteger(dqk) || k.shape[2] !== kvHeads * dqk || !Number.isInteger(dv) ||
      v.shape[1] !== sk
    ) {
      throw new NodeError(node, `Q/K/V hidden sizes do not split into the given heads`);
    }
  }
  if (k.shape[0] !== batch || v.shape[0] !== batch) {
    throw new NodeError(node, `Q, K and V have different batch sizes`);
  }
  if (heads % kvHeads !== 0) {
    throw new NodeError(node, `${heads} query heads do not group over ${kvHeads} K/V heads`);
  }
  // Strides of the logical [b, h, s, d] view of a 4-D [B, H, S, D] or 3-D [B, S, H * D] input.
  const st = (s: number, d: number, n = heads): Strides4 =>
    rank === 4 ? [n * s * d, s * d, d, 1] : [s * n * d, d, n * d, 1];
  const outShape = rank === 4 ? [batch, heads, sq, dv] : [batch, sq, heads * dv];
  const mask = inputs[3];
  const maskKeys = mask?.shape[mask.shape.length - 1];
  if (maskKeys !== undefined && maskKeys !== 1 && maskKeys < sk) {
    unsupported(`an attn_mask over ${maskKeys} of the ${sk} keys (padded with -inf)`);
  }
  return {
    batch,
    heads,
    kvHeads,
    sq,
    sk,
    dqk,
    dv,
    q: st(sq, dqk),
    k: st(sk, dqk, kvHeads),
    v: st(sk, dv, kvHeads),
    out: st(sq, dv),
    outShape,
    mask: mask ? maskStrides(node, mask, [batch, heads, sq, sk]) : undefined,
    scale: attrFloat(node, "scale", 1 / Math.sqrt(dqk)),
    causal: attrInt(node, "is_causal", 0) !== 0,
    emptyRowsZero: true,
    softcap: attrFloat(node, "softcap", 0),
    dtype: q.dtype,
  };
}

/** Copies the strided logical [B, H, S, D] view of `t` into a contiguous tensor. */
function gather4(t: CpuTensor, shape: readonly number[], st: Strides4): CpuTensor {
  const [b, h, s, d] = shape;
  const out = new Float64Array(b * h * s * d);
  let n = 0;
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      for (let si = 0; si < s; si++) {
        for (let di = 0; di < d; di++) {
          out[n++] = t.data[bi * st[0] + hi * st[1] + si * st[2] + di * st[3]];
        }
      }
    }
  }
  return cpuTensor(t.dtype, shape, out);
}

/** Offset of the causal diagonal of a constant mask [.., Sq, Sk] with only leading 1 axes:
 * mask(i, j) = 0 for j <= i + offset and -inf after. Undefined for any other mask. */
export function causalOffset(mask: CpuTensor, sq: number, sk: number): number | undefined {
  const r = mask.shape.length;
  if (r < 2 || mask.shape[r - 2] !== sq || mask.shape[r - 1] !== sk) return undefined;
  if (sizeOf(mask.shape) !== sq * sk) return undefined;
  let offset = 0;
  while (offset < sk && mask.data[offset] === 0) offset++;
  offset -= 1; // the last visible key of row 0
  for (let i = 0; i < sq; i++) {
    for (let j = 0; j < sk; j++) {
      const want = j <= i + offset ? 0 : -Infinity;
      if (mask.data[i * sk + j] !== want) return undefined;
    }
  }
  return offset;
}

function attentionOp(
  spec: (node: OnnxNode, inputs: readonly (Shaped | undefined)[]) => AttentionSpec,
): OpImpl {
  return {
    infer(ctx: OpContext, inputs): TensorInfo[] {
      const s = spec(ctx.node, inputs);
      return [{ dtype: s.dtype, shape: [...s.outShape] }];
    },
    cpu(ctx, inputs) {
      const s = spec(ctx.node, inputs);
      const [q, k, v] = [0, 1, 2].map((i) => required(ctx.node, inputs, i));
      const bh = [s.batch, s.heads];
      const bhk = [s.batch, s.kvHeads];
      const want = attentionRef(
        gather4(q, [...bh, s.sq, s.dqk], s.q),
        gather4(k, [...bhk, s.sk, s.dqk], s.k),
        gather4(v, [...bhk, s.sk, s.dv], s.v),
        {
          scale: s.scale,
          mask: inputs[3] && s.mask ? gather4(inputs[3], [...bh, s.sq, s.sk], s.mask) : undefined,
          causalOffset: s.causal ? 0 : undefined,
          emptyRowsZero: s.emptyRowsZero,
          softcap: s.softcap,
        },
      );
      const out = new Float64Array(sizeOf(s.outShape));
      let n = 0;
      for (let b = 0; b < s.batch; b++) {
        for (let h = 0; h < s.heads; h++) {
          for (let i = 0; i < s.sq; i++) {
            for (let d = 0; d < s.dv; d++) {
              out[b * s.out[0] + h * s.out[1] + i * s.out[2] + d * s.out[3]] = want.data[n++];
            }
          }
        }
      }
      return [cpuTensor(s.dtype, s.outShape, out)];
    },
    gpu(ctx, inputs, outputs) {
      const { node } = ctx;
      const s = spec(node, ctx.inputInfos);
      const [q, k, v] = [0, 1, 2].map((i) => required(node, inputs, i)) as GpuTensor[];
      const maskValue = ctx.inputInfos[3]?.value;
      const diagonal = maskValue && maskValue.dtype !== "bool"
        ? causalOffset(maskValue, s.sq, s.sk)
        : undefined;
      // A causal constant mask is applied by skipping keys; with is_causal too, both coincide
      // only for offset 0, so the mask is then still read.
      const skipMask = diagonal !== undefined && (!s.causal || diagonal === 0);
      const mask = inputs[3] && s.mask && !skipMask
        ? { tensor: inputs[3], strides: s.mask }
        : undefined;
      const halves = ctx.precision === "f16" || s.dtype === "float16";
      return onNode(node, () =>
        prepareAttention(
          ctx.gpu,
          ctx,
          s,
          { tensor: q, strides: s.q },
          { tensor: k, strides: s.k },
          { tensor: v, strides: s.v },
          { tensor: outputs[0], strides: s.out },
          {
            scale: s.scale,
            mask,
            causalOffset: s.causal ? 0 : skipMask ? diagonal : undefined,
            halves,
            emptyRowsZero: s.emptyRowsZero,
            softcap: s.softcap,
            label: `node '${node.name}' (${node.opType})`,
          },
        ));
    },
  };
}

/** Operators of this family, keyed by op type (engine-domain ones prefixed). */
export const attentionOps: Record<string, OpImpl> = {
  Attention: attentionOp(onnxSpec),
  [`${ENGINE_DOMAIN}.Attention`]: attentionOp(engineSpec),
};
