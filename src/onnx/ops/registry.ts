import type { OpImpl } from "../types.ts";
import { elementwiseOps } from "./elementwise.ts";
import { matmulOps } from "./matmul.ts";
import { convOps } from "./conv.ts";
import { reduceOps } from "./reduce.ts";
import { movementOps } from "./movement.ts";
import { shapeOps } from "./shape.ts";
import { resizeOps } from "./resize.ts";
import { convTransposeOps } from "./conv_transpose.ts";
import { normalizationOps } from "./normalization.ts";
import { indexingOps } from "./indexing.ts";
import { quantizeOps } from "./quantize.ts";
import { attentionOps } from "./attention.ts";
import { visionOps } from "./vision.ts";

/** Every supported operator of the default ONNX domain, by op type. */
export const OPS: ReadonlyMap<string, OpImpl> = new Map(
  Object.entries({
    ...elementwiseOps,
    ...matmulOps,
    ...convOps,
    ...reduceOps,
    ...movementOps,
    ...shapeOps,
    ...resizeOps,
    ...convTransposeOps,
    ...normalizationOps,
    ...indexingOps,
    ...quantizeOps,
    ...attentionOps,
    ...visionOps,
  }),
);
