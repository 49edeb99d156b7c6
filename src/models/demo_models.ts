/** The bundled demo's encoders, generated (seeded random weights, no downloads): a CLIP-shaped
 * ViT image tower, a CLIP-shaped text tower over CLIP's real 49,408-id vocabulary, and a
 * ResNet-shaped auxiliary encoder. They are untrained: they only show the pipeline working. The
 * graphs use the operators PyTorch's exporter emits for the real models (patch Conv, class-token
 * Concat with a Shape/Expand sub-graph, LayerNormalization, attention as MatMul/Softmax,
 * QuickGELU, end-of-text pooling from ArgMax; Conv/MaxPool/GlobalAveragePool bottlenecks). */
import { type CpuTensor, cpuTensor } from "../util/tensor.ts";
import { GraphBuilder } from "../onnx/builder.ts";
import { normalSampler, seededRandom } from "../util/random.ts";

/** Output dimension shared by the demo image and text towers. */
export const DEMO_EMBED_DIM = 32;
export const DEMO_IMAGE_SIZE = 32;
export const DEMO_AUX_DIM = 64;

class Init {
  readonly normal: () => number;
  constructor(seed: number) {
    this.normal = normalSampler(seededRandom(seed));
  }
  tensor(shape: number[], std: number, mean = 0): CpuTensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return cpuTensor("float32", shape, Array.from({ length: n }, () => mean + std * this.normal()));
  }
}

function int64(values: number[]): CpuTensor {
  return cpuTensor("int64", [values.length], values);
}

function scalar(v: number): CpuTensor {
  return cpuTensor("float32", [], [v]);
}

/** Pre-LN residual attention block as CLIP's `ResidualAttentionBlock`. */
function residualBlock(
  g: GraphBuilder,
  init: Init,
  x: string,
  width: number,
  heads: number,
  mask?: string,
): string {
  const headDim = width / heads;
  const ln = (input: string) =>
    g.op("LayerNormalization", [
      input,
      g.constant("ln_w", init.tensor([width], 0.1, 1)),
      g.constant("ln_b", init.tensor([width], 0.1)),
    ], { axis: -1, epsilon: { float: 1e-5 } });
  const linear = (input: string, inDim: number, outDim: number) =>
    g.op("Add", [
      g.op("MatMul", [input, g.constant("w", init.tensor([inDim, outDim], inDim ** -0.5))]),
      g.constant("b", init.tensor([outDim], 0.02)),
    ]);
  const h = ln(x);
  const qkv = linear(h, width, 3 * width);
  const [q, k, v] = g.opMulti(
    "Split",
    [qkv, g.constant("split", int64([width, width, width]))],
    [g.fresh("q"), g.fresh("k"), g.fresh("v")],
    { axis: 2 },
  );
  const heads4 = g.constant("heads_shape", int64([0, 0, heads, headDim]));
  const toHeads = (t: string, perm: number[]) =>
    g.op("Transpose", [g.op("Reshape", [t, heads4])], { perm });
  let scores = g.op("MatMul", [toHeads(q, [0, 2, 1, 3]), toHeads(k, [0, 2, 3, 1])]);
  scores = g.op("Mul", [scores, g.constant("scale", scalar(headDim ** -0.5))]);
  if (mask) scores = g.op("Add", [scores, mask]);
  const probs = g.op("Softmax", [scores], { axis: -1 });
  const attn = g.op("Transpose", [g.op("MatMul", [probs, toHeads(v, [0, 2, 1, 3])])], {
    perm: [0, 2, 1, 3],
  });
  const merged = g.op("Reshape", [attn, g.constant("merge_shape", int64([0, 0, width]))]);
  const x1 = g.op("Add", [x, linear(merged, width, width)]);
  const m = linear(ln(x1), width, 4 * width);
  // QuickGELU: x * sigmoid(1.702 x)
  const gelu = g.op("Mul", [
    m,
    g.op("Sigmoid", [g.op("Mul", [m, g.constant("gelu_k", scalar(1.702))])]),
  ]);
  return g.op("Add", [x1, linear(gelu, 4 * width, width)]);
}

/** CLIP-shaped ViT image tower: `image` [batch,3,32,32] -> `embedding` [batch,32]. */
export function demoVisionModel(seed = 1): Uint8Array {
  const init = new Init(seed);
  const width = 32, patch = 8, grid = DEMO_IMAGE_SIZE / patch, tokens = grid * grid + 1;
  const g = new GraphBuilder("demo_clip_visual", 17);
  const image = g.input("image", "float32", ["batch", 3, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE]);
  const patches = g.op("Conv", [
    image,
    g.constant("conv1", init.tensor([width, 3, patch, patch], 0.05)),
  ], {
    kernel_shape: [patch, patch],
    strides: [patch, patch],
  });
  const seq = g.op("Transpose", [
    g.op("Reshape", [patches, g.constant("flat", int64([0, width, -1]))]),
  ], { perm: [0, 2, 1] });
  // Class token broadcast over the batch, as exporters write it (Shape -> Gather -> Concat).
  const batch = g.op("Gather", [
    g.op("Shape", [image]),
    g.constant("zero", cpuTensor("int64", [], [0])),
  ]);
  const clsShape = g.op("Concat", [
    g.op("Unsqueeze", [batch, g.constant("axes0", int64([0]))]),
    g.constant("cls_rest", int64([1, width])),
  ], { axis: 0 });
  const cls = g.op("Expand", [
    g.constant("class_embedding", init.tensor([1, 1, width], 0.5)),
    clsShape,
  ]);
  let x = g.op("Concat", [cls, seq], { axis: 1 });
  x = g.op("Add", [x, g.constant("positional", init.tensor([tokens, width], 0.1))]);
  const ln = (input: string) =>
    g.op("LayerNormalization", [
      input,
      g.constant("ln_w", init.tensor([width], 0.1, 1)),
      g.constant("ln_b", init.tensor([width], 0.1)),
    ], { axis: -1, epsilon: { float: 1e-5 } });
  x = ln(x);
  x = residualBlock(g, init, x, width, 2);
  const clsOut = ln(
    g.op("Gather", [x, g.constant("cls_index", cpuTensor("int64", [], [0]))], { axis: 1 }),
  );
  g.op(
    "MatMul",
    [clsOut, g.constant("proj", init.tensor([width, DEMO_EMBED_DIM], width ** -0.5))],
    {},
    "embedding",
  );
  g.output("embedding", "float32", ["batch", DEMO_EMBED_DIM]);
  return g.encode();
}

/** CLIP-shaped text tower: `text` int64 [batch,77] -> `embedding` [batch,32], pooled at the
 * end-of-text token (the largest id), over CLIP's vocabulary so the real tokenizer drives it. */
export function demoTextModel(seed = 2, vocab = 49408, context = 77): Uint8Array {
  const init = new Init(seed);
  const width = 32;
  const g = new GraphBuilder("demo_clip_text", 17);
  const text = g.input("text", "int64", ["batch", context]);
  let x = g.op("Gather", [g.constant("token_embedding", init.tensor([vocab, width], 0.5)), text]);
  x = g.op("Add", [x, g.constant("positional", init.tensor([context, width], 0.1))]);
  const maskValues: number[] = [];
  for (let i = 0; i < context; i++) {
    for (let j = 0; j < context; j++) maskValues.push(j > i ? -1e9 : 0);
  }
  const mask = g.constant("causal_mask", cpuTensor("float32", [context, context], maskValues));
  x = residualBlock(g, init, x, width, 2, mask);
  x = g.op("LayerNormalization", [
    x,
    g.constant("ln_final_w", init.tensor([width], 0.1, 1)),
    g.constant("ln_final_b", init.tensor([width], 0.1)),
  ], { axis: -1, epsilon: { float: 1e-5 } });
  // x[arange(batch), text.argmax(-1)] as a one-hot row selection.
  const eot = g.op("ArgMax", [text], { axis: -1, keepdims: 1 });
  const positions = g.constant("positions", int64(Array.from({ length: context }, (_, i) => i)));
  const onehot = g.op("Cast", [g.op("Equal", [eot, positions])], { to: 1 });
  const pooled = g.op("MatMul", [g.op("Unsqueeze", [onehot, g.constant("axes1", int64([1]))]), x]);
  const flat = g.op("Reshape", [pooled, g.constant("pool_shape", int64([0, width]))]);
  g.op(
    "MatMul",
    [flat, g.constant("text_projection", init.tensor([width, DEMO_EMBED_DIM], width ** -0.5))],
    {},
    "embedding",
  );
  g.output("embedding", "float32", ["batch", DEMO_EMBED_DIM]);
  return g.encode();
}

/** ResNet-shaped auxiliary encoder: `image` [batch,3,32,32] -> `features` [batch,64]. */
export function demoAuxModel(seed = 3): Uint8Array {
  const init = new Init(seed);
  const g = new GraphBuilder("demo_aux_resnet", 17);
  const conv = (x: string, cin: number, cout: number, k: number, stride = 1, relu = true) => {
    const y = g.op("Conv", [
      x,
      g.constant("conv_w", init.tensor([cout, cin, k, k], Math.sqrt(2 / (cin * k * k)))),
      g.constant("conv_b", init.tensor([cout], 0.01)),
    ], { kernel_shape: [k, k], strides: [stride, stride], pads: Array(4).fill((k - 1) >> 1) });
    return relu ? g.op("Relu", [y]) : y;
  };
  const image = g.input("image", "float32", ["batch", 3, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE]);
  let x = conv(image, 3, 16, 3);
  x = g.op("MaxPool", [x], { kernel_shape: [2, 2], strides: [2, 2] });
  const branch = conv(conv(conv(x, 16, 8, 1), 8, 8, 3), 8, 32, 1, 1, false);
  x = g.op("Relu", [g.op("Add", [branch, conv(x, 16, 32, 1, 1, false)])]);
  x = conv(x, 32, DEMO_AUX_DIM, 3, 2);
  x = g.op("GlobalAveragePool", [x]);
  g.op("Flatten", [x], { axis: 1 }, "features");
  g.output("features", "float32", ["batch", DEMO_AUX_DIM]);
  return g.encode();
}
