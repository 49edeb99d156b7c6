import { deepStrictEqual } from "node:assert/strict";
import {
  classPrompts,
  classWeightsFromEmbeddings,
  IMAGENET_TEMPLATES,
  templatesFor,
} from "../../src/data/prompts.ts";
import { assertClose, randomFloats, sharedPath } from "../helpers.ts";

Deno.test("prompts: ImageNet templates are CLIP's seven", () => {
  const p = sharedPath("clip", "imagenet-classnames-templates.json");
  if (!p) return;
  const { templates } = JSON.parse(Deno.readTextFileSync(p)) as { templates: string[] };
  deepStrictEqual([...IMAGENET_TEMPLATES], templates);
  deepStrictEqual(classPrompts("great_white shark", ["a {}."]), ["a great white shark."]);
  deepStrictEqual(templatesFor("dtd"), ["{} texture."]);
});

Deno.test("prompts: class weights are unit columns of the mean normalised embedding", () => {
  const classes = 3, templates = 2, dim = 5;
  const emb = randomFloats(classes * templates * dim, 11);
  const w = classWeightsFromEmbeddings(emb, classes, templates, dim);
  for (let c = 0; c < classes; c++) {
    const expected: number[] = [];
    for (let d = 0; d < dim; d++) {
      let s = 0;
      for (let t = 0; t < templates; t++) {
        const row = (c * templates + t) * dim;
        const n = Math.hypot(...emb.slice(row, row + dim));
        s += emb[row + d] / n;
      }
      expected.push(s);
    }
    const n = Math.hypot(...expected);
    const col = Array.from({ length: dim }, (_, d) => w[d * classes + c]);
    assertClose(col, expected.map((v) => v / n), { rtol: 1e-6, atol: 1e-7 });
  }
});
