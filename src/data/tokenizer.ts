/** CLIP's byte-level BPE tokenizer (OpenAI `simple_tokenizer.py`), reading the merges file
 * `bpe_simple_vocab_16e6.txt.gz`. Same cleaning, regex split, merges, SOT/EOT and context
 * length as `clip.tokenize`, so ids match the reference exactly. */
import * as fflate from "fflate";
import { EngineError } from "../util/errors.ts";
import { htmlUnescape } from "./html_entities.ts";

export const SOT_TOKEN = "<|startoftext|>";
export const EOT_TOKEN = "<|endoftext|>";
/** Merges used by CLIP: the file has more lines; the reference keeps 49152 - 256 - 2. */
const MERGE_COUNT = 49152 - 256 - 2;

/** Printable stand-ins for the 256 byte values, as GPT-2/CLIP's `bytes_to_unicode`: `byByte`
 * is indexed by byte value; `inOrder` lists them in the reference dict's insertion order, which
 * is the order of the first 256 vocabulary ids. */
function bytesToUnicode(): { byByte: string[]; inOrder: string[] } {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const byByte = new Array<string>(256);
  bs.forEach((b, i) => byByte[b] = String.fromCodePoint(cs[i]));
  return { byByte, inOrder: cs.map((c) => String.fromCodePoint(c)) };
}

const SPLIT_PATTERN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

export interface TokenizeOptions {
  /** Context length of the text model (CLIP: 77). */
  contextLength?: number;
  /** Cut over-long prompts to the context (last id becomes EOT) instead of failing. */
  truncate?: boolean;
}

export class ClipTokenizer {
  readonly encoder = new Map<string, number>();
  readonly sot: number;
  readonly eot: number;
  readonly vocabSize: number;
  readonly #byteEncoder: string[];
  readonly #ranks = new Map<string, number>();
  readonly #cache = new Map<string, number[]>();
  readonly #utf8 = new TextEncoder();

  constructor(mergesText: string, source = "BPE merges") {
    const lines = mergesText.split("\n").slice(1, MERGE_COUNT + 1);
    if (lines.length < MERGE_COUNT) {
      throw new EngineError(
        `${source}: ${lines.length} merges, expected ${MERGE_COUNT} (is this CLIP's bpe file?)`,
      );
    }
    const { byByte, inOrder } = bytesToUnicode();
    this.#byteEncoder = byByte;
    const vocab: string[] = [...inOrder];
    for (const ch of inOrder) vocab.push(ch + "</w>");
    lines.forEach((line, i) => {
      const parts = line.split(" ");
      if (parts.length !== 2) throw new EngineError(`${source}: bad merge on line ${i + 2}`);
      this.#ranks.set(line, i);
      vocab.push(parts[0] + parts[1]);
    });
    vocab.push(SOT_TOKEN, EOT_TOKEN);
    vocab.forEach((tok, i) => this.encoder.set(tok, i));
    this.sot = this.encoder.get(SOT_TOKEN)!;
    this.eot = this.encoder.get(EOT_TOKEN)!;
    this.vocabSize = vocab.length;
    this.#cache.set(SOT_TOKEN, [this.sot]);
    this.#cache.set(EOT_TOKEN, [this.eot]);
  }

  /** Loads the gzipped merges file (`bpe_simple_vocab_16e6.txt.gz`) or a plain-text one. */
  static fromFile(path: string): ClipTokenizer {
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(path);
    } catch (e) {
      throw new EngineError(`cannot read BPE file ${path}: ${(e as Error).message}`);
    }
    let text: string;
    try {
      const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? fflate.gunzipSync(bytes) : bytes;
      text = new TextDecoder().decode(raw);
    } catch (e) {
      throw new EngineError(`BPE file ${path} is not valid gzip: ${(e as Error).message}`);
    }
    return new ClipTokenizer(text, path);
  }

  /** Byte-pair merges of one pre-token (already mapped to byte stand-ins). */
  #bpe(token: string): number[] {
    const cached = this.#cache.get(token);
    if (cached) return cached;
    const chars = [...token];
    let word = chars.slice(0, -1);
    word.push(chars[chars.length - 1] + "</w>");
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.#ranks.get(word[i] + " " + word[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best], second = word[best + 1];
      // Merge every occurrence of the pair, left to right, as the reference does.
      const merged: string[] = [];
      for (let i = 0; i < word.length;) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]);
          i++;
        }
      }
      word = merged;
    }
    const ids = word.map((w) => this.encoder.get(w)!);
    this.#cache.set(token, ids);
    return ids;
  }

  /** Token ids of a text without SOT/EOT. */
  encode(text: string): number[] {
    const cleaned = cleanText(text);
    const ids: number[] = [];
    for (const m of cleaned.matchAll(SPLIT_PATTERN)) {
      let mapped = "";
      for (const b of this.#utf8.encode(m[0])) mapped += this.#byteEncoder[b];
      ids.push(...this.#bpe(mapped));
    }
    return ids;
  }

  /** SOT + ids + EOT, checked against the context length (not padded). */
  tokenize(text: string, options: TokenizeOptions = {}): number[] {
    const context = options.contextLength ?? 77;
    let ids = [this.sot, ...this.encode(text), this.eot];
    if (ids.length > context) {
      if (!options.truncate) {
        throw new EngineError(
          `prompt "${text}" is ${ids.length} tokens, over the context length ${context} ` +
            `(use truncation to cut it)`,
        );
      }
      ids = ids.slice(0, context);
      ids[context - 1] = this.eot;
    }
    return ids;
  }

  /** Row-major [texts.length, contextLength] ids padded with 0, as the text model's input. */
  tokenizeBatch(texts: readonly string[], options: TokenizeOptions = {}): Float64Array {
    const context = options.contextLength ?? 77;
    const out = new Float64Array(texts.length * context);
    texts.forEach((t, row) => out.set(this.tokenize(t, options), row * context));
    return out;
  }
}

/** The reference's cleaning: ftfy-style fixes are limited to HTML unescaping (twice) and NFC,
 * then whitespace collapsed and lower case. */
export function cleanText(text: string): string {
  const unescaped = htmlUnescape(htmlUnescape(text)).normalize("NFC").trim();
  return unescaped.replace(/\s+/g, " ").trim().toLowerCase();
}
