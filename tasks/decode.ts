/** `deno task decode IMAGE --out x.npy [--preprocess clip|imagenet] [--size N]`: writes what the
 * model sees of one image, to compare with PIL / torchvision in numpy. Without --preprocess: the
 * decoded RGB pixels (uint8 HWC), or with --size the evaluation view (Resize + CenterCrop) of
 * that size. With --preprocess: that view normalised as the feature pipeline does it (float32
 * CHW), through the pipeline's own functions (src/data/extract.ts's evaluation views). */
import { readImage } from "../src/data/decode.ts";
import { type RgbImage } from "../src/data/image_format.ts";
import { writeNpy } from "../src/util/npy.ts";
import { makeViews } from "../src/data/extract.ts";
import { toNormalizedChw } from "../src/data/preprocess.ts";
import { clipImage, imagenetImage } from "../src/models/preprocessing.ts";
import { EngineError } from "../src/util/errors.ts";
import { parseTaskArgs, runCli } from "./_cli.ts";

const HELP = `usage: deno task decode IMAGE --out FILE.npy [--preprocess clip|imagenet] [--size N]

  IMAGE                 a JPEG or PNG file
  --out FILE.npy        where to write the array
  --preprocess NAME     clip or imagenet: Resize + CenterCrop to --size, normalised with that
                        model's mean/std, written as float32 [3, N, N]
  --size N              side of the view in pixels (default 224 with --preprocess; without it,
                        the uint8 [N, N, 3] view before normalisation instead of the full image)`;

const PREPROCESSING = { clip: clipImage, imagenet: imagenetImage } as const;

/** The feature pipeline's evaluation view (Resize + CenterCrop) of `size` pixels. */
function evalViewOf(image: RgbImage, size: number): RgbImage {
  return makeViews(image, [size], { kind: "eval" }, 0)[0][0];
}

function parseSize(raw: string | undefined, fallback: number | undefined): number | undefined {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 8192) {
    throw new EngineError(`--size: expected an integer from 1 to 8192, got '${raw}'`);
  }
  return n;
}

await runCli(async () => {
  const args = parseTaskArgs(HELP, {
    out: { type: "string" },
    preprocess: { type: "string" },
    size: { type: "string" },
  }, 1);
  if (!args) return 0;
  const { out, preprocess } = args.values;
  if (!out) throw new EngineError(`--out is required\n${HELP}`);
  if (preprocess !== undefined && !Object.hasOwn(PREPROCESSING, preprocess)) {
    throw new EngineError(`--preprocess: expected clip or imagenet, got '${preprocess}'`);
  }
  const size = parseSize(args.values.size, preprocess === undefined ? undefined : 224);
  const image = await readImage(args.positionals[0]);
  if (preprocess === undefined) {
    const view = size === undefined ? image : evalViewOf(image, size);
    writeNpy(out, { dtype: "uint8", shape: [view.height, view.width, 3], data: view.data });
    console.log(`wrote ${out}: uint8 [${view.height}, ${view.width}, 3]`);
    return 0;
  }
  const spec = PREPROCESSING[preprocess as keyof typeof PREPROCESSING](size);
  const tensor = new Float32Array(3 * spec.size * spec.size);
  toNormalizedChw(evalViewOf(image, spec.size), spec.normalization, tensor);
  writeNpy(out, { dtype: "float32", shape: [3, spec.size, spec.size], data: tensor });
  console.log(`wrote ${out}: float32 [3, ${spec.size}, ${spec.size}] (${preprocess})`);
  return 0;
});
