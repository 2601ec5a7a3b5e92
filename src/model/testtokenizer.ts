/**
 * A byte-level BPE tokenizer.json (the GPT-2 / SmolLM scheme) for generated test models:
 * ids 0..2 are `<unk>`, `<s>`, `</s>`; ids 3..258 are the 256 bytes (id = 3 + byte); the rest
 * are merges. Since every byte has a token, any text round-trips. Merges fill the vocabulary
 * to exactly the requested size, so every id a model can emit has text.
 */

import { bpeTokenizerConfig, bpeTokenizerJson, byteToSymbol } from './bytelevel.js';

export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const BYTE_BASE = 3;
/** Specials plus one token per byte: the smallest vocabulary this scheme can have. */
export const MIN_VOCAB = BYTE_BASE + 256;

const SPECIALS = ['<unk>', '<s>', '</s>'];

/** Words merged first, in this order, so English text tokenizes into a few plausible pieces. */
const COMMON_WORDS = [
  ' the',
  ' a',
  ' and',
  ' to',
  ' was',
  ' he',
  ' she',
  ' it',
  ' in',
  ' of',
  ' on',
  ' with',
  ' her',
  ' his',
  ' they',
  ' said',
  ' day',
  ' time',
  ' upon',
  'Once',
  ' One',
  ' little',
  ' big',
  ' saw',
  ' play',
  ' happy',
  'The',
  ' dog',
  ' cat',
  ' ball',
  ' park',
  ' Lily',
  ' Tom',
  'ing',
  'ed',
  'er',
  ' is',
  ' you',
  ' I',
];

export interface ByteLevelTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

export function buildByteLevelTokenizer(vocabSize: number, maxLength: number): ByteLevelTokenizerFiles {
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_VOCAB) {
    throw new Error(`byte-level test tokenizer: vocab size must be an integer >= ${MIN_VOCAB} (3 specials + 256 bytes), got ${vocabSize}`);
  }
  const symbols = byteToSymbol();
  const vocab = new Map<string, number>();
  for (const [i, s] of SPECIALS.entries()) vocab.set(s, i);
  for (const [b, s] of symbols.entries()) vocab.set(s, BYTE_BASE + b);
  const merges: [string, string][] = [];

  const addMerge = (left: string, right: string): void => {
    const merged = left + right;
    if (vocab.size >= vocabSize || vocab.has(merged) || !vocab.has(left) || !vocab.has(right)) return;
    vocab.set(merged, vocab.size);
    merges.push([left, right]);
  };
  const toSymbols = (text: string): string => [...Buffer.from(text, 'utf8')].map((b) => symbols[b]).join('');

  // Common words grow one character at a time: " t", " th", " the".
  for (const word of COMMON_WORDS) {
    const chars = [...toSymbols(word)];
    let prefix = chars[0];
    for (const c of chars.slice(1)) {
      addMerge(prefix, c);
      prefix += c;
    }
  }
  // Then filler: every pair of printable ASCII symbols, then those pairs extended by one more.
  const ascii = symbols.slice(0x20, 0x7f);
  for (const a of ascii) for (const b of ascii) addMerge(a, b);
  fill: for (const a of ascii) {
    for (const b of ascii) {
      for (const c of ascii) {
        if (vocab.size >= vocabSize) break fill;
        addMerge(a + b, c);
      }
    }
  }
  if (vocab.size < vocabSize) throw new Error(`byte-level test tokenizer: cannot fill a vocabulary of ${vocabSize} (reached ${vocab.size})`);

  // Map insertion order is id order: specials, bytes, merges.
  const model = { tokens: [...vocab.keys()], merges, specialTokens: SPECIALS };
  const options = { modelMaxLength: maxLength };
  return { tokenizerJson: bpeTokenizerJson(model, options), tokenizerConfig: bpeTokenizerConfig(model, options) };
}
