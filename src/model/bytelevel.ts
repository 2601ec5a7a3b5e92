/**
 * Byte-level BPE tokenizers in Hugging Face's file format (the GPT-2 / SmolLM scheme): the byte
 * alphabet, and `tokenizer.json` / `tokenizer_config.json` for a vocabulary of specials, the 256
 * bytes and merges. Used by the tokenizer trainer (src/train/bpe.ts) and by generated test models.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const BOS_TOKEN = '<s>';
export const EOS_TOKEN = '</s>';

/**
 * GPT-2's reversible byte -> printable character map: bytes that are printable (and not space)
 * map to themselves; the others, in byte order, to U+0100 onwards. BPE then never sees
 * whitespace or control characters, and the decoder can map characters back to bytes.
 */
export function byteToSymbol(): string[] {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const symbols: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) symbols.push(String.fromCharCode(printable(b) ? b : next++));
  return symbols;
}

/** A byte-level BPE vocabulary: what the file format needs. */
export interface BpeModel {
  /** Token text by id, in GPT-2's byte alphabet: specials, the 256 bytes, then merged tokens. */
  tokens: string[];
  /** Learned merges, highest priority first, as [left, right] token texts. */
  merges: [string, string][];
  /** The special tokens, which hold ids 0 .. n-1. */
  specialTokens: string[];
}

export interface BpeTokenizerOptions {
  /** Prepended by encoding (the TemplateProcessing post-processor); default `<s>`. */
  bosToken?: string;
  /** What the model emits at a document's end; default `</s>`. */
  eosToken?: string;
  /** The context length of the model that uses the tokenizer (tokenizer_config.json). */
  modelMaxLength: number;
}

/** The model as a Hugging Face `tokenizer.json` object: BPE model, ByteLevel pre-tokenizer and decoder, BOS template. */
export function bpeTokenizerJson(model: BpeModel, options: BpeTokenizerOptions): Record<string, unknown> {
  const { bos } = specialIds(model, options);
  const added = model.specialTokens.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const bosPiece = { SpecialToken: { id: model.tokens[bos], type_id: 0 } };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    // Like LLaMA's: BOS before the text whenever special tokens are added; no EOS.
    post_processor: {
      type: 'TemplateProcessing',
      single: [bosPiece, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bosPiece, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [model.tokens[bos]]: { id: model.tokens[bos], ids: [bos], tokens: [model.tokens[bos]] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(model.tokens.map((t, id) => [t, id])),
      merges: model.merges,
    },
  };
}

/** The matching `tokenizer_config.json` object (what transformers reads besides tokenizer.json). */
export function bpeTokenizerConfig(model: BpeModel, options: BpeTokenizerOptions): Record<string, unknown> {
  const { bos, eos } = specialIds(model, options);
  if (!Number.isInteger(options.modelMaxLength) || options.modelMaxLength < 1) {
    throw new Error(`BPE tokenizer: modelMaxLength must be a positive integer, got ${options.modelMaxLength}`);
  }
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: model.tokens[bos],
    eos_token: model.tokens[eos],
    add_bos_token: true,
    add_eos_token: false,
    // Decoding must give back the text exactly, not "tidy" spaces before punctuation.
    clean_up_tokenization_spaces: false,
    model_max_length: options.modelMaxLength,
  };
}

/** Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (created if missing). */
export function writeBpeTokenizer(dir: string, model: BpeModel, options: BpeTokenizerOptions): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), `${JSON.stringify(bpeTokenizerJson(model, options), null, 2)}\n`);
  writeFileSync(join(dir, 'tokenizer_config.json'), `${JSON.stringify(bpeTokenizerConfig(model, options), null, 2)}\n`);
}

function specialIds(model: BpeModel, options: BpeTokenizerOptions): { bos: number; eos: number } {
  const find = (token: string, role: string): number => {
    const id = model.specialTokens.indexOf(token);
    if (id < 0) throw new Error(`BPE tokenizer: the ${role} token "${token}" is not one of the special tokens ${JSON.stringify(model.specialTokens)}`);
    return id;
  };
  return { bos: find(options.bosToken ?? BOS_TOKEN, 'BOS'), eos: find(options.eosToken ?? EOS_TOKEN, 'EOS') };
}
