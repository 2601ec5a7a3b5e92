/**
 * Request text to token ids without stalling the server: a text that cannot fit the context is
 * refused before it is tokenized, and long texts are tokenized on worker threads
 * (src/model/tokenizer-pool.ts) while the event loop keeps answering.
 */
import { TokenizerBusyError, type TokenizerPool } from '../model/tokenizer-pool.js';
import type { ServedModel } from '../runtime/types.js';
import { ApiError, invalidRequest } from './errors.js';

/** Token ids of each text, in order. */
export type Encoder = (texts: string[], addSpecialTokens?: boolean) => Promise<number[][]>;

/** Below this many characters in all, texts are tokenized inline: a worker round trip costs more. */
export const INLINE_CHARS = 4096;

/**
 * Normalizers can shorten a text before it is split into tokens (NFKC composes characters); a
 * factor of 2 keeps the character bound below safe for them.
 */
const NORMALIZER_SLACK = 2;

/** Tokenizes with `model`, on `pool` when the texts are long and the model says where its tokenizer is. */
export function textEncoder(model: ServedModel, pool?: TokenizerPool, signal?: AbortSignal): Encoder {
  return async (texts, addSpecialTokens = true) => {
    const chars = texts.reduce((sum, text) => sum + text.length, 0);
    if (pool === undefined || model.tokenizerDir === undefined || chars < INLINE_CHARS) {
      return texts.map((text) => model.encode(text, addSpecialTokens));
    }
    try {
      return await pool.encode(model.tokenizerDir, texts, addSpecialTokens, signal);
    } catch (err) {
      if (err instanceof TokenizerBusyError) throw tokenizerBusy();
      throw err;
    }
  };
}

/**
 * Refuses a text that has more tokens than the context whatever its tokenization: no token
 * covers more characters than the longest vocabulary entry (ModelTokenizer.maxTokenChars).
 */
export function checkTextFits(model: ServedModel, text: string, param: string, which: string): void {
  if (model.maxTokenChars === undefined) return;
  const perToken = model.maxTokenChars * NORMALIZER_SLACK;
  if (text.length <= model.contextLength * perToken) return;
  throw invalidRequest(
    `This model's maximum context length is ${model.contextLength} tokens; ${which} has ${text.length} characters, ` +
      `which is at least ${Math.ceil(text.length / perToken)} tokens.`,
    param,
    'context_length_exceeded',
  );
}

export function tokenizerBusy(): ApiError {
  return new ApiError(503, 'Every tokenizer thread is busy; retry shortly.', 'service_unavailable', null, 'tokenizer_busy', { 'retry-after': '1' });
}
