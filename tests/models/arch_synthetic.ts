/** Synthetic checkpoints for the architecture tests: key/shape tables of the layouts in other
 * sizes than the shared files (random weights made on demand, or shapes alone for full-size
 * models), and a float64 reference of CLIP's ViT and text towers written from `clip/model.py`,
 * so multi-head attention is checked against something other than the engine. */
import { type CpuTensor, cpuTensor } from "../../src/util/tensor.ts";
import {
  CheckpointError,
  type StateDict,
  type WeightInfo,
} from "../../src/models/checkpoint/state_dict.ts";
import { memoryStateDict } from "../../src/models/checkpoint/memory.ts";
import { randomFloats } from "../helpers.ts";

export type Shapes = Record<string, number[]>;

/** Random float32 weights of the given shapes: norm scales near 1, BatchNorm variances
 * positive, everything else small, so activations stay in range through a few layers. */
export function randomStateDict(shapes: Shapes, seed = 1): StateDict {
  const tensors = new Map<string, { info: WeightInfo; read: () => CpuTensor }>();
  let s = seed;
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const [lo, hi] = name.endsWith("running_var")
      ? [0.5, 1.5]
      : /(ln_\w+|bn\d|downsample\.1)\.weight$/.test(name)
      ? [0.8, 1.2]
      : [-0.2, 0.2];
    const values = randomFloats(n, s++, lo, hi);
    tensors.set(name, {
      info: { name, dtype: "float32", shape },
      read: () => cpuTensor("float32", shape, values),
    });
  }
  return memoryStateDict("synthetic.pt", "torch-zip", tensors);
}

/** Shapes alone: describing a full-size model must not read a weight, and here cannot. */
export function shapesOnlyStateDict(shapes: Shapes, dtype: WeightInfo["dtype"] = "float16") {
  const tensors = new Map<string, { info: WeightInfo; read: () => CpuTensor }>();
  for (const [name, shape] of Object.entries(shapes)) {
    tensors.set(name, {
      info: { name, dtype, shape },
      read: () => {
        throw new CheckpointError(`shapes.pt: '${name}' read while describing`);
      },
    });
  }
  return memoryStateDict("shapes.pt", "torchscript", tensors);
}

/** One pre-LN residual attention block per index, as OpenAI names them. */
function blockShapes(shapes: Shapes, prefix: string, width: number, layers: number): void {
  const w = width;
  for (let i = 0; i < layers; i++) {
    const b = `${prefix}.resblocks.${i}`;
    Object.assign(shapes, {
      [`${b}.attn.in_proj_weight`]: [3 * w, w],
      [`${b}.attn.in_proj_bias`]: [3 * w],
      [`${b}.attn.out_proj.weight`]: [w, w],
      [`${b}.attn.out_proj.bias`]: [w],
      [`${b}.ln_1.weight`]: [w],
      [`${b}.ln_1.bias`]: [w],
      [`${b}.ln_2.weight`]: [w],
      [`${b}.ln_2.bias`]: [w],
      [`${b}.mlp.c_fc.weight`]: [4 * w, w],
      [`${b}.mlp.c_fc.bias`]: [4 * w],
      [`${b}.mlp.c_proj.weight`]: [w, 4 * w],
      [`${b}.mlp.c_proj.bias`]: [w],
    });
  }
}

export function vitShapes(
  opts: { width: number; patch: number; grid: number; layers: number; embed: number },
): Shapes {
  const { width: w, patch: p, grid: g, layers, embed } = opts;
  const shapes: Shapes = {
    "visual.conv1.weight": [w, 3, p, p],
    "visual.class_embedding": [w],
    "visual.positional_embedding": [g * g + 1, w],
    "visual.ln_pre.weight": [w],
    "visual.ln_pre.bias": [w],
    "visual.ln_post.weight": [w],
    "visual.ln_post.bias": [w],
    "visual.proj": [w, embed],
  };
  blockShapes(shapes, "visual.transformer", w, layers);
  return shapes;
}

export function textShapes(
  opts: { width: number; vocab: number; context: number; layers: number; embed: number },
): Shapes {
  const { width: w, vocab, context, layers, embed } = opts;
  const shapes: Shapes = {
    "token_embedding.weight": [vocab, w],
    "positional_embedding": [context, w],
    "ln_final.weight": [w],
    "ln_final.bias": [w],
    "text_projection": [w, embed],
    "logit_scale": [],
  };
  blockShapes(shapes, "transformer", w, layers);
  return shapes;
}

function bnShapes(shapes: Shapes, prefix: string, channels: number): void {
  for (const k of ["weight", "bias", "running_mean", "running_var"]) {
    shapes[`${prefix}.${k}`] = [channels];
  }
}

/** CLIP's ModifiedResNet (`visual.*`): 3-conv stem, bottlenecks of expansion 4, attention
 * pool over a (resolution / 32)^2 grid. */
export function modifiedResNetShapes(
  opts: { width: number; stages: number[]; resolution: number; embed: number },
): Shapes {
  const { width, stages, resolution, embed } = opts;
  const v = "visual";
  const shapes: Shapes = {
    [`${v}.conv1.weight`]: [width / 2, 3, 3, 3],
    [`${v}.conv2.weight`]: [width / 2, width / 2, 3, 3],
    [`${v}.conv3.weight`]: [width, width / 2, 3, 3],
  };
  bnShapes(shapes, `${v}.bn1`, width / 2);
  bnShapes(shapes, `${v}.bn2`, width / 2);
  bnShapes(shapes, `${v}.bn3`, width);
  let inC = width;
  stages.forEach((blocks, s) => {
    const planes = width * 2 ** s;
    for (let b = 0; b < blocks; b++) {
      const p = `${v}.layer${s + 1}.${b}`;
      shapes[`${p}.conv1.weight`] = [planes, inC, 1, 1];
      shapes[`${p}.conv2.weight`] = [planes, planes, 3, 3];
      shapes[`${p}.conv3.weight`] = [planes * 4, planes, 1, 1];
      bnShapes(shapes, `${p}.bn1`, planes);
      bnShapes(shapes, `${p}.bn2`, planes);
      bnShapes(shapes, `${p}.bn3`, planes * 4);
      if (b === 0 && (s > 0 || inC !== planes * 4)) {
        shapes[`${p}.downsample.0.weight`] = [planes * 4, inC, 1, 1];
        bnShapes(shapes, `${p}.downsample.1`, planes * 4);
      }
      inC = planes * 4;
    }
  });
  const side = resolution / 32;
  const a = `${v}.attnpool`;
  shapes[`${a}.positional_embedding`] = [side * side + 1, inC];
  for (const k of ["q_proj", "k_proj", "v_proj"]) {
    shapes[`${a}.${k}.weight`] = [inC, inC];
    shapes[`${a}.${k}.bias`] = [inC];
  }
  shapes[`${a}.c_proj.weight`] = [embed, inC];
  shapes[`${a}.c_proj.bias`] = [embed];
  return shapes;
}

/** torchvision's ResNet (7x7 stem, BasicBlock or Bottleneck) with a classifier `fc`, under
 * `prefix` (MoCo's `module.base_encoder.`, say). */
export function tvResNetShapes(
  opts: { block: "basic" | "bottleneck"; stem: number; stages: number[]; prefix?: string },
): Shapes {
  const { block, stem, stages, prefix = "" } = opts;
  const expansion = block === "bottleneck" ? 4 : 1;
  const shapes: Shapes = { [`${prefix}conv1.weight`]: [stem, 3, 7, 7] };
  bnShapes(shapes, `${prefix}bn1`, stem);
  let inC = stem;
  stages.forEach((blocks, s) => {
    const planes = stem * 2 ** s;
    for (let b = 0; b < blocks; b++) {
      const p = `${prefix}layer${s + 1}.${b}`;
      if (block === "bottleneck") {
        shapes[`${p}.conv1.weight`] = [planes, inC, 1, 1];
        shapes[`${p}.conv2.weight`] = [planes, planes, 3, 3];
        shapes[`${p}.conv3.weight`] = [planes * 4, planes, 1, 1];
        bnShapes(shapes, `${p}.bn3`, planes * 4);
      } else {
        shapes[`${p}.conv1.weight`] = [planes, inC, 3, 3];
        shapes[`${p}.conv2.weight`] = [planes, planes, 3, 3];
      }
      bnShapes(shapes, `${p}.bn1`, planes);
      bnShapes(shapes, `${p}.bn2`, planes);
      if (b === 0 && (s > 0 || inC !== planes * expansion)) {
        shapes[`${p}.downsample.0.weight`] = [planes * expansion, inC, 1, 1];
        bnShapes(shapes, `${p}.downsample.1`, planes * expansion);
      }
      inC = planes * expansion;
    }
  });
  shapes[`${prefix}fc.weight`] = [1000, inC];
  shapes[`${prefix}fc.bias`] = [1000];
  return shapes;
}

// ---- float64 reference (clip/model.py, eval mode) ----

type Vec = Float64Array<ArrayBuffer>;

function f64(sd: StateDict, name: string): Vec {
  return Float64Array.from(sd.read(name).data);
}

function layerNorm(x: Float64Array, rows: number, w: Vec, b: Vec): Vec {
  const n = w.length, y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0, v = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i] / n;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - mean) ** 2 / n;
    const s = 1 / Math.sqrt(v + 1e-5);
    for (let i = 0; i < n; i++) y[r * n + i] = (x[r * n + i] - mean) * s * w[i] + b[i];
  }
  return y;
}

/** torch's Linear: x [rows, in] @ W^T ([out, in]) + b. */
function linear(x: Vec, rows: number, w: Vec, b: Vec | undefined, out: number): Vec {
  const inD = w.length / out, y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inD; i++) s += x[r * inD + i] * w[o * inD + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

/** x [L, W] through CLIP's residual attention blocks (heads = W / 64). */
function transformer(sd: StateDict, prefix: string, x: Vec, L: number, causal: boolean): Vec {
  const W = x.length / L, heads = W / 64, hd = W / heads;
  for (let i = 0; sd.entries.has(`${prefix}.resblocks.${i}.ln_1.weight`); i++) {
    const p = `${prefix}.resblocks.${i}`;
    const h = layerNorm(x, L, f64(sd, `${p}.ln_1.weight`), f64(sd, `${p}.ln_1.bias`));
    const qkv = linear(
      h,
      L,
      f64(sd, `${p}.attn.in_proj_weight`),
      f64(sd, `${p}.attn.in_proj_bias`),
      3 * W,
    );
    const o = new Float64Array(L * W);
    for (let head = 0; head < heads; head++) {
      for (let q = 0; q < L; q++) {
        const last = causal ? q : L - 1;
        const scores = new Float64Array(last + 1);
        let max = -Infinity;
        for (let k = 0; k <= last; k++) {
          let s = 0;
          for (let d = 0; d < hd; d++) {
            s += qkv[q * 3 * W + head * hd + d] * qkv[k * 3 * W + W + head * hd + d];
          }
          scores[k] = s / Math.sqrt(hd);
          max = Math.max(max, scores[k]);
        }
        let sum = 0;
        for (let k = 0; k <= last; k++) sum += scores[k] = Math.exp(scores[k] - max);
        for (let k = 0; k <= last; k++) {
          for (let d = 0; d < hd; d++) {
            o[q * W + head * hd + d] += (scores[k] / sum) * qkv[k * 3 * W + 2 * W + head * hd + d];
          }
        }
      }
    }
    const a = linear(
      o,
      L,
      f64(sd, `${p}.attn.out_proj.weight`),
      f64(sd, `${p}.attn.out_proj.bias`),
      W,
    );
    x = x.map((v, j) => v + a[j]);
    const h2 = layerNorm(x, L, f64(sd, `${p}.ln_2.weight`), f64(sd, `${p}.ln_2.bias`));
    const m = linear(h2, L, f64(sd, `${p}.mlp.c_fc.weight`), f64(sd, `${p}.mlp.c_fc.bias`), 4 * W)
      .map((v) => v / (1 + Math.exp(-1.702 * v)));
    const y = linear(m, L, f64(sd, `${p}.mlp.c_proj.weight`), f64(sd, `${p}.mlp.c_proj.bias`), W);
    x = x.map((v, j) => v + y[j]);
  }
  return x;
}

/** `row` [W] @ proj [W, E]. */
function project(row: Vec, proj: Vec): Vec {
  const W = row.length, E = proj.length / W, y = new Float64Array(E);
  for (let e = 0; e < E; e++) {
    for (let i = 0; i < W; i++) y[e] += row[i] * proj[i * E + e];
  }
  return y;
}

/** CLIP's VisionTransformer.forward on images [B, 3, R, R]: [B, E] flattened. */
export function vitReference(sd: StateDict, image: CpuTensor): Vec {
  const [B, , R] = image.shape;
  const [W, , P] = sd.entries.get("visual.conv1.weight")!.shape;
  const g = R / P, L = g * g + 1;
  const conv = f64(sd, "visual.conv1.weight"), cls = f64(sd, "visual.class_embedding");
  const pos = f64(sd, "visual.positional_embedding"), proj = f64(sd, "visual.proj");
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    let x: Vec = new Float64Array(L * W);
    for (let t = 0; t < L; t++) {
      for (let o = 0; o < W; o++) {
        let s = cls[o];
        if (t > 0) {
          const gy = Math.floor((t - 1) / g), gx = (t - 1) % g;
          s = 0;
          for (let c = 0; c < 3; c++) {
            for (let ky = 0; ky < P; ky++) {
              for (let kx = 0; kx < P; kx++) {
                s += conv[((o * 3 + c) * P + ky) * P + kx] *
                  image.data[((b * 3 + c) * R + gy * P + ky) * R + gx * P + kx];
              }
            }
          }
        }
        x[t * W + o] = s + pos[t * W + o];
      }
    }
    x = layerNorm(x, L, f64(sd, "visual.ln_pre.weight"), f64(sd, "visual.ln_pre.bias"));
    x = transformer(sd, "visual.transformer", x, L, false);
    const first = layerNorm(
      x.subarray(0, W),
      1,
      f64(sd, "visual.ln_post.weight"),
      f64(sd, "visual.ln_post.bias"),
    );
    out.push(...project(first, proj));
  }
  return Float64Array.from(out);
}

/** CLIP's encode_text on token ids [B, context]: [B, E] flattened. */
export function textReference(sd: StateDict, tokens: CpuTensor): Vec {
  const [B, L] = tokens.shape;
  const tok = f64(sd, "token_embedding.weight"), pos = f64(sd, "positional_embedding");
  const W = pos.length / L;
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    const ids = Array.from(tokens.data.subarray(b * L, (b + 1) * L));
    let x: Vec = new Float64Array(L * W);
    ids.forEach((id, t) => {
      for (let i = 0; i < W; i++) x[t * W + i] = tok[id * W + i] + pos[t * W + i];
    });
    x = transformer(sd, "transformer", x, L, true);
    x = layerNorm(x, L, f64(sd, "ln_final.weight"), f64(sd, "ln_final.bias"));
    const eot = ids.indexOf(Math.max(...ids));
    out.push(...project(x.subarray(eot * W, (eot + 1) * W), f64(sd, "text_projection")));
  }
  return Float64Array.from(out);
}
