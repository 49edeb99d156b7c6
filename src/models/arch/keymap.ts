/** Key-name layouts of the checkpoints researchers hold, each mapped onto the names the builders
 * read: OpenAI CLIP's own (`visual.*`, `transformer.resblocks.N.*`...), reached from Hugging Face
 * `CLIPModel` names by splitting nothing and joining q/k/v, and torchvision ResNet names (MoCo's
 * wrappers stripped, its `fc` head dropped as MoCo v3's `main_lincls.py` does). */
import { type CpuTensor, cpuTensor } from "../../util/tensor.ts";
import type { StateDict } from "../checkpoint/state_dict.ts";
import { transposeMatrix } from "../checkpoint/dtypes.ts";
import { Weights, type WeightSource } from "./weights.ts";

/** Prefixes a whole model may sit under (DataParallel's `module.`, Lightning's `model.`...). */
const CLIP_PREFIXES = ["", "module.", "model.", "clip.", "state_dict."];

/** Prefixes of a torchvision ResNet inside self-supervised checkpoints: MoCo v3's
 * `module.base_encoder.`, MoCo v1/v2's `module.encoder_q.`, plain DataParallel... */
const RESNET_PREFIXES = [
  "module.base_encoder.",
  "base_encoder.",
  "module.encoder_q.",
  "encoder_q.",
  "module.encoder.",
  "module.backbone.",
  "backbone.",
  "encoder.",
  "module.",
  "model.",
  "",
];

/** OpenAI CLIP names, from an OpenAI-named or a Hugging Face CLIPModel checkpoint. */
export function clipWeights(sd: StateDict): Weights | undefined {
  for (const p of CLIP_PREFIXES) {
    if (sd.entries.has(`${p}token_embedding.weight`) || sd.entries.has(`${p}visual.conv1.weight`)) {
      return Weights.fromStateDict(
        sd,
        p ? `OpenAI CLIP under '${p}'` : "OpenAI CLIP",
        (k) => k.startsWith(p) ? k.slice(p.length) : undefined,
        (name) => p + name,
      );
    }
  }
  for (const p of CLIP_PREFIXES) {
    if (
      sd.entries.has(`${p}vision_model.embeddings.patch_embedding.weight`) ||
      sd.entries.has(`${p}text_model.embeddings.token_embedding.weight`)
    ) {
      return huggingFaceClip(sd, p);
    }
  }
  return undefined;
}

/** torchvision ResNet names (without `fc`), from a plain or a MoCo-style checkpoint. */
export function resnetWeights(sd: StateDict): Weights | undefined {
  for (const p of RESNET_PREFIXES) {
    if (sd.entries.has(`${p}conv1.weight`) && sd.entries.has(`${p}layer1.0.conv1.weight`)) {
      const layout = p ? `torchvision ResNet under '${p}'` : "torchvision ResNet";
      return Weights.fromStateDict(sd, layout, (k) => {
        // Everything outside the prefix (MoCo's momentum encoder and predictor, MoCo v1/v2's
        // key encoder) is another network; the classifier or projection head (`fc`) is dropped
        // because feature extractors stop at the pooled features.
        if (!k.startsWith(p)) return undefined;
        const name = k.slice(p.length);
        return name.startsWith("fc.") || name.startsWith("head.") ? undefined : name;
      }, (name) => p + name);
    }
  }
  return undefined;
}

/** Hugging Face CLIPModel -> OpenAI names. */
function huggingFaceClip(sd: StateDict, p: string): Weights {
  const map = new Map<string, WeightSource>();
  // Every OpenAI name this layout reads from, present or not, so a missing key is named as the
  // file would hold it.
  const fileKeys = new Map<string, string>();
  const plain = (hf: string, openai: string) => {
    fileKeys.set(openai, p + hf);
    const info = sd.entries.get(p + hf);
    if (info) {
      map.set(openai, {
        fileKey: p + hf,
        dtype: info.dtype,
        shape: info.shape,
        read: (view) => sd.read(p + hf, view),
      });
    }
  };
  const transposed = (hf: string, openai: string) => {
    fileKeys.set(openai, p + hf);
    const info = sd.entries.get(p + hf);
    if (!info) return;
    const [rows, cols] = info.shape;
    map.set(openai, {
      fileKey: p + hf,
      dtype: info.dtype,
      shape: info.shape.length === 2 ? [cols, rows] : info.shape,
      // A transposed read of the transposed key is the stored layout, and vice versa.
      read: (view) => sd.read(p + hf, view === "transposed" ? "stored" : "transposed"),
    });
  };
  const joined = (parts: string[], openai: string) => {
    const infos = parts.map((k) => sd.entries.get(p + k));
    const absent = infos.findIndex((i) => !i);
    if (absent >= 0) {
      // Partly present: leave it out, so the builder names the missing key.
      fileKeys.set(openai, p + parts[absent]);
      return;
    }
    fileKeys.set(openai, `${p}${parts[0]} (+ k, v)`);
    const shapes = infos.map((i) => i!.shape);
    map.set(openai, {
      fileKey: `${p}${parts[0]} (+ k, v)`,
      dtype: infos[0]!.dtype,
      shape: [shapes.reduce((a, s) => a + s[0], 0), ...shapes[0].slice(1)],
      read: (view) => {
        const joined = concatRows(parts.map((k) => sd.read(p + k)));
        return view === "transposed" ? transposeMatrix(joined) : joined;
      },
    });
  };
  const blocks = (hf: string, openai: string) => {
    const layers = new Set<number>();
    for (const k of sd.entries.keys()) {
      const m = new RegExp(`^${escape(p + hf)}\\.encoder\\.layers\\.(\\d+)\\.`).exec(k);
      if (m) layers.add(Number(m[1]));
    }
    for (const n of layers) {
      const s = `${hf}.encoder.layers.${n}`, d = `${openai}.resblocks.${n}`;
      for (const w of ["weight", "bias"]) {
        joined(
          ["q_proj", "k_proj", "v_proj"].map((q) => `${s}.self_attn.${q}.${w}`),
          `${d}.attn.in_proj_${w}`,
        );
        plain(`${s}.self_attn.out_proj.${w}`, `${d}.attn.out_proj.${w}`);
        plain(`${s}.layer_norm1.${w}`, `${d}.ln_1.${w}`);
        plain(`${s}.layer_norm2.${w}`, `${d}.ln_2.${w}`);
        plain(`${s}.mlp.fc1.${w}`, `${d}.mlp.c_fc.${w}`);
        plain(`${s}.mlp.fc2.${w}`, `${d}.mlp.c_proj.${w}`);
      }
    }
  };
  const v = "vision_model";
  plain(`${v}.embeddings.patch_embedding.weight`, "visual.conv1.weight");
  plain(`${v}.embeddings.class_embedding`, "visual.class_embedding");
  plain(`${v}.embeddings.position_embedding.weight`, "visual.positional_embedding");
  for (const w of ["weight", "bias"]) {
    plain(`${v}.pre_layrnorm.${w}`, `visual.ln_pre.${w}`);
    plain(`${v}.post_layernorm.${w}`, `visual.ln_post.${w}`);
    plain(`text_model.final_layer_norm.${w}`, `ln_final.${w}`);
  }
  blocks(v, "visual.transformer");
  transposed("visual_projection.weight", "visual.proj");
  plain("text_model.embeddings.token_embedding.weight", "token_embedding.weight");
  plain("text_model.embeddings.position_embedding.weight", "positional_embedding");
  blocks("text_model", "transformer");
  transposed("text_projection.weight", "text_projection");
  plain("logit_scale", "logit_scale");
  const layout = p ? `Hugging Face CLIPModel under '${p}'` : "Hugging Face CLIPModel";
  return new Weights(sd.source, layout, map, (name) => fileKeys.get(name) ?? name);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Tensors of equal trailing shape, stacked along axis 0. */
function concatRows(parts: CpuTensor[]): CpuTensor {
  const rows = parts.reduce((a, t) => a + t.shape[0], 0);
  const out = cpuTensor("float32", [rows, ...parts[0].shape.slice(1)]);
  let at = 0;
  for (const t of parts) {
    out.data.set(t.data, at);
    at += t.data.length;
  }
  return out;
}
