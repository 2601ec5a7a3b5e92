/**
 * A thin wrapper over @huggingface/tokenizers: loads `tokenizer.json` (+ optional
 * `tokenizer_config.json`) and exposes the few calls the server needs with plain types.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, isRecord, readJsonFile } from './json.js';

/** Ids from config.json, used to name bos/eos when tokenizer_config.json does not. */
export interface SpecialTokenIds {
  bosTokenId: number | null;
  eosTokenIds: number[];
}

export class ModelTokenizer {
  /** One more than the largest id the tokenizer knows (the id space it can produce). */
  readonly vocabSize: number;
  /**
   * Characters in the longest vocabulary entry, special tokens included. No token covers more
   * characters of the input than its entry has (a byte-level entry has one character per byte),
   * so a text of c characters has at least c / maxTokenChars tokens.
   */
  readonly maxTokenChars: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  /** tokenizer_config.json's `chat_template` (the one named "default" when it lists several), or null. */
  readonly chatTemplate: string | null;

  private constructor(
    private readonly inner: Tokenizer,
    config: Record<string, unknown>,
    ids: SpecialTokenIds | undefined,
  ) {
    let max = -1;
    let longest = 1;
    for (const [token, id] of inner.get_vocab(true)) {
      max = Math.max(max, id);
      longest = Math.max(longest, token.length);
    }
    this.vocabSize = max + 1;
    this.maxTokenChars = longest;
    this.bosToken = tokenString(config.bos_token) ?? this.tokenOrNull(ids?.bosTokenId ?? null);
    this.eosToken = tokenString(config.eos_token) ?? this.tokenOrNull(ids?.eosTokenIds[0] ?? null);
    this.chatTemplate = chatTemplateOf(config.chat_template);
  }

  /** Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json`. */
  static fromDir(dir: string, ids?: SpecialTokenIds): ModelTokenizer {
    const file = join(dir, 'tokenizer.json');
    if (!existsSync(file)) throw new Error(`${file}: file not found (the model directory needs a tokenizer.json)`);
    const configFile = join(dir, 'tokenizer_config.json');
    const config = existsSync(configFile) ? readJsonFile(configFile) : {};
    if (!isRecord(config)) throw new Error(`${configFile}: expected a JSON object, got ${describe(config)}`);
    return ModelTokenizer.fromJson(readJsonFile(file), config, ids, file);
  }

  static fromJson(tokenizerJson: unknown, tokenizerConfig: Record<string, unknown> = {}, ids?: SpecialTokenIds, file = 'tokenizer.json'): ModelTokenizer {
    if (!isRecord(tokenizerJson) || !isRecord(tokenizerJson.model)) {
      throw new Error(`${file}: expected a tokenizers JSON object with a "model" field`);
    }
    // The library needs these keys present (null is fine); files written by some tools omit them.
    const json: Record<string, unknown> = {
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...tokenizerJson,
    };
    const config: Record<string, unknown> = {
      ...tokenizerConfig,
      // Older configs store special tokens as {content, ...} objects; the library wants strings.
      bos_token: tokenString(tokenizerConfig.bos_token) ?? undefined,
      eos_token: tokenString(tokenizerConfig.eos_token) ?? undefined,
      unk_token: tokenString(tokenizerConfig.unk_token) ?? undefined,
      pad_token: tokenString(tokenizerConfig.pad_token) ?? undefined,
      // The library defaults this to true, which rewrites " ." to "." etc. and makes decode lossy;
      // transformers reads it from the file, so only an explicit setting turns it on.
      clean_up_tokenization_spaces: tokenizerConfig.clean_up_tokenization_spaces === true,
    };
    let inner: Tokenizer;
    try {
      inner = new Tokenizer(json, config);
    } catch (err) {
      throw new Error(`${file}: cannot load tokenizer (${(err as Error).message})`);
    }
    return new ModelTokenizer(inner, config, ids);
  }

  /** Token ids of `text`; special tokens (e.g. BOS) are added as tokenizer.json's post-processor says. */
  encode(text: string, addSpecialTokens = true): number[] {
    return this.inner.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  /** Ids with their token strings (as in the vocabulary, e.g. `▁time` or `Ġtime`). */
  encodeWithTokens(text: string, addSpecialTokens = true): { ids: number[]; tokens: string[] } {
    const { ids, tokens } = this.inner.encode(text, { add_special_tokens: addSpecialTokens });
    return { ids, tokens };
  }

  /**
   * Text of `ids`. Ids the tokenizer does not know are skipped: a model's embedding matrix is
   * often padded beyond the tokenizer (e.g. Qwen2), and such an id has no text.
   */
  decode(ids: readonly number[], skipSpecialTokens = true): string {
    const known = ids.filter((id) => this.inner.id_to_token(id) !== undefined);
    // The library throws on an empty list.
    if (known.length === 0) return '';
    return this.inner.decode(known, { skip_special_tokens: skipSpecialTokens });
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  private tokenOrNull(id: number | null): string | null {
    return id === null ? null : (this.inner.id_to_token(id) ?? null);
  }
}

/**
 * transformers stores one template as a string, several as [{name, template}] of which
 * "default" is the one apply_chat_template uses unless told otherwise.
 */
function chatTemplateOf(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) return null;
  const named = value.find(
    (entry): entry is { name: string; template: string } => isRecord(entry) && entry.name === 'default' && typeof entry.template === 'string',
  );
  return named?.template ?? null;
}

function tokenString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (isRecord(value) && typeof value.content === 'string') return value.content;
  return null;
}
