/**
 * Byte-level BPE (the GPT-2 scheme) trained from text, written as a Hugging Face tokenizer.json.
 *
 * Text is cut into words by GPT-2's regex (a word keeps its leading space), each word is UTF-8
 * bytes shown as GPT-2's printable characters (`Ġ` for a space), and merges are learned greedily:
 * the most frequent adjacent pair of symbols, counted over all words, becomes a new symbol. Since
 * all 256 bytes are in the vocabulary, every text encodes and decodes back exactly.
 *
 * Ids: the special tokens first (by default `<s>` = 0, the BOS that encoding prepends, and
 * `</s>` = 1, the EOS a model emits at the end of a document), then the 256 bytes in byte order
 * (id = 2 + byte), then the merged tokens in the order they were learned. No merge may spell a
 * special token; text that contains a special token's spelling (`<s>`) is encoded by the library
 * as that special token, as in any Hugging Face tokenizer (the corpus has none).
 *
 * Ties between equally frequent pairs go to the pair with the smaller left id, then the smaller
 * right id (bytes by value, then older merges first), so training is deterministic and does not
 * depend on the order of the texts.
 */
import { BOS_TOKEN, byteToSymbol, EOS_TOKEN, type BpeModel } from '../model/bytelevel.js';

export { BOS_TOKEN, bpeTokenizerConfig, bpeTokenizerJson, EOS_TOKEN, writeBpeTokenizer, type BpeModel, type BpeTokenizerOptions } from '../model/bytelevel.js';
export const DEFAULT_SPECIAL_TOKENS: readonly string[] = [BOS_TOKEN, EOS_TOKEN];

/**
 * GPT-2's pre-tokenizer: English contractions, letter runs, digit runs and other-symbol runs (each
 * with an optional leading space), and whitespace runs, of which the last space is left to the
 * next word. The same pattern as the ByteLevel pre-tokenizer of @huggingface/tokenizers, so words
 * are cut identically in training and at inference.
 */
const GPT2_WORDS = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** The words of `text` as GPT-2 cuts them; they concatenate back to `text`. */
export function preTokenize(text: string): string[] {
  return text.match(GPT2_WORDS) ?? [];
}

const BYTE_SYMBOLS = byteToSymbol();
const ENCODER = new TextEncoder();

export interface BpeProgress {
  merges: number;
  /** Merges needed to reach the requested vocabulary (fewer are made if pairs run out). */
  targetMerges: number;
  /** Distinct words counted in the texts. */
  words: number;
}

export interface BpeTrainOptions {
  /** Total vocabulary size, specials and the 256 bytes included. */
  vocabSize: number;
  /** Tokens that never come from text (ids 0 .. n-1): by default `<s>` (BOS) and `</s>` (EOS). */
  specialTokens?: readonly string[];
  /**
   * Stop when the most frequent pair occurs fewer times than this (default 2): a pair seen once
   * would spend a vocabulary slot memorising one word.
   */
  minFrequency?: number;
  /** Called after counting and every 100 merges. */
  onProgress?: (progress: BpeProgress) => void;
}

/** Pair keys pack (left, right) ids into one number; ids stay below 2^21 (checked). */
const PAIR_BASE = 2 ** 21;
const pairKey = (left: number, right: number): number => left * PAIR_BASE + right;

export function trainBpe(texts: Iterable<string>, options: BpeTrainOptions): BpeModel {
  const specialTokens = [...(options.specialTokens ?? DEFAULT_SPECIAL_TOKENS)];
  const minFrequency = options.minFrequency ?? 2;
  checkTrainOptions(options.vocabSize, specialTokens, minFrequency);

  const tokens = [...specialTokens, ...BYTE_SYMBOLS];
  const idOf = new Map(tokens.map((t, id) => [t, id]));
  const byteBase = specialTokens.length;

  // Distinct words and their counts: merges only ever look inside a word.
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const word of preTokenize(text)) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
  }
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [word, count] of wordCounts) {
    words.push(Array.from(ENCODER.encode(word), (b) => byteBase + b));
    freq.push(count);
  }
  wordCounts.clear();

  // Pair counts over all words, and for each pair the words that (may) contain it.
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  for (let w = 0; w < words.length; w++) {
    const sym = words[w];
    for (let i = 0; i + 1 < sym.length; i++) {
      const key = pairKey(sym[i], sym[i + 1]);
      pairCount.set(key, (pairCount.get(key) ?? 0) + freq[w]);
      listFor(pairWords, key).push(w);
    }
  }
  const heap = new PairHeap();
  for (const [key, count] of pairCount) heap.push(count, key);

  const targetMerges = options.vocabSize - tokens.length;
  const merges: [string, string][] = [];
  const report = (): void => options.onProgress?.({ merges: merges.length, targetMerges, words: words.length });
  report();
  // Marks a word as handled for the current merge, since a word is listed once per occurrence.
  const seenAt = new Int32Array(words.length).fill(-1);
  const specials = new Set(specialTokens);
  const banned = new Set<number>();

  while (tokens.length < options.vocabSize) {
    const top = heap.pop();
    if (top === undefined) break;
    // Counts change after an entry is pushed; only an entry with the current count is live.
    if (pairCount.get(top.key) !== top.count) continue;
    if (top.count < minFrequency) break;
    if (banned.has(top.key)) continue;
    const left = Math.floor(top.key / PAIR_BASE);
    const right = top.key % PAIR_BASE;
    const text = tokens[left] + tokens[right];
    // A merge spelling a special token (say a special `##`) would give one text two ids.
    if (specials.has(text)) {
      banned.add(top.key);
      continue;
    }
    // Two different merges can spell the same token (a+bc, ab+c); it keeps its first id.
    let merged = idOf.get(text);
    if (merged === undefined) {
      merged = tokens.length;
      tokens.push(text);
      idOf.set(text, merged);
    }
    merges.push([tokens[left], tokens[right]]);

    // Rewrite the words holding the pair; count changes are collected, then applied once.
    const delta = new Map<number, number>();
    const add = (key: number, d: number): void => {
      delta.set(key, (delta.get(key) ?? 0) + d);
    };
    const step = merges.length;
    for (const w of pairWords.get(top.key) ?? []) {
      if (seenAt[w] === step) continue;
      seenAt[w] = step;
      const before = words[w];
      const after = mergePair(before, left, right, merged);
      if (after === null) continue;
      const f = freq[w];
      for (let i = 0; i + 1 < before.length; i++) add(pairKey(before[i], before[i + 1]), -f);
      for (let i = 0; i + 1 < after.length; i++) {
        const key = pairKey(after[i], after[i + 1]);
        add(key, f);
        // Pairs without the new token were listed for this word already.
        if (after[i] === merged || after[i + 1] === merged) listFor(pairWords, key).push(w);
      }
      words[w] = after;
    }
    pairWords.delete(top.key);
    for (const [key, d] of delta) {
      if (d === 0) continue;
      const count = (pairCount.get(key) ?? 0) + d;
      if (count > 0) {
        pairCount.set(key, count);
        heap.push(count, key);
      } else {
        pairCount.delete(key);
        pairWords.delete(key);
      }
    }
    if (merges.length % 100 === 0) report();
  }
  if (merges.length % 100 !== 0) report();
  return { tokens, merges, specialTokens };
}

function checkTrainOptions(vocabSize: number, specialTokens: string[], minFrequency: number): void {
  const min = specialTokens.length + 256;
  if (!Number.isInteger(vocabSize) || vocabSize < min || vocabSize >= PAIR_BASE) {
    throw new Error(`BPE: vocabSize must be an integer from ${min} (${specialTokens.length} special tokens + 256 bytes) to ${PAIR_BASE - 1}, got ${vocabSize}`);
  }
  const bytes = new Set(BYTE_SYMBOLS);
  for (const [i, s] of specialTokens.entries()) {
    // A special token spelled like a byte symbol would make two ids decode the same.
    if (s === '' || bytes.has(s) || specialTokens.indexOf(s) !== i) {
      throw new Error(`BPE: special tokens must be distinct, non-empty and not a single byte symbol, got ${JSON.stringify(specialTokens)}`);
    }
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new Error(`BPE: minFrequency must be an integer >= 1, got ${minFrequency}`);
  }
}

function listFor(map: Map<number, number[]>, key: number): number[] {
  let list = map.get(key);
  if (list === undefined) {
    list = [];
    map.set(key, list);
  }
  return list;
}

/** `sym` with every (left, right), scanned left to right, replaced by `merged`; null if none. */
function mergePair(sym: number[], left: number, right: number, merged: number): number[] | null {
  let out: number[] | null = null;
  for (let i = 0; i < sym.length; i++) {
    if (i + 1 < sym.length && sym[i] === left && sym[i + 1] === right) {
      out ??= sym.slice(0, i);
      out.push(merged);
      i++;
    } else if (out !== null) {
      out.push(sym[i]);
    }
  }
  return out;
}

/** A binary max-heap of (count, pair key); equal counts pop the smaller key (the tie-break). */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { count: number; key: number } | undefined {
    const n = this.counts.length;
    if (n === 0) return undefined;
    const top = { count: this.counts[0], key: this.keys[0] };
    this.swap(0, n - 1);
    this.counts.pop();
    this.keys.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < n - 1 && this.before(l, best)) best = l;
      if (r < n - 1 && this.before(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
    return top;
  }

  private before(i: number, j: number): boolean {
    return this.counts[i] > this.counts[j] || (this.counts[i] === this.counts[j] && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }
}

/**
 * Encodes text with a trained model the way a BPE tokenizer.json does (no special tokens): in
 * each word, the adjacent pair with the earliest merge is merged, leftmost first, until none is
 * left. For checking the written file against the library, and for encoding a corpus quickly.
 */
export class BpeEncoder {
  private readonly rank = new Map<number, number>();
  private readonly mergedId: number[] = [];
  private readonly byteBase: number;
  private readonly cache = new Map<string, number[]>();

  constructor(model: BpeModel) {
    const idOf = new Map(model.tokens.map((t, id) => [t, id]));
    const id = (t: string): number => {
      const found = idOf.get(t);
      if (found === undefined) throw new Error(`BPE encoder: merge uses "${t}", which is not in the vocabulary`);
      return found;
    };
    for (const [r, [left, right]] of model.merges.entries()) {
      const key = pairKey(id(left), id(right));
      if (!this.rank.has(key)) this.rank.set(key, r);
      this.mergedId[r] = id(left + right);
    }
    this.byteBase = model.specialTokens.length;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const word of preTokenize(text)) {
      let pieces = this.cache.get(word);
      if (pieces === undefined) {
        pieces = this.encodeWord(word);
        // Bounded, since a long stream of text has an unbounded number of distinct words.
        if (this.cache.size >= 100_000) this.cache.clear();
        this.cache.set(word, pieces);
      }
      for (const p of pieces) ids.push(p);
    }
    return ids;
  }

  private encodeWord(word: string): number[] {
    const sym = Array.from(ENCODER.encode(word), (b) => this.byteBase + b);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = this.rank.get(pairKey(sym[i], sym[i + 1]));
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) return sym;
      sym.splice(best, 2, this.mergedId[bestRank]);
    }
  }
}
