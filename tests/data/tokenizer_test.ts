import { deepStrictEqual, throws } from "node:assert/strict";
import { cleanText, ClipTokenizer } from "../../src/data/tokenizer.ts";
import { sharedPath } from "../helpers.ts";

interface GoldenCase {
  text: string;
  ids: number[];
}

function loadTokenizer(): ClipTokenizer | undefined {
  const bpe = sharedPath("clip", "bpe_simple_vocab_16e6.txt.gz");
  return bpe ? ClipTokenizer.fromFile(bpe) : undefined;
}

Deno.test("tokenizer: reproduces all 7,000 reference prompts exactly", () => {
  const tok = loadTokenizer();
  const golden = sharedPath("clip", "tokenizer-golden-imagenet-prompts.json");
  if (!tok || !golden) return;
  const { meta, cases } = JSON.parse(Deno.readTextFileSync(golden)) as {
    meta: { sot: number; eot: number; vocab_size: number };
    cases: GoldenCase[];
  };
  deepStrictEqual([tok.sot, tok.eot, tok.vocabSize], [meta.sot, meta.eot, meta.vocab_size]);
  const wrong = cases.filter((c) => JSON.stringify(tok.tokenize(c.text)) !== JSON.stringify(c.ids));
  deepStrictEqual(wrong.map((c) => c.text).slice(0, 5), []);
  deepStrictEqual(cases.length, 7000);
});

Deno.test("tokenizer: cleaning, truncation and padding", () => {
  const tok = loadTokenizer();
  if (!tok) return;
  deepStrictEqual(cleanText("  A &amp;amp;  Photo\n of &#x41; "), "a & photo of a");
  const long = "photo ".repeat(100);
  throws(() => tok.tokenize(long), /over the context length 77/);
  const cut = tok.tokenize(long, { truncate: true });
  deepStrictEqual([cut.length, cut[0], cut[76]], [77, tok.sot, tok.eot]);
  const batch = tok.tokenizeBatch(["a", "a photo"], { contextLength: 8 });
  deepStrictEqual(batch.length, 16);
  deepStrictEqual(Array.from(batch.slice(0, 8)), [...tok.tokenize("a"), 0, 0, 0, 0, 0]);
  // Accents survive NFC and byte-level BPE round trips into known ids.
  const ids = tok.encode("café crème");
  deepStrictEqual(ids.every((i) => i >= 0 && i < tok.vocabSize), true);
});
