/**
 * Rebuilding a Hugging Face `tokenizer.json` and `tokenizer_config.json` from a GGUF file's
 * `tokenizer.ggml.*` metadata. Two tokenizer models are supported:
 *
 * - `llama`: SentencePiece BPE (LLaMA 1/2, Mistral, TinyLlama, llama2.c's models). GGUF keeps
 *   the pieces, their scores and types but no merges; the merges are derived from the scores
 *   as transformers' LlamaConverter derives them from a SentencePiece model: every split (l, r)
 *   of a piece into two pieces is a merge, ranked by the piece's score (higher first), ties
 *   to the longer l. The file is the classic Llama-2 `tokenizer.json`: `▁` normalizer with the
 *   dummy prefix, byte fallback to `<0xNN>` pieces, and the matching decoder.
 * - `gpt2`: byte-level BPE (GPT-2, SmolLM, Llama 3), with the merges GGUF stores and the
 *   pre-tokenizer named by `tokenizer.ggml.pre`.
 *
 * Token types are llama.cpp's: CONTROL and UNKNOWN pieces become special added tokens,
 * USER_DEFINED ones non-special added tokens, BYTE pieces the byte-fallback tokens.
 */
import type { GgufFields } from './gguf.js';

/** llama.cpp's token types (tokenizer.ggml.token_type). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** The dummy-prefix and space symbol of SentencePiece. */
const SPACE = '\u2581';

/** Regex of the Llama 3 pre-tokenizer, as its tokenizer.json has it (llama.cpp's "llama-bpe"). */
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const BYTE_LEVEL = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });

/** The byte-level pre-tokenizers this importer can rebuild, by `tokenizer.ggml.pre` (llama.cpp's names). */
const GPT2_PRE_TOKENIZERS: Readonly<Record<string, { preTokenizer: Record<string, unknown>; ignoreMerges: boolean; addBos: boolean }>> = {
  // GPT-2's regex: ByteLevel with use_regex.
  'gpt-2': { preTokenizer: BYTE_LEVEL(true), ignoreMerges: false, addBos: false },
  // SmolLM (and StarCoder): every digit on its own, then GPT-2's regex.
  smollm: {
    preTokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, BYTE_LEVEL(true)] },
    ignoreMerges: false,
    addBos: false,
  },
  // Llama 3: its own split regex (numbers in groups of three), whole words kept when in the vocabulary.
  ...Object.fromEntries(
    ['llama-bpe', 'llama3', 'llama-v3'].map((name) => [
      name,
      {
        preTokenizer: {
          type: 'Sequence',
          pretokenizers: [{ type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false }, BYTE_LEVEL(false)],
        },
        ignoreMerges: true,
        addBos: true,
      },
    ]),
  ),
};

export interface ImportedTokenizer {
  model: 'llama' | 'gpt2';
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** Entries of tokenizer.ggml.tokens. */
  tokens: number;
  merges: number;
  /** Later tokens whose text an earlier id already has: they get no vocabulary entry. */
  duplicates: number;
  bosTokenId: number | null;
  /** eos, then end-of-turn and end-of-message ids when the file names them. */
  eosTokenIds: number[];
}

interface Vocabulary {
  tokens: string[];
  types: number[];
  vocab: Map<string, number>;
  duplicates: number;
}

/** Builds the tokenizer files from `fields`; `maxLength` is the model's context (model_max_length). */
export function tokenizerFromGguf(fields: GgufFields, maxLength: number): ImportedTokenizer {
  const model = fields.optionalString('tokenizer.ggml.model');
  if (model === undefined) throw new Error(`${fields.path}: the file has no tokenizer (metadata "tokenizer.ggml.model" is missing)`);
  if (model !== 'llama' && model !== 'gpt2') {
    throw new Error(
      `${fields.path}: tokenizer.ggml.model is "${model}"; only "llama" (SentencePiece BPE) and "gpt2" (byte-level BPE) tokenizers can be imported`,
    );
  }
  const v = readVocabulary(fields);
  const n = v.tokens.length;
  const id = (key: string, fallback: number | null): number | null => {
    const value = fields.optionalUint(key);
    if (value === undefined) return fallback !== null && fallback < n ? fallback : null;
    if (value >= n) throw fields.error(key, `a token id below the vocabulary's ${n} tokens`);
    return value;
  };
  const llama = model === 'llama';
  const pre = llama ? undefined : gpt2PreTokenizer(fields);
  // llama.cpp's defaults when the file does not say.
  const bos = id('tokenizer.ggml.bos_token_id', llama ? 1 : null);
  const eos = id('tokenizer.ggml.eos_token_id', llama ? 2 : null);
  const unk = id('tokenizer.ggml.unknown_token_id', llama ? 0 : null);
  const pad = id('tokenizer.ggml.padding_token_id', null);
  const eosIds = [eos, id('tokenizer.ggml.eot_token_id', null), id('tokenizer.ggml.eom_token_id', null)].filter((x): x is number => x !== null);
  const addBos = (fields.optionalBool('tokenizer.ggml.add_bos_token') ?? (llama || pre!.addBos)) && bos !== null;
  const addEos = (fields.optionalBool('tokenizer.ggml.add_eos_token') ?? false) && eos !== null;
  const name = (i: number | null) => (i === null ? null : v.tokens[i]);

  const added = addedTokens(v);
  const common = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
  };
  const postProcessor = templateProcessor(addBos ? bos : null, addEos ? eos : null, v.tokens);
  let tokenizerJson: Record<string, unknown>;
  let merges: [string, string][];
  const storedMerges = fields.optionalStringArray('tokenizer.ggml.merges');
  if (llama) {
    merges = storedMerges !== undefined ? parseMerges(fields, storedMerges) : mergesFromScores(fields, v);
    const prefix = fields.optionalBool('tokenizer.ggml.add_space_prefix') ?? true;
    const hasBytes = v.types.includes(TokenType.BYTE);
    tokenizerJson = {
      ...common,
      normalizer: {
        type: 'Sequence',
        normalizers: [...(prefix ? [{ type: 'Prepend', prepend: SPACE }] : []), { type: 'Replace', pattern: { String: ' ' }, content: SPACE }],
      },
      pre_tokenizer: null,
      post_processor: postProcessor,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
          ...(hasBytes ? [{ type: 'ByteFallback' }] : []),
          { type: 'Fuse' },
          ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: bpeModel(v, merges, { unk: name(unk), fuseUnk: true, byteFallback: hasBytes, ignoreMerges: false }),
    };
  } else {
    if (storedMerges === undefined) throw fields.error('tokenizer.ggml.merges', 'an ARRAY of STRING (a gpt2 tokenizer needs its merges)');
    merges = parseMerges(fields, storedMerges);
    tokenizerJson = {
      ...common,
      normalizer: null,
      pre_tokenizer: pre!.preTokenizer,
      post_processor: postProcessor,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: bpeModel(v, merges, { unk: name(unk), fuseUnk: false, byteFallback: false, ignoreMerges: pre!.ignoreMerges }),
    };
  }

  const chatTemplate = fields.optionalString('tokenizer.chat_template');
  const addedDecoder = Object.fromEntries(added.map(({ id: i, ...rest }) => [String(i), rest]));
  const tokenizerConfig: Record<string, unknown> = llama
    ? {
        tokenizer_class: 'LlamaTokenizerFast',
        add_bos_token: addBos,
        add_eos_token: addEos,
        bos_token: name(bos),
        eos_token: name(eos),
        unk_token: name(unk),
        pad_token: name(pad),
        model_max_length: maxLength,
        legacy: true,
        add_prefix_space: (fields.optionalBool('tokenizer.ggml.add_space_prefix') ?? true) ? null : false,
        clean_up_tokenization_spaces: false,
        spaces_between_special_tokens: false,
        sp_model_kwargs: {},
        added_tokens_decoder: addedDecoder,
      }
    : {
        tokenizer_class: 'PreTrainedTokenizerFast',
        add_bos_token: addBos,
        add_eos_token: addEos,
        bos_token: name(bos),
        eos_token: name(eos),
        unk_token: name(unk),
        pad_token: name(pad),
        model_max_length: maxLength,
        // Decoding gives the text back exactly; GGUF does not record a clean-up setting.
        clean_up_tokenization_spaces: false,
        added_tokens_decoder: addedDecoder,
      };
  if (chatTemplate !== undefined) tokenizerConfig.chat_template = chatTemplate;

  return {
    model,
    tokenizerJson,
    tokenizerConfig,
    tokens: n,
    merges: merges.length,
    duplicates: v.duplicates,
    bosTokenId: bos,
    eosTokenIds: [...new Set(eosIds)],
  };
}

function readVocabulary(fields: GgufFields): Vocabulary {
  const tokens = fields.stringArray('tokenizer.ggml.tokens');
  if (tokens.length === 0) throw fields.error('tokenizer.ggml.tokens', 'a non-empty ARRAY of STRING');
  const types = fields.optionalNumberArray('tokenizer.ggml.token_type') ?? tokens.map(() => TokenType.NORMAL);
  if (types.length !== tokens.length) throw fields.error('tokenizer.ggml.token_type', `an ARRAY of ${tokens.length} token types (one per token)`);
  const vocab = new Map<string, number>();
  let duplicates = 0;
  tokens.forEach((token, id) => {
    if (vocab.has(token)) duplicates++;
    else vocab.set(token, id);
  });
  return { tokens, types, vocab, duplicates };
}

/** Control, unknown and user-defined pieces, matched whole in the input before BPE runs. */
function addedTokens(
  v: Vocabulary,
): { id: number; content: string; single_word: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean; special: boolean }[] {
  const out = [];
  for (let id = 0; id < v.tokens.length; id++) {
    const type = v.types[id];
    if (type !== TokenType.CONTROL && type !== TokenType.UNKNOWN && type !== TokenType.USER_DEFINED) continue;
    if (v.vocab.get(v.tokens[id]) !== id) continue;
    out.push({ id, content: v.tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: type !== TokenType.USER_DEFINED });
  }
  return out;
}

/** BOS and EOS around each sequence, as transformers' LlamaTokenizerFast writes its template. */
function templateProcessor(bos: number | null, eos: number | null, tokens: string[]): Record<string, unknown> {
  const special = (id: number | null, typeId: number) => (id === null ? [] : [{ SpecialToken: { id: tokens[id], type_id: typeId } }]);
  const single = [...special(bos, 0), { Sequence: { id: 'A', type_id: 0 } }, ...special(eos, 0)];
  const pair = [...single, ...special(bos, 1), { Sequence: { id: 'B', type_id: 1 } }, ...special(eos, 1)];
  const specialTokens: Record<string, unknown> = {};
  for (const id of [bos, eos]) if (id !== null) specialTokens[tokens[id]] = { id: tokens[id], ids: [id], tokens: [tokens[id]] };
  return { type: 'TemplateProcessing', single, pair, special_tokens: specialTokens };
}

function bpeModel(
  v: Vocabulary,
  merges: [string, string][],
  o: { unk: string | null; fuseUnk: boolean; byteFallback: boolean; ignoreMerges: boolean },
): Record<string, unknown> {
  // "l r" strings are the usual form; a piece with a space in it needs the [l, r] form.
  const spaced = merges.some(([l, r]) => l.includes(' ') || r.includes(' '));
  return {
    type: 'BPE',
    dropout: null,
    unk_token: o.unk,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: o.fuseUnk,
    byte_fallback: o.byteFallback,
    ignore_merges: o.ignoreMerges,
    vocab: Object.fromEntries(v.vocab),
    merges: spaced ? merges : merges.map(([l, r]) => `${l} ${r}`),
  };
}

/** "left right" strings, split at the first space after the first character (as llama.cpp does). */
function parseMerges(fields: GgufFields, merges: string[]): [string, string][] {
  return merges.map((m, i) => {
    const at = m.indexOf(' ', 1);
    if (at < 0) throw new Error(`${fields.path}: tokenizer.ggml.merges[${i}] is ${JSON.stringify(m)}, not "left right"`);
    return [m.slice(0, at), m.slice(at + 1)];
  });
}

/**
 * SentencePiece BPE merges from piece scores: each split of a normal piece into two normal
 * pieces, ranked by the piece's score (higher first), then by the piece's id, then the
 * longer left part first. Splits are at code points, never inside a surrogate pair.
 */
function mergesFromScores(fields: GgufFields, v: Vocabulary): [string, string][] {
  const scores = fields.optionalNumberArray('tokenizer.ggml.scores') ?? v.tokens.map(() => 0);
  if (scores.length !== v.tokens.length) throw fields.error('tokenizer.ggml.scores', `an ARRAY of ${v.tokens.length} scores (one per token)`);
  const normal = (piece: string): boolean => {
    const id = v.vocab.get(piece);
    return id !== undefined && v.types[id] === TokenType.NORMAL;
  };
  const candidates: { left: string; right: string; score: number; id: number; leftLength: number }[] = [];
  for (const [piece, id] of v.vocab) {
    if (v.types[id] !== TokenType.NORMAL) continue;
    const chars = Array.from(piece);
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join('');
      const right = chars.slice(k).join('');
      if (normal(left) && normal(right)) candidates.push({ left, right, score: scores[id], id, leftLength: k });
    }
  }
  candidates.sort((a, b) => b.score - a.score || a.id - b.id || b.leftLength - a.leftLength);
  return candidates.map((c) => [c.left, c.right]);
}

function gpt2PreTokenizer(fields: GgufFields): (typeof GPT2_PRE_TOKENIZERS)[string] {
  const pre = fields.optionalString('tokenizer.ggml.pre');
  const found = pre === undefined ? undefined : GPT2_PRE_TOKENIZERS[pre];
  if (found === undefined) {
    throw new Error(
      `${fields.path}: tokenizer.ggml.pre is ${pre === undefined ? 'missing' : `"${pre}"`}; the byte-level pre-tokenizers that can be imported are ${Object.keys(GPT2_PRE_TOKENIZERS).join(', ')}`,
    );
  }
  return found;
}
