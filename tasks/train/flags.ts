/** The flags of `deno task train`: the AMU trainer's hyper-parameters (src/amu/config.ts) with
 * the experiment's own groups (config file, dataset, models, feature extraction, method, run
 * output). Names follow the reference's `parse_args.py` / `run.sh`; defaults its
 * `default.yaml` (RN50, 16 shots, lr 1e-3, batch 8, 50 epochs, alpha 0.5, augment_epoch 1,
 * val_batch_size 256) and run script (lambda_merge 0.35). */
import { TRAINING_FLAGS } from "../../src/amu/config.ts";
import { type FlagGroup, type FlagSpec, formatHelp } from "../../src/util/flags.ts";
import { DATASET_NAMES } from "../../src/data/datasets.ts";
import { METHOD_NAMES } from "../../src/amu/method.ts";

export const DEFAULT_BACKBONE = "RN50";
export const DEFAULT_SHOTS = 16;
export const DEFAULT_AUGMENT_EPOCH = 1;
export const DEFAULT_VAL_BATCH = 256;
export const DEFAULT_AUX_FILE = "mocov3_rn50.onnx";

export const CONFIG_FLAGS: FlagGroup = {
  title: "Config",
  flags: [
    {
      name: "config",
      type: "string",
      metavar: "FILE",
      help: "JSON or YAML file setting any of these flags by name (e.g. the reference's " +
        "default.yaml); flags given on the command line win",
    },
    {
      name: "demo",
      type: "boolean",
      help: "run the bundled demo (generated images and untrained generated models); also " +
        "what runs when no dataset and no model is given",
    },
  ],
};

export const DATA_FLAGS: FlagGroup = {
  title: "Dataset",
  flags: [
    {
      name: "dataset",
      type: "string",
      metavar: "NAME",
      help: `dataset layout under --root_path: ${DATASET_NAMES.join(", ")} (case and ` +
        `underscores ignored: ImageNet, OxfordPets, FGVCAircraft... also work)`,
      default: "imagenet when --root_path is given",
    },
    {
      name: "root_path",
      type: "string",
      metavar: "DIR",
      help: "root of the datasets (imagefolder: the folder holding train/ and test/)",
    },
    {
      name: "shots",
      type: "int",
      min: 1,
      metavar: "K",
      help: "training images per class, sampled with --rand_seed",
      default: DEFAULT_SHOTS,
    },
    {
      name: "num_classes",
      type: "int",
      min: 2,
      metavar: "C",
      help: "expected number of classes (checked against the dataset; optional)",
    },
    {
      name: "fewshot_file",
      type: "string",
      metavar: "FILE",
      help: "use the few-shot list of an earlier run (its few_shot.json) instead of sampling",
    },
  ],
};

export const MODEL_FLAGS: FlagGroup = {
  title: "Models (checkpoints or ONNX; see weights/README.md)",
  flags: [
    {
      name: "clip_backbone",
      type: "string",
      metavar: "NAME",
      help:
        "OpenAI CLIP model (RN50, RN101, ViT-B/16 = ViT-B-16, ViT-B/32...): weights/<NAME>.pt, " +
        "then ~/.cache/clip/<NAME>.pt (where clip.load keeps it), then " +
        "weights/<NAME>.visual.onnx + .text.onnx; downloaded to ~/.cache/clip/ when none is found",
      default: DEFAULT_BACKBONE,
    },
    {
      name: "clip_weights",
      type: "string",
      metavar: "FILE",
      help:
        "CLIP checkpoint holding both towers: OpenAI .pt (TorchScript), torch.save state_dict, " +
        "Hugging Face CLIPModel .safetensors",
    },
    {
      name: "aux_weights",
      type: "string",
      metavar: "FILE|mocov3",
      help: "auxiliary image encoder: a MoCo v3 .pth.tar, a torchvision ResNet state_dict or " +
        "safetensors, an ONNX file; 'mocov3': MoCo v3's released ResNet-50 (downloaded once)",
    },
    {
      name: "no-download",
      type: "boolean",
      help: "never download released weights; fail naming where they were looked for",
    },
    {
      name: "clip_model",
      type: "string",
      metavar: "PATH",
      help: "CLIP model by path prefix: PATH.visual.onnx and PATH.text.onnx",
    },
    {
      name: "clip_visual",
      type: "string",
      metavar: "PATH",
      help: "CLIP image tower (overrides --clip_backbone / --clip_model)",
    },
    {
      name: "clip_text",
      type: "string",
      metavar: "PATH",
      help: "CLIP text tower (overrides --clip_backbone / --clip_model)",
    },
    {
      name: "aux_model",
      type: "string",
      metavar: "PATH",
      help: "auxiliary image encoder as ONNX (MoCo v3 ResNet-50, fc removed); same as " +
        "--aux_weights",
      default: `weights/${DEFAULT_AUX_FILE}, then MoCo v3's released checkpoint`,
    },
    {
      name: "bpe",
      type: "string",
      metavar: "PATH",
      help: "CLIP's bpe_simple_vocab_16e6.txt.gz (default: weights/, then ../shared/clip/)",
    },
    {
      name: "clip_size",
      type: "int",
      min: 1,
      metavar: "PX",
      help: "CLIP image input size (default: the model's declared input, else 224)",
    },
    {
      name: "aux_size",
      type: "int",
      min: 1,
      metavar: "PX",
      help: "auxiliary encoder input size (default: the model's declared input, else 224)",
    },
  ],
};

export const EXTRACTION_FLAGS: FlagGroup = {
  title: "Features (extraction and cache)",
  flags: [
    {
      name: "augment_epoch",
      type: "int",
      min: 1,
      metavar: "N",
      help: "augmented training views per image (RandomResizedCrop + flip)",
      default: DEFAULT_AUGMENT_EPOCH,
    },
    {
      name: "val_batch_size",
      type: "int",
      min: 1,
      metavar: "N",
      help: "images per encoder batch during feature extraction",
      default: DEFAULT_VAL_BATCH,
    },
    {
      name: "tune",
      type: "string",
      choices: ["budget", "full", "off"],
      metavar: "MODE",
      help: "measure the encoders' kernel variants before extracting: budget (at most about " +
        "10 s per batch shape plus half the kernel time the extraction will spend), full (every " +
        "problem, as `deno task tune`), off (saved or default choices only)",
      default: "budget",
    },
    {
      name: "torch_rand_seed",
      type: "int",
      metavar: "SEED",
      help: "seed of the training views' augmentation",
      default: 1,
    },
    {
      name: "load_pre_feat",
      type: "boolean",
      help: "require the cached test features and text weights (refuse a missing or stale " +
        "cache instead of extracting)",
    },
    {
      name: "load_aux_weight",
      type: "boolean",
      help: "require the cached training features (refuse a missing or stale cache)",
    },
    {
      name: "fresh_features",
      type: "boolean",
      help: "extract every feature again even when the cache matches",
    },
    {
      name: "cache_dir",
      type: "string",
      metavar: "DIR",
      help: "feature cache directory (default: results/cache/<dataset>-<model>-<shots>shot-" +
        "seed<rand_seed>-aug<augment_epoch>/); a matching cache is reused automatically",
    },
    {
      name: "features",
      type: "string",
      metavar: "DIR",
      help: "train from this feature cache (features.npz + manifest.json) without images or " +
        "models",
    },
  ],
};

/** The trainer's hyper-parameter flags, with help that says what they mean in an experiment. */
export const EXPERIMENT_TRAINING_FLAGS: FlagGroup = {
  ...TRAINING_FLAGS,
  flags: TRAINING_FLAGS.flags.map((f): FlagSpec => {
    if (f.name === "rand_seed") {
      return {
        ...f,
        help: "seed of the few-shot sampling and of the batch order (--order replaces the " +
          "latter)",
      };
    }
    if (f.name === "exp_name") {
      return {
        ...f,
        help: "run name; output goes to results/<exp_name>/ (the demo's default: demo)",
      };
    }
    return f;
  }),
};

export const RUN_FLAGS: FlagGroup = {
  title: "Run",
  flags: [
    {
      name: "out",
      type: "string",
      metavar: "DIR",
      help: "output directory (default: results/<exp_name>/)",
    },
    {
      name: "order",
      type: "string",
      metavar: "FILE.npy",
      help: "replay this batch order (int64 [epochs, N]; every run saves its own as order.npy)",
    },
    {
      name: "resume",
      type: "boolean",
      help: "continue the interrupted run in the output directory (also done automatically " +
        "when the same command is run again)",
    },
    {
      name: "progress_every",
      type: "int",
      min: 0,
      metavar: "STEPS",
      help: "print the running loss every STEPS iterations within an epoch (0: per epoch only)",
      default: 0,
    },
    {
      name: "overwrite",
      type: "boolean",
      help: "start over, deleting an earlier run's files in the output directory",
    },
  ],
};

/** The method and the baselines' own hyper-parameters (Tip-Adapter's config keys). */
export const METHOD_FLAGS: FlagGroup = {
  title: "Method",
  flags: [
    {
      name: "method",
      type: "string",
      choices: METHOD_NAMES,
      metavar: "NAME",
      help: `what to run on the features: ${METHOD_NAMES.join(", ")} (--lr, --train_epoch, ` +
        "--batch_size and --order apply to the trained ones)",
      default: "amu",
    },
    {
      name: "init_beta",
      type: "number",
      exclusiveMin: true,
      min: 0,
      help: "Tip-Adapter(-F): sharpness of the cache affinities used in training",
      default: 1,
    },
    {
      name: "init_alpha",
      type: "number",
      help: "Tip-Adapter(-F): weight of the cache logits used in training",
      default: 1.17,
    },
    {
      name: "search_scale",
      type: "string",
      metavar: "B,A",
      help: "Tip-Adapter(-F): largest beta and alpha of the search grid",
      default: "7,3",
    },
    {
      name: "search_step",
      type: "string",
      metavar: "B,A",
      help: "Tip-Adapter(-F): grid points for beta and alpha",
      default: "200,20",
    },
  ],
};

/** Every group of `deno task train`, in help order. */
export function experimentFlagGroups(): FlagGroup[] {
  return [
    CONFIG_FLAGS,
    DATA_FLAGS,
    MODEL_FLAGS,
    EXTRACTION_FLAGS,
    METHOD_FLAGS,
    EXPERIMENT_TRAINING_FLAGS,
    RUN_FLAGS,
  ];
}

export const EXPERIMENT_USAGE = `usage: deno task train [flags]
       deno task train                     # the bundled demo (no data, no weights needed)
       deno task train --dataset NAME --root_path DIR [--clip_backbone RN50] [flags]
       deno task train --features CACHE_DIR [flags]`;

const FOOTER = `AMU-Tuning end to end: few-shot sampling, feature extraction on the GPU (cached
under results/cache/), CLIP zero-shot weights from prompts, training of the auxiliary head, and
results in results/<exp_name>/: experiment.json (resolved settings), few_shot.json, train.log,
metrics.json, metrics.csv, accuracy.svg, checkpoint_best.npz, checkpoint_last.npz, order.npy,
config.json. Running the same command again resumes an interrupted run.`;

export function experimentHelp(): string {
  return formatHelp(EXPERIMENT_USAGE, experimentFlagGroups(), FOOTER);
}
